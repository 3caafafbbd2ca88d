-- Push to offline devices (issue 15, part 3). Never edit once applied.
--
-- One row per provider token. A token belongs to one device session (the
-- refresh-token family, ``sid`` of access tokens): signing that session out
-- deletes it; a token the provider reports dead is deleted too. The same
-- token registered again (app reinstalled, other account) moves to the new
-- session: a device has one token per app.
CREATE TABLE push_tokens (
    token      text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id text NOT NULL,
    -- 'fcm' or 'apns'
    provider   text NOT NULL,
    -- The app's Android package name or iOS bundle id (APNs topic).
    app_id     text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX push_tokens_user_idx ON push_tokens (user_id);
CREATE INDEX push_tokens_session_idx ON push_tokens (session_id);

-- Per-user push privacy. No row: previews shown.
CREATE TABLE push_settings (
    user_id      text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    show_preview boolean NOT NULL DEFAULT TRUE,
    updated_at   bigint NOT NULL
);
