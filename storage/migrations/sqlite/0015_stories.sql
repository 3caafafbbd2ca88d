-- Stories: 24-hour status updates (issue 15, part 1). Never edit once applied.
--
-- A story's audience is fixed when it is posted: the rows of story_audience
-- are written with the story and never recomputed (a contact added later
-- does not see it; one removed later still does, unless blocked).
CREATE TABLE stories (
    id         TEXT NOT NULL PRIMARY KEY,
    author_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,            -- text | image | video
    text       TEXT NOT NULL DEFAULT '', -- the text of a text story, the caption otherwise
    bg         TEXT NOT NULL DEFAULT '', -- text stories: background colour (#rrggbb)
    font       TEXT NOT NULL DEFAULT '', -- text stories: font name
    media_id   TEXT,                     -- image and video stories: the upload
    privacy    TEXT NOT NULL,            -- contacts | except | only
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX stories_author_idx ON stories (author_id, created_at);
CREATE INDEX stories_expires_idx ON stories (expires_at);

CREATE TABLE story_audience (
    story_id TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (story_id, user_id)
) WITHOUT ROWID;
-- The feed: the stories I am in the audience of.
CREATE INDEX story_audience_user_idx ON story_audience (user_id, story_id);

-- One row per viewer: when they first saw it, and their one reaction.
CREATE TABLE story_views (
    story_id   TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    viewer_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    viewed_at  INTEGER NOT NULL,
    reaction   TEXT,
    reacted_at INTEGER,
    PRIMARY KEY (story_id, viewer_id)
) WITHOUT ROWID;

-- Highlights keep chosen stories beyond their 24 hours.
CREATE TABLE story_highlights (
    id         TEXT NOT NULL PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX story_highlights_owner_idx ON story_highlights (owner_id, created_at);

CREATE TABLE story_highlight_items (
    highlight_id TEXT NOT NULL REFERENCES story_highlights (id) ON DELETE CASCADE,
    story_id     TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    added_at     INTEGER NOT NULL,
    PRIMARY KEY (highlight_id, story_id)
) WITHOUT ROWID;
CREATE INDEX story_highlight_items_story_idx ON story_highlight_items (story_id);
