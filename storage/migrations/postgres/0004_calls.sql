-- Calls (issue 5): one row per call, one per user it involved. Never edit once
-- applied. Times are bigint ms since the Unix epoch; duration is
-- ended_at - answered_at and is not stored.

CREATE TABLE calls (
    id          text PRIMARY KEY,  -- time-ordered (new_time_id), so it pages by recency
    room_id     text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    caller_id   text NOT NULL,
    kind        text NOT NULL,     -- audio | video
    is_group    boolean NOT NULL,
    state       text NOT NULL,     -- ringing | active | ended
    outcome     text,              -- set when ended
    started_at  bigint NOT NULL,
    answered_at bigint,
    ended_at    bigint
);
CREATE INDEX calls_room_idx ON calls (room_id, id);
-- The start-up sweep looks for calls a stopped node left unfinished.
CREATE INDEX calls_unfinished_idx ON calls (state) WHERE state <> 'ended';

CREATE TABLE call_participants (
    call_id   text NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position  integer NOT NULL,  -- invitation order, the caller first
    status    text NOT NULL,       -- ringing | joined | reconnecting | left | declined | missed | busy
    device    text,
    joined_at bigint,
    left_at   bigint,
    -- Optional quality feedback, once the call has ended.
    rating    smallint,
    comment   text,
    rated_at  bigint,
    PRIMARY KEY (call_id, user_id)
);
CREATE INDEX call_participants_user_idx ON call_participants (user_id, call_id);
