-- Issue 12: device sessions signed out (remote sign-out, password change or
-- reset, logout, refresh-token reuse), so their access tokens stay refused
-- after a restart. Each node loads the live rows at start-up and checks its
-- copy in memory; a row is needed only until every access token the session
-- was issued has expired (expires_at), then it is purged.
CREATE TABLE signed_out_sessions (
    session_id    TEXT PRIMARY KEY,   -- the refresh-token family id (the token's sid)
    user_id       TEXT NOT NULL,
    signed_out_at INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX signed_out_sessions_expires_idx ON signed_out_sessions (expires_at);
