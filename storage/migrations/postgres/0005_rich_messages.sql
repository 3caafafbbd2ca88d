-- Rich messaging (PostgreSQL): message kinds, replies, forwards, edits,
-- deletes, reactions, receipts, per-user hiding, the per-room change-event
-- log and full-text search.

-- Kind-specific content as JSON text (location, media id, contact card, reply
-- preview, forwarded flag); NULL for plain text and after a delete.
ALTER TABLE messages ADD COLUMN meta text;
ALTER TABLE messages ADD COLUMN reply_to bigint;
ALTER TABLE messages ADD COLUMN edited_at bigint;
-- Set by delete-for-everyone, which also erases text and meta.
ALTER TABLE messages ADD COLUMN deleted_at bigint;
CREATE INDEX messages_reply_idx ON messages (room_id, reply_to) WHERE reply_to IS NOT NULL;

-- 'simple': no stemming, so results match SQLite FTS5's unicode61 tokenizer.
CREATE INDEX messages_text_fts_idx ON messages USING gin (to_tsvector('simple', text));

ALTER TABLE room_members ADD COLUMN delivered_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE message_reactions (
    room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    user_id    text NOT NULL,
    emoji      text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (room_id, seq, user_id, emoji)
);

CREATE TABLE message_hidden (
    room_id text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id text NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (user_id, room_id, seq)
);

-- Change events with their own gap-free per-room sequence ``ev``; ``frame``
-- is the MessagePack push as sent.
CREATE TABLE room_events (
    room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    ev         bigint NOT NULL,
    kind       text NOT NULL,
    seq        bigint,
    frame      bytea NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (room_id, ev)
);
