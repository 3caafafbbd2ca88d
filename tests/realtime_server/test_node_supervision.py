"""A node's services under the one supervision model, over real sockets."""

from __future__ import annotations

import logging

import httpx
import pytest

from protocol.client import open_client
from protocol.frames import Ok
from protocol.frames_presence import Typing, TypingData, TypingStart
from tests.conftest import NodeFactory
from tests.e2e.helpers import create_group, register
from tests.rich.live import next_of


async def test_a_crashing_typing_task_is_logged_and_the_tracker_serves_on(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with node_factory(typing_ttl=0.3, typing_throttle=5.0) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            room = await create_group(http, ada, bob)
        tracker = node.gateway.services.typing
        calls: list[bytes] = []

        def remote(_user: str, data: bytes) -> None:
            # Another node's link that fails once, on the expiry's "off".
            calls.append(data)
            if len(calls) == 2:
                raise RuntimeError("the link broke")

        tracker.remote = remote
        async with (
            open_client(node.ws_url, ada.access_token) as a,
            open_client(node.ws_url, bob.access_token) as b,
        ):
            with caplog.at_level(logging.ERROR, "actors.supervision"):
                assert isinstance(await a.request(TypingStart(id=0, d=TypingData(room=room))), Ok)
                assert (await next_of(b, Typing)).d.on is True
                # The expiry task crashes after telling local members.
                assert (await next_of(b, Typing, timeout=3)).d.on is False
            assert "typing: _expire crashed; restarting" in caplog.text
            assert tracker._tasks.statistics()["crashes"] == 1
            # Typing still works: the crash stayed in its task.
            assert isinstance(await a.request(TypingStart(id=0, d=TypingData(room=room))), Ok)
            assert (await next_of(b, Typing)).d.on is True
            assert (await next_of(b, Typing, timeout=3)).d.on is False


async def test_a_node_stops_its_services_in_the_reverse_of_their_start_order(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, "actors.supervision"):
        async with node_factory():
            pass
    prefix = "shutdown: stopping "
    stopped = [
        r.getMessage().removeprefix(prefix)
        for r in caplog.records
        if r.getMessage().startswith(prefix)
    ]
    order = [
        "serve_node_listener",  # stop accepting (after drain closed the sockets)
        "AiService.serve",  # stop AI
        "PresenceTracker.serve",  # stop the trackers
        "TypingTracker.serve",
        "CallRegistry.serve",  # calls, then rooms
        "ActorSystem.serve",
    ]
    assert [name for name in stopped if name in order] == order
