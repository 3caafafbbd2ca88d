"""Documented examples of the story frames (``protocol.frames_stories``).

Merged into ``protocol.schema.EXAMPLES``.
"""

from __future__ import annotations

import msgspec

from protocol.frames_stories import (
    Story,
    StoryGone,
    StoryNew,
    StoryReacted,
    StoryViewData,
    StoryViewed,
)

_TS = 1_700_000_000_000
_DAY = 86_400_000

STORY_EXAMPLES: dict[str, msgspec.Struct] = {
    "story.new": StoryNew(
        d=Story(
            id="s_4f1c9a",
            author="u_123",
            kind="text",
            ts=_TS,
            expires_at=_TS + _DAY,
            text="Off to the mountains!",
            bg="#1e88e5",
            font="serif",
        )
    ),
    "story.gone": StoryGone(d="s_4f1c9a"),
    "story.viewed": StoryViewed(d=StoryViewData(story="s_4f1c9a", viewer="u_456", ts=_TS + 60_000)),
    "story.reacted": StoryReacted(
        d=StoryViewData(story="s_4f1c9a", viewer="u_456", ts=_TS + 90_000, emoji="🔥")
    ),
}
