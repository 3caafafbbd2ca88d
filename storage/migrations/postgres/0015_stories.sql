-- Stories: 24-hour status updates (issue 15, part 1). Never edit once applied.
--
-- A story's audience is fixed when it is posted: the rows of story_audience
-- are written with the story and never recomputed (a contact added later
-- does not see it; one removed later still does, unless blocked).
CREATE TABLE stories (
    id         text NOT NULL PRIMARY KEY,
    author_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,            -- text | image | video
    text       text NOT NULL DEFAULT '', -- the text of a text story, the caption otherwise
    bg         text NOT NULL DEFAULT '', -- text stories: background colour (#rrggbb)
    font       text NOT NULL DEFAULT '', -- text stories: font name
    media_id   text,                     -- image and video stories: the upload
    privacy    text NOT NULL,            -- contacts | except | only
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX stories_author_idx ON stories (author_id, created_at);
CREATE INDEX stories_expires_idx ON stories (expires_at);

CREATE TABLE story_audience (
    story_id text NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    user_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (story_id, user_id)
);
-- The feed: the stories I am in the audience of.
CREATE INDEX story_audience_user_idx ON story_audience (user_id, story_id);

-- One row per viewer: when they first saw it, and their one reaction.
CREATE TABLE story_views (
    story_id   text NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    viewer_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    viewed_at  bigint NOT NULL,
    reaction   text,
    reacted_at bigint,
    PRIMARY KEY (story_id, viewer_id)
);

-- Highlights keep chosen stories beyond their 24 hours.
CREATE TABLE story_highlights (
    id         text NOT NULL PRIMARY KEY,
    owner_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX story_highlights_owner_idx ON story_highlights (owner_id, created_at);

CREATE TABLE story_highlight_items (
    highlight_id text NOT NULL REFERENCES story_highlights (id) ON DELETE CASCADE,
    story_id     text NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    added_at     bigint NOT NULL,
    PRIMARY KEY (highlight_id, story_id)
);
CREATE INDEX story_highlight_items_story_idx ON story_highlight_items (story_id);
