-- Business events written in the same transaction as the change they
-- describe; the worker's relay appends them to their Redis stream in id
-- order and marks them relayed, and deletes relayed rows after
-- OUTBOX_RETENTION_SECS. `data` is `json` (kept as written, see
-- json_as_written); the server writes it itself.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    stream     text NOT NULL CHECK (char_length(stream) BETWEEN 1 AND 200),
    kind       text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 128),
    data       json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    relayed_at timestamptz
);
-- What the relay claims (in id order) and what the purge deletes.
CREATE INDEX outbox_pending ON outbox (id) WHERE relayed_at IS NULL;
CREATE INDEX outbox_relayed ON outbox (relayed_at) WHERE relayed_at IS NOT NULL;

-- User management: a display name, and deletion that keeps an anonymised
-- row (deleted_at set, email and username replaced, password hash cleared).
ALTER TABLE users
    ADD COLUMN display_name text CHECK (char_length(display_name) BETWEEN 1 AND 100),
    ADD COLUMN deleted_at timestamptz;
CREATE INDEX users_created ON users (created_at DESC, id DESC);

-- Tasks of an account (a user and its API clients share them).
CREATE TABLE tasks (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description  text CHECK (char_length(description) <= 10000),
    priority     text NOT NULL CHECK (priority IN ('low', 'normal', 'high')),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed')),
    assigned_to  uuid REFERENCES users (id) ON DELETE SET NULL,
    -- The principal that created it: `user:<id>` or `client:<id>`.
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    completed_by text
);
CREATE INDEX tasks_account ON tasks (account_id, created_at DESC, id DESC);
CREATE INDEX tasks_account_assignee ON tasks (account_id, assigned_to, created_at DESC, id DESC);
