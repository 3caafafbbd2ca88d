"""A session's outbound queue: coalesced writes, a hard bound, a clean cut-off.

These run over a real connected socket pair, and read what the peer gets.
"""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import CloseConnection

from protocol.errors import CloseCode
from realtime_server.session import Session, SessionInfo
from realtime_server.wsframes import binary_frame


@pytest.fixture
async def pair():
    a, b = trio.socket.socketpair()
    server, client = trio.SocketStream(a), trio.SocketStream(b)
    yield server, client
    await server.aclose()
    await client.aclose()


def make_session(stream: trio.SocketStream, limit: int) -> Session:
    server_ws = Connection(ConnectionType.SERVER)
    return Session(
        SessionInfo("u1", "s1", "phone", 1),
        stream,
        limit,
        close_frame_for=lambda code: server_ws.send(CloseConnection(int(code), code.name)),
    )


async def read_events(stream: trio.SocketStream, count: int) -> list[object]:
    # The peer side: a client-role wsproto connection parsing what arrives.
    conn = Connection(ConnectionType.CLIENT)
    events: list[object] = []
    with trio.fail_after(5):
        while len(events) < count:
            data = await stream.receive_some(65536)
            if not data:
                break
            conn.receive_data(data)
            events.extend(conn.events())
    return events


async def test_queued_frames_leave_in_one_write_and_in_order(pair):
    server, client = pair
    session = make_session(server, 1 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        for i in range(50):
            session.push(binary_frame(b"frame %d" % i))
        events = await read_events(client, 50)
        assert [e.data for e in events] == [b"frame %d" % i for i in range(50)]  # type: ignore[attr-defined]
        await trio.testing.wait_all_tasks_blocked()
        assert session.sent_writes == 1
        nursery.cancel_scope.cancel()


async def test_overflowing_the_queue_closes_with_the_slow_consumer_code(pair):
    server, client = pair
    session = make_session(server, 10_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        for _ in range(30):  # 30 KB queued before the writer gets a turn
            session.push(binary_frame(b"x" * 1000))
            if session.close_code is not None:
                break
        assert session.close_code == CloseCode.SLOW_CONSUMER
        session.close(CloseCode.NORMAL)  # idempotent: the first close wins
        assert session.queued_bytes == 0
        with trio.fail_after(5):
            await session.closed.wait()
    events = await read_events(client, 1)
    # Nothing that was queued goes out after the decision: only the close frame.
    assert len(events) == 1 and isinstance(events[0], CloseConnection)
    assert events[0].code == CloseCode.SLOW_CONSUMER


async def test_a_peer_that_does_not_read_cannot_hold_the_writer(pair):
    server, client = pair
    session = make_session(server, 64 * 1024)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        with trio.fail_after(10):
            # Nobody reads `client`: kernel buffers fill, then the queue, then the cut-off.
            while session.close_code is None:
                session.push(binary_frame(b"y" * 4000))
                await trio.lowlevel.checkpoint()
            await session.closed.wait()
    assert session.close_code == CloseCode.SLOW_CONSUMER


async def test_held_live_events_covered_by_the_replay_are_sent_once(pair):
    server, client = pair
    session = make_session(server, 1 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        session.push_event("r1", 5, binary_frame(b"r1:5"))
        session.push_event("r1", 6, binary_frame(b"r1:6"))
        session.push_event("r2", 1, binary_frame(b"r2:1"))
        await trio.sleep(0.05)
        assert session.sent_writes == 0  # held while syncing
        session.push(binary_frame(b"replayed r1:5"))
        session.finish_sync({"r1": 5})
        events = await read_events(client, 3)
        assert [e.data for e in events] == [b"replayed r1:5", b"r1:6", b"r2:1"]  # type: ignore[attr-defined]
        nursery.cancel_scope.cancel()
