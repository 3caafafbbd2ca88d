-- Initial schema (PostgreSQL). Never edit once applied: add 0002_*.sql instead.
-- Times are bigint milliseconds since the Unix epoch. Ids are application text.
-- Unique constraint names matter: storage.postgres maps them to Conflict fields.

CREATE TABLE users (
    id            text PRIMARY KEY,
    email         text NOT NULL,
    -- Lowercased by the application (Python str.lower), not by SQL, so both
    -- backends fold identically whatever the database collation.
    email_lc      text NOT NULL,
    username      text NOT NULL,
    username_lc   text NOT NULL,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    created_at    bigint NOT NULL
);
CREATE UNIQUE INDEX users_email_lc_key ON users (email_lc);
CREATE UNIQUE INDEX users_username_lc_key ON users (username_lc);

CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    family_id  text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device     text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at    bigint,
    revoked_at bigint
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE rooms (
    id              text PRIMARY KEY,
    kind            text NOT NULL,
    name            text NOT NULL,
    created_by      text NOT NULL,
    created_at      bigint NOT NULL,
    -- NULL for group rooms; UNIQUE ignores NULLs, so only direct pairs collide.
    direct_key      text CONSTRAINT rooms_direct_key_key UNIQUE,
    -- Denormalised by insert_messages in the same transaction, so "my rooms"
    -- needs no MAX(seq) scan over messages.
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at bigint
);

CREATE TABLE room_members (
    room_id   text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      text NOT NULL,
    read_seq  bigint NOT NULL DEFAULT 0,
    joined_at bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user_idx ON room_members (user_id);

-- sender_id has no foreign key: system and AI messages have senders that are
-- not rows of users.
CREATE TABLE messages (
    id         text PRIMARY KEY,
    room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    sender_id  text NOT NULL,
    cid        text NOT NULL,
    text       text NOT NULL,
    kind       text NOT NULL DEFAULT 'text',
    created_at bigint NOT NULL,
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq),
    CONSTRAINT messages_room_sender_cid_key UNIQUE (room_id, sender_id, cid)
);
