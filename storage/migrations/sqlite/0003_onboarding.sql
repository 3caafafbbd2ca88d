-- Onboarding (issue 8): phone and Google sign-in, profiles, avatars, contacts,
-- blocks, one-time codes, rate-limit counters and OpenID Connect state.

-- 1. A phone sign-up has no email, username or password yet, so those columns
-- become nullable (the unique indexes on email_lc/username_lc already let
-- NULLs repeat). SQLite cannot ALTER COLUMN, and the usual rebuild (create a
-- copy, DROP users, rename) is unsafe here: migrations run with foreign keys
-- ON inside one transaction, where PRAGMA foreign_keys cannot be turned off,
-- so DROP TABLE users would cascade-delete every refresh token, membership
-- and any other row that references users. Dropping NOT NULL changes nothing
-- on disk, and this is SQLite's documented procedure for exactly that
-- ("Making Other Kinds Of Table Schema Changes", lang_altertable.html):
-- edit the stored CREATE TABLE text. replace() edits only the five column
-- definitions, so columns other migrations ADDed stay as they are.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(replace(replace(replace(replace(sql,
       'email         TEXT NOT NULL,', 'email         TEXT,'),
       'email_lc      TEXT NOT NULL,', 'email_lc      TEXT,'),
       'username      TEXT NOT NULL,', 'username      TEXT,'),
       'username_lc   TEXT NOT NULL,', 'username_lc   TEXT,'),
       'password_hash TEXT NOT NULL,', 'password_hash TEXT,')
 WHERE type = 'table' AND name = 'users';
-- RESET reloads this connection's schema; the DDL below bumps the schema
-- cookie, so every other connection reloads it too.
PRAGMA writable_schema = RESET;
-- Proof the edit took: if it did not, this insert fails and the whole
-- migration rolls back instead of leaving a half-changed schema.
INSERT INTO users (id, display_name, created_at) VALUES ('__0003_probe', '', 0);
DELETE FROM users WHERE id = '__0003_probe';

-- E.164 text ("+33612345678"); phone_hash is its SHA-256 (hex), what contact
-- discovery matches on.
ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN phone_hash TEXT;
ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
-- NULL = no avatar; otherwise the avatar's content hash (ETag and cache key).
ALTER TABLE users ADD COLUMN avatar_etag TEXT;
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
-- Privacy: 'everyone' | 'contacts' (people in MY contacts) | 'nobody'. Who
-- sees last seen and online is presence's setting (storage.presence).
ALTER TABLE users ADD COLUMN photo_privacy TEXT NOT NULL DEFAULT 'everyone';
ALTER TABLE users ADD COLUMN groups_privacy TEXT NOT NULL DEFAULT 'everyone';
CREATE UNIQUE INDEX users_phone_key ON users (phone);
CREATE INDEX users_phone_hash_idx ON users (phone_hash);

-- One live code per (purpose, target): a new code replaces the old one; a
-- used, expired or exhausted code is deleted. Only an HMAC of the code is kept.
CREATE TABLE otp_codes (
    purpose      TEXT NOT NULL,      -- 'signin' | 'reset' | 'verify_email'
    target       TEXT NOT NULL,      -- E.164 number or folded email
    code_hash    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    PRIMARY KEY (purpose, target)
) WITHOUT ROWID;

-- Velocity counters with back-off, shared by every node through the database.
CREATE TABLE rate_limits (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,  -- no hit allowed before this (back-off)
    expires_at   INTEGER NOT NULL   -- the row means nothing after this
) WITHOUT ROWID;
CREATE INDEX rate_limits_expires_idx ON rate_limits (expires_at);

-- A started OpenID Connect sign-in (state) or a nonce handed to a mobile app.
CREATE TABLE oidc_states (
    state_hash    TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,     -- 'code' | 'nonce'
    provider      TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    binding_hash  TEXT NOT NULL,
    device        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oidc_states_expires_idx ON oidc_states (expires_at);

CREATE TABLE user_identities (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
) WITHOUT ROWID;
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

CREATE TABLE contacts (
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL DEFAULT '',  -- what the owner calls them; '' = their own name
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, contact_id)
) WITHOUT ROWID;

CREATE TABLE blocks (
    blocker_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;
-- "who blocked me": search leaves those people out.
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE avatars (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    updated_at   INTEGER NOT NULL
);
