-- Activity: one row per request under /v1, written in batches by the
-- recorder. Partitioned by day (UTC) so retention is a DROP of a partition;
-- the worker creates partitions ahead and drops old ones. The server makes
-- `id` when the request arrives, so a retried batch or a replayed spill
-- inserts nothing twice (ON CONFLICT DO NOTHING on the primary key, which
-- must include the partition key).
CREATE TABLE activity (
    id             uuid NOT NULL,
    occurred_at    timestamptz NOT NULL,
    request_id     text NOT NULL,
    principal_kind text NOT NULL CHECK (principal_kind IN ('anonymous', 'user', 'client')),
    user_id        uuid,
    client_id      uuid,
    account_id     uuid,
    method         text NOT NULL,
    route          text NOT NULL,
    status         smallint NOT NULL,
    latency_us     bigint NOT NULL,
    request_bytes  bigint NOT NULL,
    response_bytes bigint NOT NULL,
    client_ip      text,
    user_agent     text,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX activity_account ON activity (account_id, occurred_at DESC, id DESC);
CREATE INDEX activity_client ON activity (client_id, occurred_at DESC, id DESC);

-- Rows that arrive for a day without a partition land here rather than fail;
-- the partition job moves them when it creates the day's partition.
CREATE TABLE activity_default PARTITION OF activity DEFAULT;

-- One row per finished UTC day and (account, client, method, route): the
-- roll-up of that day's activity. Re-running a day replaces its rows.
-- latency_histogram counts requests per latency bucket (bucket bounds are
-- fixed in the server's code), from which p50 and p99 are read.
CREATE TABLE usage_daily (
    day               date NOT NULL,
    account_id        uuid,
    client_id         uuid,
    method            text NOT NULL,
    route             text NOT NULL,
    requests          bigint NOT NULL,
    errors            bigint NOT NULL,
    latency_histogram bigint[] NOT NULL
);
CREATE UNIQUE INDEX usage_daily_key ON usage_daily
    (day, COALESCE(account_id, '00000000-0000-0000-0000-000000000000'),
     COALESCE(client_id, '00000000-0000-0000-0000-000000000000'), method, route);
CREATE INDEX usage_daily_client ON usage_daily (client_id, day);
CREATE INDEX usage_daily_account ON usage_daily (account_id, day);

-- Days the roll-up has finished, so the cron job knows what is left.
CREATE TABLE usage_rollups (
    day       date PRIMARY KEY,
    rolled_at timestamptz NOT NULL DEFAULT now()
);
