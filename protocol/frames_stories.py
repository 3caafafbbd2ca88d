"""Story frames (issue 15, part 1): 24-hour status updates.

Stories are posted, listed, viewed, reacted to and replied to over REST
(``/stories...``); the socket only carries what happened, live, to the
online devices concerned::

    story.new        server: a contact posted a story you are in the audience of
    story.gone       server: a story you could see was deleted by its author
    story.viewed     server (to the author): someone viewed one of your stories
    story.reacted    server (to the author): someone reacted to one of your stories

Nothing is replayed on resume: a device that was offline reads the feed
(``GET /stories/feed``) and the viewers (``GET /stories/{id}/viewers``).
A reply is not a story frame: it arrives as ``msg.new`` in the direct room.

Pure types, no I/O: imported by ``protocol.frames`` into its unions.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocol.frames_base import Frame

StoryKind = Literal["text", "image", "video"]
StoryPrivacy = Literal["contacts", "except", "only"]


# Every field always present (no omit_defaults): REST shows ``seen: false``.
class Story(msgspec.Struct):
    """One story as its reader sees it."""

    id: str
    author: str  # user id
    kind: StoryKind
    ts: int  # posted, ms since the epoch
    expires_at: int  # ms since the epoch; 24 hours after ``ts`` by default
    text: Annotated[str, msgspec.Meta(description="A text story's text, or a caption.")] = ""
    bg: Annotated[str, msgspec.Meta(description="Text stories: background colour #rrggbb.")] = ""
    font: Annotated[str, msgspec.Meta(description="Text stories: the font's name.")] = ""
    media: Annotated[
        str | None,
        msgspec.Meta(description="Image and video stories: GET /stories/{id}/media."),
    ] = None
    seen: Annotated[bool, msgspec.Meta(description="You viewed it.")] = False
    reaction: Annotated[str | None, msgspec.Meta(description="Your reaction.")] = None


class StoryViewData(msgspec.Struct, omit_defaults=True):
    story: str
    viewer: str  # user id
    ts: int  # ms since the epoch
    emoji: str | None = None  # story.reacted: the reaction


# ----- server -> client ----------------------------------------------------


class StoryNew(Frame, tag="story.new"):
    """A contact posted a story you may see."""

    d: Story


class StoryGone(Frame, tag="story.gone"):
    """A story you could see was deleted early by its author (``d``: its id)."""

    d: str


class StoryViewed(Frame, tag="story.viewed"):
    """To the author: one of your stories was viewed (first view per viewer only)."""

    d: StoryViewData


class StoryReacted(Frame, tag="story.reacted"):
    """To the author: someone reacted to one of your stories."""

    d: StoryViewData


STORY_SERVER_FRAMES = (StoryNew, StoryGone, StoryViewed, StoryReacted)
