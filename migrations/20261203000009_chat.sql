-- Chat: rooms (group or direct), their members with each one's read
-- position, and messages.

CREATE TABLE rooms (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL CHECK (kind IN ('group', 'direct')),
    -- Group rooms only.
    name        text,
    owner_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    -- Direct rooms only: the two users, the smaller id first, so one pair
    -- has one room whoever asks first (the unique index below).
    direct_low  uuid,
    direct_high uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    CHECK (direct_low < direct_high),
    CHECK ((kind = 'group') = (name IS NOT NULL))
);

CREATE UNIQUE INDEX rooms_direct_pair ON rooms (direct_low, direct_high) WHERE kind = 'direct';

CREATE TABLE room_members (
    room_id       uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    -- The `seq` of the last message the member has read; only grows.
    last_read_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE messages (
    -- The order of messages (history pages, unread counts, read positions).
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    room_id       uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    sender_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    -- The sender's retry key: one message per (room, sender, key).
    client_msg_id text,
    text          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_room_seq ON messages (room_id, seq DESC);
CREATE UNIQUE INDEX messages_client_msg ON messages (room_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
