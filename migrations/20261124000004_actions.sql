-- Actions: the source of truth of the action log. published_at stays NULL
-- until the Redis side effects (audit stream, pub/sub, leaderboards, last
-- action cache) are done; the worker repairs rows left NULL.
CREATE TABLE actions (
    id           uuid PRIMARY KEY,
    actor_kind   text NOT NULL CHECK (actor_kind IN ('user', 'client')),
    actor_id     uuid NOT NULL,
    type         text NOT NULL CHECK (char_length(type) BETWEEN 1 AND 64),
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX actions_actor ON actions (actor_kind, actor_id, id DESC);
CREATE INDEX actions_unpublished ON actions (created_at) WHERE published_at IS NULL;
