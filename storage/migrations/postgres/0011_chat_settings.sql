-- Per-user chat settings and starred messages (issue 18, items 1 and 2).
-- One row per (user, room) only once the user changed something; no row
-- means the defaults (not muted, not pinned, not archived, notify 'all').
-- Never edit once applied.
CREATE TABLE chat_settings (
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id       text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- Muted while the clock is before this time (ms); 'always' is a far
    -- future sentinel so "is it muted now" is one comparison in SQL.
    muted_until   bigint,
    -- When it was pinned (ms, made unique per user by the store): pinned
    -- chats list by it, newest pin first. NULL: not pinned.
    pinned_at     bigint,
    -- When it was archived; a message after this time (unless muted) brings
    -- the chat back to the main list without a write on the message path.
    archived_at   bigint,
    marked_unread boolean NOT NULL DEFAULT false,
    notify        text NOT NULL DEFAULT 'all',
    updated_at    bigint NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE starred_messages (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    starred_at bigint NOT NULL,
    PRIMARY KEY (user_id, room_id, seq)
);
-- "My starred messages", newest first, paged by (starred_at, room_id, seq).
CREATE INDEX starred_messages_user_time_idx
    ON starred_messages (user_id, starred_at DESC, room_id DESC, seq DESC);
