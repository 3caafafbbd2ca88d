-- Files in AI projects (issue 15, part 4), SQLite. Never edit once applied.
-- A preset ("project") holds files; only their extracted text is kept, cut
-- into chunks that full-text search ranks against each question. Times are
-- ms since the Unix epoch.

CREATE TABLE ai_files (
    id           TEXT PRIMARY KEY,
    preset_id    TEXT NOT NULL REFERENCES ai_presets (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    chars        INTEGER NOT NULL,
    chunks       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX ai_files_preset_idx ON ai_files (preset_id, created_at);

-- preset_id is the file's, repeated so a search filters without a join.
CREATE TABLE ai_file_chunks (
    file_id   TEXT NOT NULL REFERENCES ai_files (id) ON DELETE CASCADE,
    preset_id TEXT NOT NULL,
    n         INTEGER NOT NULL,
    text      TEXT NOT NULL,
    PRIMARY KEY (file_id, n)
);
CREATE INDEX ai_file_chunks_preset_idx ON ai_file_chunks (preset_id);

-- External-content FTS5 over the chunks' text (as messages_fts in 0005);
-- the triggers also run for rows deleted by the cascades above.
CREATE VIRTUAL TABLE ai_file_chunks_fts USING fts5(text, content='ai_file_chunks', content_rowid='rowid');

CREATE TRIGGER ai_file_chunks_fts_insert AFTER INSERT ON ai_file_chunks BEGIN
    INSERT INTO ai_file_chunks_fts (rowid, text) VALUES (new.rowid, new.text);
END;

CREATE TRIGGER ai_file_chunks_fts_delete AFTER DELETE ON ai_file_chunks BEGIN
    INSERT INTO ai_file_chunks_fts (ai_file_chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;

-- Which files an answer's context quoted, by generation (ai_answers.gen_id).
-- No reference to ai_files: a citation outlives the file it names.
CREATE TABLE ai_answer_files (
    gen_id  TEXT NOT NULL,
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    file_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    pos     INTEGER NOT NULL,
    PRIMARY KEY (gen_id, file_id)
);
CREATE INDEX ai_answer_files_room_idx ON ai_answer_files (room_id);
