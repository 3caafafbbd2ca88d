"""A dropped socket gives its memory back at once (issue 12, item 23).

``serve`` freezes start-up objects and collects the old generation almost
never (thresholds 50000/50/1000). A connection that lives a while is promoted
to that generation; if its objects formed a reference cycle they stayed after
the drop until a full collection. The gateway breaks every per-connection
cycle, so reference counting frees a connection the moment it ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import httpx
import pytest
import trio

from protocol import frames
from realtime_server.cli import _tune_gc
from realtime_server.gateway import _Conn
from realtime_server.session import Session
from tests.conftest import NodeFactory
from tests.e2e.helpers import register
from tests.e2e.rawws import hello, open_raw

CONNECTIONS = 40


@pytest.fixture
def serve_gc_tuning() -> Iterator[None]:
    """The GC settings ``realtime-server serve`` ships, for this test only."""
    thresholds = gc.get_threshold()
    _tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


async def test_dropped_connections_leave_nothing_behind_without_a_full_collection(
    node_factory: NodeFactory, serve_gc_tuning: None
):
    async with node_factory(register_per_ip=CONNECTIONS) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            tokens = [(await register(http)).access_token for _ in range(CONNECTIONS)]
        for _cycle in range(2):
            async with trio.open_nursery() as nursery:
                opened = trio.Semaphore(0)
                release = trio.Event()

                async def one(token: str, opened: trio.Semaphore, release: trio.Event) -> None:
                    async with open_raw(node.port) as raw:
                        await raw.send_frame(hello(token))
                        assert isinstance(await raw.receive_frame(), frames.Welcome)
                        opened.release()
                        await release.wait()

                for token in tokens:
                    nursery.start_soon(one, token, opened, release)
                for _ in tokens:
                    await opened.acquire()
                assert alive(Session) == CONNECTIONS
                # These connections have lived through younger collections:
                # promote them to the old generation, as time would.
                gc.collect(1)
                release.set()
            with trio.fail_after(10):
                while node.gateway.connections:  # noqa: ASYNC110 - server-side count
                    await trio.sleep(0.02)
            # No gc.collect() here: reference counting alone must have freed them.
            assert alive(Session) == 0
            assert alive(_Conn) == 0
