-- Identity: users, API clients owned by users, and their API keys.
-- Emails are unique case-insensitively (lower(email)); usernames too, so
-- "Alice" and "alice" cannot be two accounts.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL CHECK (char_length(username) BETWEEN 3 AND 32),
    email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- Single-use password reset tokens; only a hash of the token is stored.
CREATE TABLE password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX password_resets_user ON password_resets (user_id);

CREATE TABLE api_clients (
    id         uuid PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Requests per minute allowed to this client; NULL means the default policy.
    rate_limit integer CHECK (rate_limit > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_clients_owner ON api_clients (owner_id, created_at);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES api_clients (id) ON DELETE CASCADE,
    -- Keyed hash (HMAC-SHA256) of the whole key; the key itself is never stored.
    key_hash     bytea NOT NULL UNIQUE,
    -- The first characters of the key, for people to recognise it.
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Set when a rotation starts the grace period; NULL = no expiry.
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_client ON api_keys (client_id, created_at DESC);
