-- Initial schema (SQLite). Never edit once applied: add 0002_*.sql instead.
-- Times are integer milliseconds since the Unix epoch. Ids are application text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    -- Lowercased by the application (Python str.lower), not by SQL, so both
    -- backends fold identically; SQLite's lower() only knows ASCII.
    email_lc      TEXT NOT NULL,
    username      TEXT NOT NULL,
    username_lc   TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email_lc_key ON users (email_lc);
CREATE UNIQUE INDEX users_username_lc_key ON users (username_lc);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE rooms (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    -- NULL for group rooms; UNIQUE ignores NULLs, so only direct pairs collide.
    direct_key      TEXT UNIQUE,
    -- Denormalised by insert_messages in the same transaction, so "my rooms"
    -- needs no MAX(seq) scan over messages.
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER
);

CREATE TABLE room_members (
    room_id   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT NOT NULL,
    read_seq  INTEGER NOT NULL DEFAULT 0,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user_idx ON room_members (user_id);

-- sender_id has no foreign key: system and AI messages have senders that are
-- not rows of users.
CREATE TABLE messages (
    id         TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    sender_id  TEXT NOT NULL,
    cid        TEXT NOT NULL,
    text       TEXT NOT NULL,
    kind       TEXT NOT NULL DEFAULT 'text',
    created_at INTEGER NOT NULL,
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq),
    CONSTRAINT messages_room_sender_cid_key UNIQUE (room_id, sender_id, cid)
);
