-- Files in AI projects (issue 15, part 4), PostgreSQL. Never edit once applied.
-- A preset ("project") holds files; only their extracted text is kept, cut
-- into chunks that full-text search ranks against each question. Times are
-- ms since the Unix epoch.

CREATE TABLE ai_files (
    id           text PRIMARY KEY,
    preset_id    text NOT NULL REFERENCES ai_presets (id) ON DELETE CASCADE,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    chars        bigint NOT NULL,
    chunks       integer NOT NULL,
    created_at   bigint NOT NULL
);
CREATE INDEX ai_files_preset_idx ON ai_files (preset_id, created_at);

-- preset_id is the file's, repeated so a search filters without a join.
CREATE TABLE ai_file_chunks (
    file_id   text NOT NULL REFERENCES ai_files (id) ON DELETE CASCADE,
    preset_id text NOT NULL,
    n         integer NOT NULL,
    text      text NOT NULL,
    PRIMARY KEY (file_id, n)
);
CREATE INDEX ai_file_chunks_preset_idx ON ai_file_chunks (preset_id);
-- 'simple' (no stemming), as messages_text_fts_idx in 0005: the same words
-- match as with SQLite FTS5's unicode61 tokenizer.
CREATE INDEX ai_file_chunks_text_fts_idx ON ai_file_chunks USING gin (to_tsvector('simple', text));

-- Which files an answer's context quoted, by generation (ai_answers.gen_id).
-- No reference to ai_files: a citation outlives the file it names.
CREATE TABLE ai_answer_files (
    gen_id  text NOT NULL,
    room_id text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    file_id text NOT NULL,
    name    text NOT NULL,
    pos     integer NOT NULL,
    PRIMARY KEY (gen_id, file_id)
);
CREATE INDEX ai_answer_files_room_idx ON ai_answer_files (room_id);
