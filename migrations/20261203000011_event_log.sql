-- The event log: every event of the operator streams (`sys:*`) and of the
-- streams accounts mark persistent, written by the worker's `event-log`
-- consumer group. `stream` is the stream's full name (`sys:users`,
-- `user:<id>/orders`); (stream, id) is the idempotency key, so a
-- redelivered event never adds a row. `id_ms`/`id_seq` are the Redis
-- entry id's parts, which order events (text order would put 10 before 9).
-- `data` is kept as written (`json`, see 20261203000008). `key` is the
-- producer's idempotency key (an outbox id) where there is one.
CREATE TABLE events (
    stream      text        NOT NULL,
    id          text        NOT NULL,
    id_ms       bigint      NOT NULL,
    id_seq      bigint      NOT NULL,
    account     uuid,
    type        text        NOT NULL,
    data        json        NOT NULL,
    key         text,
    occurred_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, id)
);
-- Newest-first pages of one account (NULL: the operator streams).
CREATE INDEX events_account_newest ON events (account, id_ms DESC, id_seq DESC, stream DESC);

-- Account streams marked persistent (`PUT /v1/events/{stream}`); the
-- worker's `event-log` group reads these.
CREATE TABLE persistent_streams (
    account    uuid        NOT NULL,
    name       text        NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, name)
);

-- Events a counting group has counted, so a redelivery counts once: the
-- row is inserted in the same transaction as the count. Pruned after a
-- week (a redelivery comes within EVENTS_RECLAIM_IDLE_MS).
CREATE TABLE processed_events (
    consumer_group text        NOT NULL,
    stream         text        NOT NULL,
    id             text        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, stream, id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at);

-- `task-processing`: task.completed events per assignee of an account.
CREATE TABLE task_completions (
    account   uuid   NOT NULL,
    assignee  text   NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account, assignee)
);

-- `log-processing`: system.error events per account and minute.
CREATE TABLE log_error_counts (
    account uuid        NOT NULL,
    minute  timestamptz NOT NULL,
    errors  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (account, minute)
);
