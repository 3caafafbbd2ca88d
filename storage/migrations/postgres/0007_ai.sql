-- AI conversations (issue 4), PostgreSQL. Never edit once applied.
-- An AI conversation is a room of kind 'ai' (its messages live in messages);
-- these tables hold what only AI needs. Times are ms since the Unix epoch.

CREATE TABLE ai_folders (
    id         text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX ai_folders_user_idx ON ai_folders (user_id);

CREATE TABLE ai_presets (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    model         text NOT NULL,
    system_prompt text NOT NULL,
    temperature   double precision,
    max_tokens    integer,
    created_at    bigint NOT NULL
);
CREATE INDEX ai_presets_user_idx ON ai_presets (user_id);

CREATE TABLE ai_conversations (
    room_id       text PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text NOT NULL,
    model         text NOT NULL,
    system_prompt text NOT NULL,
    temperature   double precision,
    max_tokens    integer,
    folder_id     text REFERENCES ai_folders (id) ON DELETE SET NULL,
    preset_id     text REFERENCES ai_presets (id) ON DELETE SET NULL,
    favourite     boolean NOT NULL DEFAULT false,
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL
);
CREATE INDEX ai_conversations_user_idx ON ai_conversations (user_id, updated_at);

-- One row per stored AI answer: how it ended and what it cost.
CREATE TABLE ai_answers (
    message_id        text PRIMARY KEY,
    room_id           text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq               bigint NOT NULL,
    gen_id            text NOT NULL,
    user_id           text NOT NULL,
    model             text NOT NULL,
    status            text NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    created_at        bigint NOT NULL
);
CREATE INDEX ai_answers_room_idx ON ai_answers (room_id, seq);

-- Seq ranges left out of the visible history (regenerated answers, edited branches).
CREATE TABLE ai_hidden (
    room_id  text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    from_seq bigint NOT NULL,
    to_seq   bigint NOT NULL
);
CREATE INDEX ai_hidden_room_idx ON ai_hidden (room_id);

-- Usage per user per period: 'YYYY-MM' (month) and 'YYYY-MM-DD' (day); the quota is billing's.
CREATE TABLE ai_usage (
    user_id           text NOT NULL,
    period            text NOT NULL,
    messages          bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period)
);
