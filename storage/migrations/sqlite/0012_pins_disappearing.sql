-- Pinned messages and disappearing messages (issue 18, items 3 and 4).
-- Existing rooms keep disappearing messages off; existing messages never expire.

-- Set from the room's timer when the message is stored; erased for everyone
-- (delete-for-everyone) once it has passed. The index serves the sweeper.
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
CREATE INDEX messages_expiry_idx ON messages (expires_at)
    WHERE expires_at IS NOT NULL AND deleted_at IS NULL;

-- The room's timer for new messages, in ms; 0 is off.
ALTER TABLE rooms ADD COLUMN disappear_ms INTEGER NOT NULL DEFAULT 0;

-- At most 3 per room (enforced by the room actor, the one writer per room).
CREATE TABLE room_pins (
    room_id   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    pinned_by TEXT NOT NULL,
    pinned_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
