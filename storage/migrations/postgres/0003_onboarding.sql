-- Onboarding (issue 8): phone and Google sign-in, profiles, avatars, contacts,
-- blocks, one-time codes, rate-limit counters and OpenID Connect state.
-- Unique constraint names matter: storage maps them to Conflict fields.

-- A phone sign-up has no email, username or password yet. The unique indexes
-- on email_lc/username_lc already let NULLs repeat.
ALTER TABLE users
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN email_lc DROP NOT NULL,
    ALTER COLUMN username DROP NOT NULL,
    ALTER COLUMN username_lc DROP NOT NULL,
    ALTER COLUMN password_hash DROP NOT NULL;

-- E.164 text ("+33612345678"); phone_hash is its SHA-256 (hex), what contact
-- discovery matches on.
ALTER TABLE users
    ADD COLUMN phone text,
    ADD COLUMN phone_hash text,
    ADD COLUMN bio text NOT NULL DEFAULT '',
    -- NULL = no avatar; otherwise the avatar's content hash (ETag, cache key).
    ADD COLUMN avatar_etag text,
    ADD COLUMN email_verified_at bigint,
    -- Privacy: 'everyone' | 'contacts' (people in MY contacts) | 'nobody'. Who
    -- sees last seen and online is presence's setting (storage.presence).
    ADD COLUMN photo_privacy text NOT NULL DEFAULT 'everyone',
    ADD COLUMN groups_privacy text NOT NULL DEFAULT 'everyone';
CREATE UNIQUE INDEX users_phone_key ON users (phone);
CREATE INDEX users_phone_hash_idx ON users (phone_hash);

-- One live code per (purpose, target): a new code replaces the old one; a
-- used, expired or exhausted code is deleted. Only an HMAC of the code is kept.
CREATE TABLE otp_codes (
    purpose      text NOT NULL,      -- 'signin' | 'reset' | 'verify_email'
    target       text NOT NULL,      -- E.164 number or folded email
    code_hash    text NOT NULL,
    created_at   bigint NOT NULL,
    expires_at   bigint NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    CONSTRAINT otp_codes_pkey PRIMARY KEY (purpose, target)
);

-- Velocity counters with back-off, shared by every node through the database.
CREATE TABLE rate_limits (
    key          text CONSTRAINT rate_limits_pkey PRIMARY KEY,
    window_start bigint NOT NULL,
    count        integer NOT NULL,
    next_at      bigint NOT NULL,   -- no hit allowed before this (back-off)
    expires_at   bigint NOT NULL    -- the row means nothing after this
);
CREATE INDEX rate_limits_expires_idx ON rate_limits (expires_at);

-- A started OpenID Connect sign-in (state) or a nonce handed to a mobile app.
CREATE TABLE oidc_states (
    state_hash    text CONSTRAINT oidc_states_pkey PRIMARY KEY,
    kind          text NOT NULL,     -- 'code' | 'nonce'
    provider      text NOT NULL,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    binding_hash  text NOT NULL,
    device        text NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL
);
CREATE INDEX oidc_states_expires_idx ON oidc_states (expires_at);

CREATE TABLE user_identities (
    provider   text NOT NULL,
    subject    text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text,
    created_at bigint NOT NULL,
    CONSTRAINT user_identities_pkey PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

CREATE TABLE contacts (
    owner_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL DEFAULT '',  -- what the owner calls them; '' = their own name
    created_at bigint NOT NULL,
    CONSTRAINT contacts_pkey PRIMARY KEY (owner_id, contact_id)
);

CREATE TABLE blocks (
    blocker_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    CONSTRAINT blocks_pkey PRIMARY KEY (blocker_id, blocked_id)
);
-- "who blocked me": search leaves those people out.
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE avatars (
    user_id      text CONSTRAINT avatars_pkey PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    etag         text NOT NULL,
    content_type text NOT NULL,
    data         bytea NOT NULL,
    updated_at   bigint NOT NULL
);
