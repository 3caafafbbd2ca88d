"""Chat-list frames (issue 18): a user's chat settings and stars, across devices.

Both are server pushes only; the changes themselves are REST requests
(``PATCH /rooms/{id}/settings``, ``PUT``/``DELETE /rooms/{id}/messages/{seq}/star``,
and reading a chat, which clears its marked-unread flag)::

    chat.settings   server: the user's settings of ``room`` changed (full state)
    msg.starred     server: the user starred (``on``) or unstarred a message

They go to every online device of that user (the one that made the change
too: it is the same state its REST answer had). They are not replayed on
resume: a device that was offline reads the current state with ``GET /rooms``
(every room carries its settings) and ``GET /me/starred``.

Pure types, no I/O: imported by ``protocol.frames`` into its unions.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocol.frames_base import Frame

NotifyLevel = Literal["all", "mentions", "none"]


class ChatSettingsData(msgspec.Struct, kw_only=True):
    """One user's settings of one room, as the server evaluates them now."""

    room: str
    muted: Annotated[bool, msgspec.Meta(description="Muted now: no push, unread still counts.")]
    muted_until: Annotated[
        int | None,
        msgspec.Meta(
            description="End of the mute, ms since the epoch; null if not muted or forever."
        ),
    ] = None
    mute_forever: bool = False
    pinned: bool = False
    pinned_at: Annotated[
        int | None, msgspec.Meta(description="Pin order key: higher is nearer the top.")
    ] = None
    archived: Annotated[
        bool,
        msgspec.Meta(description="In the archive now: archived, and no message since (or muted)."),
    ] = False
    marked_unread: Annotated[
        bool, msgspec.Meta(description="Marked unread by hand; reading the chat clears it.")
    ] = False
    notify: Annotated[
        NotifyLevel, msgspec.Meta(description="Which messages of this chat may notify.")
    ] = "all"
    updated_at: int = 0


class StarredData(msgspec.Struct, kw_only=True):
    room: str
    seq: int
    on: bool
    at: int  # when it was starred (or unstarred), ms since the epoch


# ----- server -> client ----------------------------------------------------


class ChatSettingsChanged(Frame, tag="chat.settings"):
    """Your settings of a chat changed (on any of your devices)."""

    d: ChatSettingsData


class MsgStarred(Frame, tag="msg.starred"):
    """You starred or unstarred a message (on any of your devices)."""

    d: StarredData


CHATLIST_SERVER_FRAMES = (ChatSettingsChanged, MsgStarred)
