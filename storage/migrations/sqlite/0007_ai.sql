-- AI conversations (issue 4), SQLite. Never edit once applied.
-- An AI conversation is a room of kind 'ai' (its messages live in messages);
-- these tables hold what only AI needs. Times are ms since the Unix epoch.

CREATE TABLE ai_folders (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ai_folders_user_idx ON ai_folders (user_id);

CREATE TABLE ai_presets (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    model         TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    temperature   REAL,
    max_tokens    INTEGER,
    created_at    INTEGER NOT NULL
);
CREATE INDEX ai_presets_user_idx ON ai_presets (user_id);

CREATE TABLE ai_conversations (
    room_id       TEXT PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    model         TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    temperature   REAL,
    max_tokens    INTEGER,
    folder_id     TEXT REFERENCES ai_folders (id) ON DELETE SET NULL,
    preset_id     TEXT REFERENCES ai_presets (id) ON DELETE SET NULL,
    favourite     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX ai_conversations_user_idx ON ai_conversations (user_id, updated_at);

-- One row per stored AI answer: how it ended and what it cost.
CREATE TABLE ai_answers (
    message_id        TEXT PRIMARY KEY,
    room_id           TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    gen_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    model             TEXT NOT NULL,
    status            TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX ai_answers_room_idx ON ai_answers (room_id, seq);

-- Seq ranges left out of the visible history (regenerated answers, edited branches).
CREATE TABLE ai_hidden (
    room_id  TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    from_seq INTEGER NOT NULL,
    to_seq   INTEGER NOT NULL
);
CREATE INDEX ai_hidden_room_idx ON ai_hidden (room_id);

-- Usage per user per period: 'YYYY-MM' (month) and 'YYYY-MM-DD' (day); the quota is billing's.
CREATE TABLE ai_usage (
    user_id           TEXT NOT NULL,
    period            TEXT NOT NULL,
    messages          INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period)
) WITHOUT ROWID;
