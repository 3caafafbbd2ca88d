-- Media uploads, group profiles and presence settings (PostgreSQL).

-- One uploaded file. The bytes live in the blob store under blob_key (and
-- thumb_key for an image's thumbnail); this row is what access checks read.
CREATE TABLE media (
    id           text PRIMARY KEY,
    owner_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    filename     text NOT NULL,
    blob_key     text NOT NULL,
    thumb_key    text,
    width        bigint,
    height       bigint,
    created_at   bigint NOT NULL
);
CREATE INDEX media_owner_idx ON media (owner_id);

-- The rooms an upload was sent in (or made the avatar of): their members may
-- read it. Until a row exists here only the uploader may.
CREATE TABLE media_rooms (
    media_id text NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    room_id  text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    PRIMARY KEY (media_id, room_id)
);
CREATE INDEX media_rooms_room_idx ON media_rooms (room_id);

-- What a group has beyond rooms.name: shown in its header.
CREATE TABLE group_profiles (
    room_id         text PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    description     text NOT NULL DEFAULT '',
    avatar_media_id text REFERENCES media (id) ON DELETE SET NULL
);

-- Who may see a user's presence, and when they were last online.
CREATE TABLE user_presence (
    user_id    text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    visibility text NOT NULL DEFAULT 'everyone',
    last_seen  bigint
);
