-- Calls (issue 5): one row per call, one per user it involved. Never edit once
-- applied. Times are integer ms since the Unix epoch; duration is
-- ended_at - answered_at and is not stored.

CREATE TABLE calls (
    id          TEXT PRIMARY KEY,  -- time-ordered (new_time_id), so it pages by recency
    room_id     TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    caller_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,     -- audio | video
    is_group    INTEGER NOT NULL,
    state       TEXT NOT NULL,     -- ringing | active | ended
    outcome     TEXT,              -- set when ended
    started_at  INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at    INTEGER
);
CREATE INDEX calls_room_idx ON calls (room_id, id);
-- The start-up sweep looks for calls a stopped node left unfinished.
CREATE INDEX calls_unfinished_idx ON calls (state) WHERE state <> 'ended';

CREATE TABLE call_participants (
    call_id   TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,  -- invitation order, the caller first
    status    TEXT NOT NULL,       -- ringing | joined | reconnecting | left | declined | missed | busy
    device    TEXT,
    joined_at INTEGER,
    left_at   INTEGER,
    -- Optional quality feedback, once the call has ended.
    rating    INTEGER,
    comment   TEXT,
    rated_at  INTEGER,
    PRIMARY KEY (call_id, user_id)
) WITHOUT ROWID;
CREATE INDEX call_participants_user_idx ON call_participants (user_id, call_id);
