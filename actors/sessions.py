"""What actors need of the gateway's sessions and hub, as ``Protocol``s.

``actors/`` never imports the gateway (DESIGN: actors never touch a socket),
yet rooms and calls answer requests on the session that sent them and fan
out to every session of a member. These protocols name exactly the part they
use; ``realtime_server.session.Session`` and ``realtime_server.hub.Hub``
satisfy them, and so does a device on another node
(``realtime_server.cluster.calls.RemoteSession``) where only answering is
needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import msgspec
import trio


class DeviceInfo(Protocol):
    @property
    def device(self) -> str: ...

    @property
    def conn_id(self) -> int: ...


class Requester(Protocol):
    """The device a request came from: where its answer goes."""

    @property
    def user_id(self) -> str: ...

    @property
    def info(self) -> DeviceInfo: ...

    @property
    def closed(self) -> trio.Event: ...

    def push_frame(self, frame: msgspec.Struct) -> None: ...


class MemberSession(Requester, Protocol):
    """A connection of this node: fan-out writes encoded bytes to it."""

    @property
    def close_code(self) -> int | None:
        """Set once the connection is closing: fan-out drops it then."""
        ...

    @property
    def syncing(self) -> bool:
        """True while it replays what it missed: live events are held back."""
        ...

    def push(self, data: bytes) -> None: ...

    def push_event(self, room: str, seq: int, data: bytes) -> None: ...


class SessionHub(Protocol):
    """Who is online on this node."""

    def sessions_of(self, user_id: str) -> Iterable[MemberSession]: ...

    def count_sessions(self, user_ids: Iterable[str]) -> int: ...
