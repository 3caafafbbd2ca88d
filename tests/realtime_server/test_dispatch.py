"""The dispatcher is where "one frame never takes the server down" is kept (issue 12, item 18).

Whatever a handler raises becomes one ``err`` on that frame; only cancellation
passes through. Plain tests: a handler and a session that records what it is
told, no sockets (the end-to-end twin is tests/e2e/test_storage_outage.py).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from actors.errors import ActorUnavailable
from protocol import frames
from protocol.errors import ErrorCode
from realtime_server.dispatch import Dispatcher, FrameContext
from realtime_server.services import NodeServices
from storage.errors import Conflict, StoreError
from storage.outage import health_of


class RecordingSession:
    user_id = "u_1"

    def __init__(self) -> None:
        self.errors: list[tuple[ErrorCode, str | None, int | None]] = []

    def push_error(
        self, code: ErrorCode, message: str | None = None, re: int | None = None
    ) -> None:
        self.errors.append((code, message, re))


def context(session: RecordingSession, store: object) -> FrameContext:
    # Only the store is reached (its health); nothing else of the node runs here.
    stand_in: Any = store  # any object: only its identity matters
    absent: Any = None
    services = NodeServices(
        store=stand_in,
        writer=absent,
        tokens=absent,
        typing=absent,
        presence=absent,
        ai=absent,
        quota=absent,
        clock=lambda: 0,
        push_to_user=lambda user_id, raw: None,
        stats=absent,
    )
    return FrameContext(session, None, None, None, services)  # type: ignore[arg-type]


async def answer_to(exc: BaseException, store: object | None = None) -> list[Any]:
    async def handler(ctx: FrameContext, frame: frames.Ping) -> None:
        raise exc

    dispatcher = Dispatcher()
    dispatcher.register(frames.Ping, handler)
    session = RecordingSession()
    guarded = dispatcher.handler_for(frames.Ping(id=7))
    assert guarded is not None
    await guarded(context(session, store or Store()), frames.Ping(id=7))
    return [(code, re) for code, _, re in session.errors]


class Store:
    """Stands for the node's store object: only its identity matters here."""


async def test_storage_failing_answers_unavailable_and_is_one_outage_for_the_store():
    store = Store()
    for _ in range(3):
        assert await answer_to(StoreError("gone"), store) == [(ErrorCode.UNAVAILABLE, 7)]
    assert health_of(store).statistics().outages == 1


async def test_a_data_answer_from_storage_keeps_its_meaning():
    assert await answer_to(Conflict("cid")) == [(ErrorCode.CONFLICT, 7)]


async def test_an_actor_error_answers_with_its_own_code():
    assert await answer_to(ActorUnavailable("stopped")) == [(ErrorCode.UNAVAILABLE, 7)]


async def test_a_bug_answers_internal_and_is_logged_with_its_traceback(caplog):
    with caplog.at_level(logging.ERROR):
        assert await answer_to(KeyError("oops")) == [(ErrorCode.INTERNAL, 7)]
    assert any(r.exc_info for r in caplog.records)


async def test_cancellation_is_neither_answered_nor_swallowed():
    async def handler(ctx: FrameContext, frame: frames.Ping) -> None:
        await trio.sleep_forever()

    dispatcher = Dispatcher()
    dispatcher.register(frames.Ping, handler)
    session = RecordingSession()
    guarded = dispatcher.handler_for(frames.Ping(id=1))
    assert guarded is not None
    with trio.move_on_after(0.01) as scope:
        await guarded(context(session, Store()), frames.Ping(id=1))
    assert scope.cancelled_caught
    assert session.errors == []
