"""The session's writer also keeps the heartbeat: one task per connection, not two.

Virtual time (autojump) over a real socket pair: the beats are exactly
``interval`` apart whatever the traffic, and a beat that closes the session
ends the writer with that close frame.
"""

from __future__ import annotations

import pytest
import trio
from wsproto.events import CloseConnection

from protocol.errors import CloseCode
from realtime_server.wsframes import binary_frame
from tests.realtime_server.test_session import make_session, read_events


@pytest.fixture
async def pair():
    a, b = trio.socket.socketpair()
    server, client = trio.SocketStream(a), trio.SocketStream(b)
    yield server, client
    await server.aclose()
    await client.aclose()


async def test_the_writer_beats_every_interval_while_idle(pair, autojump_clock):
    server, _ = pair
    session = make_session(server, 1 << 20)
    beats: list[float] = []
    async with trio.open_nursery() as nursery:
        start = trio.current_time()

        def beat() -> None:
            beats.append(trio.current_time() - start)

        nursery.start_soon(session.serve_writer, beat, 20.0)
        await trio.sleep(65)
        nursery.cancel_scope.cancel()
    assert beats == pytest.approx([20.0, 40.0, 60.0])


async def test_traffic_neither_delays_nor_skips_a_beat(pair, autojump_clock):
    server, client = pair
    session = make_session(server, 1 << 20)
    beats: list[float] = []
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(
            session.serve_writer, lambda: beats.append(trio.current_time() - start), 20.0
        )
        for i in range(9):  # a frame every 5 s for 45 s
            session.push(binary_frame(b"m%d" % i))
            await trio.sleep(5)
        events = await read_events(client, 9)
        nursery.cancel_scope.cancel()
    assert len(events) == 9
    assert beats == pytest.approx([20.0, 40.0])


async def test_a_beat_that_closes_the_session_ends_the_writer_with_its_close_frame(
    pair, autojump_clock
):
    server, client = pair
    session = make_session(server, 1 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            session.serve_writer, lambda: session.close(CloseCode.HEARTBEAT_TIMEOUT), 20.0
        )
        with trio.fail_after(25):
            await session.closed.wait()
        assert trio.current_time() >= 20.0
    events = await read_events(client, 1)
    assert isinstance(events[0], CloseConnection)
    assert events[0].code == CloseCode.HEARTBEAT_TIMEOUT
