"""Typing and presence frames.

Typing (only members of the room see it; nothing is stored)::

    typing.start / typing.stop   client: I am (no longer) typing in ``room``; answered ``ok``
    typing                       server: ``user`` is (no longer) typing in ``room``

A typing indicator expires on its own after the server's typing TTL (a
``typing`` with ``on: false`` is sent), and is cleared when the typing device
disconnects. Clients repeat ``typing.start`` every few seconds while typing;
repeats within the throttle window are acknowledged but not re-broadcast.

Presence (sent only to users who share a room with the user or are contacts,
and only as the user's visibility setting allows)::

    presence.get   client: the presence of up to 100 users; answered ``presence.list``;
                   with ``sub`` (default) the session follows them from now on
    presence       server: a followed ``user`` came online, or went offline at ``last_seen``

Pure types, no I/O: imported by ``protocol.frames`` into its unions.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol.frames_base import Frame, RequestId, RoomId

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class TypingData(msgspec.Struct, omit_defaults=True):
    room: RoomId


class TypingEventData(msgspec.Struct):
    """``user`` started (``on``) or stopped typing in ``room``."""

    room: str
    user: str
    on: bool


class PresenceState(msgspec.Struct, omit_defaults=True):
    """``online``, or offline since ``last_seen`` (ms since epoch; absent if never seen)."""

    user: str
    online: bool
    last_seen: int | None = None


class PresenceGetData(msgspec.Struct, omit_defaults=True):
    """``sub``: also send ``presence`` pushes when these users come and go."""

    users: Annotated[list[UserId], msgspec.Meta(min_length=1, max_length=100)]
    sub: bool = True


class PresenceListData(msgspec.Struct, omit_defaults=True):
    """The users of the request whose presence you may see; the others are left out."""

    users: list[PresenceState] = []


# ----- client -> server ----------------------------------------------------


class TypingStart(Frame, tag="typing.start"):
    """I am typing in ``d.room``; repeat every few seconds while typing. Answered ``ok``."""

    id: RequestId
    d: TypingData


class TypingStop(Frame, tag="typing.stop"):
    """I stopped typing in ``d.room``. Answered ``ok``."""

    id: RequestId
    d: TypingData


class PresenceGet(Frame, tag="presence.get"):
    """Ask the presence of some users; answered ``presence.list``."""

    id: RequestId
    d: PresenceGetData


PRESENCE_CLIENT_TYPES: frozenset[str] = frozenset({"typing.start", "typing.stop", "presence.get"})


# ----- server -> client ----------------------------------------------------


class Typing(Frame, tag="typing"):
    """A member of one of your rooms started or stopped typing."""

    d: TypingEventData


class Presence(Frame, tag="presence"):
    """A user you may see came online or went offline."""

    d: PresenceState


class PresenceList(Frame, tag="presence.list"):
    """Reply to ``presence.get``."""

    re: int
    d: PresenceListData
