-- Rich messaging (SQLite): message kinds, replies, forwards, edits, deletes,
-- reactions, receipts, per-user hiding, the per-room change-event log and
-- full-text search.

-- Kind-specific content as JSON (location, media id, contact card, reply
-- preview, forwarded flag); NULL for plain text and after a delete.
ALTER TABLE messages ADD COLUMN meta TEXT;
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
-- Set by delete-for-everyone, which also erases text and meta.
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
-- Replies to a message are found when it is deleted, to erase their preview.
CREATE INDEX messages_reply_idx ON messages (room_id, reply_to) WHERE reply_to IS NOT NULL;

-- Delivered cursor beside the read cursor (read_seq, from 0001).
ALTER TABLE room_members ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE message_reactions (
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq, user_id, emoji)
) WITHOUT ROWID;

-- "Delete for me": the message stays for everyone else.
CREATE TABLE message_hidden (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, seq)
) WITHOUT ROWID;

-- Change events (edit, delete, reaction, receipt) with their own gap-free
-- per-room sequence ``ev``; ``frame`` is the MessagePack push as sent, so a
-- resume replays bytes without re-encoding.
CREATE TABLE room_events (
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    ev         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    seq        INTEGER,
    frame      BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, ev)
) WITHOUT ROWID;

-- Full-text index over message text (external content: no second copy).
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='rowid');
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
