"""Routing of decoded client frames to the handler of their type.

Each feature registers its handlers in its own module (``handlers_chat`` for
messaging, and so on), so the gateway stays a transport and never grows a
per-feature ``match``. A handler gets the connection's ``FrameContext`` and the
frame; it answers by pushing frames to ``ctx.session`` (never by writing to the
socket) and may await (e.g. a full actor inbox: that is backpressure on this
connection only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from actors.runtime import ActorSystem
from realtime_server.hub import Hub
from realtime_server.session import Session
from realtime_server.settings import Settings

F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class FrameContext:
    """What a handler may use: the session it answers and the node's services."""

    session: Session
    settings: Settings
    system: ActorSystem
    hub: Hub
    services: dict[str, Any]

    @property
    def user_id(self) -> str:
        return self.session.user_id


Handler = Callable[[FrameContext, Any], Awaitable[None]]


class Dispatcher:
    def __init__(self) -> None:
        self._handlers: dict[type, Handler] = {}

    def register(
        self, frame_type: type[F], handler: Callable[[FrameContext, F], Awaitable[None]]
    ) -> None:
        if frame_type in self._handlers:
            raise ValueError(f"{frame_type.__name__} already has a handler")
        self._handlers[frame_type] = handler

    def handler_for(self, frame: object) -> Handler | None:
        return self._handlers.get(type(frame))

    def handled_types(self) -> set[type]:
        return set(self._handlers)
