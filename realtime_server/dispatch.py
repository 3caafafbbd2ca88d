"""Routing of decoded client frames to the handler of their type.

Each feature registers its handlers in its own module (``handlers_chat`` for
messaging, and so on), so the gateway stays a transport and never grows a
per-feature ``match``. A handler gets the connection's ``FrameContext`` and the
frame; it answers by pushing frames to ``ctx.session`` (never by writing to the
socket) and may await (e.g. a full actor inbox: that is backpressure on this
connection only).

Every frame passes through ``Dispatcher``, so this is where the rule "one
frame never takes the server down" is kept (issue 12, item 18): whatever a
handler raises is answered here, on that frame, and the connection reads on.

- storage failing (``StoreError``): ``err`` ``unavailable`` (retryable); the
  store's ``StorageHealth`` logs one line per outage, not one per frame;
- a data answer from storage: ``Conflict`` -> ``conflict``, ``NotFound`` ->
  ``not_found``;
- an ``ActorError`` a handler did not catch: its own code;
- anything else is our bug: ``err`` ``internal``, logged with its traceback.

Cancellation (``trio.Cancelled``, a ``BaseException``) is never caught.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from actors.errors import ActorError
from actors.runtime import ActorSystem
from protocol.errors import ErrorCode
from realtime_server.base.settings import Settings
from realtime_server.hub import Hub
from realtime_server.services import NodeServices
from realtime_server.session import Session
from storage.errors import Conflict, NotFound, StoreError
from storage.outage import health_of

log = logging.getLogger(__name__)

F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class FrameContext:
    """What a handler may use: the session it answers and the node's services."""

    session: Session
    settings: Settings
    system: ActorSystem
    hub: Hub
    services: NodeServices

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
        self._handlers[frame_type] = _guarded(handler)

    def handler_for(self, frame: object) -> Handler | None:
        """The handler of ``frame``'s type, guarded: it never raises (but ``Cancelled``)."""
        return self._handlers.get(type(frame))

    def handled_types(self) -> set[type]:
        return set(self._handlers)


def _guarded(handler: Callable[[FrameContext, Any], Awaitable[None]]) -> Handler:
    async def guarded(ctx: FrameContext, frame: Any) -> None:
        try:
            await handler(ctx, frame)
        except Exception as exc:  # the one place that answers them all
            answer_failure(ctx, frame, exc)

    # Its name, and __wrapped__ for introspection, are the handler's.
    return functools.update_wrapper(guarded, handler)


def answer_failure(ctx: FrameContext, frame: Any, exc: Exception) -> None:
    """Answer ``frame`` with the ``err`` that ``exc`` earns (see the module docstring)."""
    request_id = getattr(frame, "id", None)
    name = type(frame).__name__
    match exc:
        case Conflict():
            code, message = ErrorCode.CONFLICT, f"This {exc.field} already exists."
        case NotFound():
            code, message = ErrorCode.NOT_FOUND, "Something this request refers to does not exist."
        case StoreError():
            health_of(ctx.services.store).failed(exc)
            log.debug("%s answered unavailable: %r", name, exc)
            code, message = ErrorCode.UNAVAILABLE, "Storage is unavailable; retry shortly."
        case ActorError():
            code, message = exc.code, exc.message
        case _:
            log.error("%s handler failed; answered internal", name, exc_info=exc)
            code, message = ErrorCode.INTERNAL, "Internal error; the request was not completed."
    ctx.session.push_error(code, message, request_id)
