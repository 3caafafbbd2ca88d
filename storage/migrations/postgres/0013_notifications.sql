-- Per-user notifications and user roles (issue 15, part 2). Never edit once applied.
--
-- One row per (user, notification). An announcement sent to many users is
-- written as one row per recipient sharing one id, so its live frame is
-- encoded once and each user still reads, counts and marks it as their own.
CREATE TABLE notifications (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Time-ordered (storage.notifications.new_notification_id): the list pages by it, newest first.
    id         text NOT NULL,
    kind       text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL DEFAULT '',
    -- What the notification is about (room, call, plan, amount...), as JSON.
    data       text NOT NULL DEFAULT '{}',
    created_at bigint NOT NULL,
    read_at    bigint,
    PRIMARY KEY (user_id, id)
);
-- The unread count is asked on every list: only the unread rows are indexed.
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Roles granted by the operator's CLI (``realtime-server admin grant EMAIL``),
-- never through the public API. No row: an ordinary user.
CREATE TABLE user_roles (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL,
    granted_at bigint NOT NULL,
    PRIMARY KEY (user_id, role)
);
