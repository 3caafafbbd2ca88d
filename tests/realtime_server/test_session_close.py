"""How a session ends: at its token's expiry, and never in the middle of a frame.

Real socket pairs; the expiry tests run on virtual time (autojump).
"""

from __future__ import annotations

import socket

import pytest
import trio
import trio.lowlevel
import trio.testing
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection

from protocol.errors import CloseCode
from realtime_server.wsframes import binary_frame
from tests.realtime_server.test_session import make_session, read_events


@pytest.fixture
async def pair():
    a, b = trio.socket.socketpair()
    for s in (a, b):  # small kernel buffers: a few KB fill them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server, client = trio.SocketStream(a), trio.SocketStream(b)
    yield server, client
    await server.aclose()
    await client.aclose()


async def test_a_session_closes_with_access_expired_when_its_token_lapses(pair, autojump_clock):
    server, client = pair
    session = make_session(server, 1 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer, lambda: None, 20.0)
        start = trio.current_time()
        session.reauthorize(30)
        await trio.sleep(25)
        session.reauthorize(60)  # a fresh token at t=25: now lives until t=85
        await session.closed.wait()
        assert trio.current_time() - start == pytest.approx(85)
    assert session.close_code == CloseCode.ACCESS_EXPIRED
    events = await read_events(client, 1)
    assert isinstance(events[0], CloseConnection) and events[0].code == 4004


async def test_a_session_without_expiry_is_not_closed(pair, autojump_clock):
    server, _ = pair
    session = make_session(server, 1 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer, lambda: None, 20.0)
        await trio.sleep(10_000)
        assert session.close_code is None
        nursery.cancel_scope.cancel()


async def read_all(stream: trio.SocketStream) -> list[object]:
    """Everything the peer gets up to the close frame (or EOF), parsed."""
    conn = Connection(ConnectionType.CLIENT)
    events: list[object] = []
    with trio.fail_after(10):
        while not events or not isinstance(events[-1], CloseConnection):
            data = await stream.receive_some(65536)
            if not data:
                break
            conn.receive_data(data)
            events.extend(conn.events())
    return events


def whole_messages(events: list[object]) -> tuple[list[bytes], bytes]:
    """The complete binary messages, and what was left of an unfinished one."""
    messages, part = [], b""
    for e in events:
        if isinstance(e, BytesMessage):
            part += e.data
            if e.message_finished:
                messages.append(part)
                part = b""
    return messages, part


@pytest.mark.parametrize("frame_size", [100, 50_000, 300_000])
async def test_a_cut_off_never_truncates_a_frame(pair, frame_size: int):
    server, client = pair
    session = make_session(server, 3 * frame_size + 100_000)
    frame = binary_frame(b"z" * frame_size)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        # Nobody reads: the kernel buffers fill, a write stops mid-frame, the
        # queue overflows and the session is cut off.
        with trio.fail_after(10):
            while session.close_code is None:
                session.push(frame)
                await trio.lowlevel.checkpoint()
        assert session.close_code == CloseCode.SLOW_CONSUMER
        # The peer starts reading again within CLOSE_TIMEOUT.
        events = await read_all(client)
        await server.aclose()
    messages, part = whole_messages(events)
    assert messages, "nothing was delivered before the cut-off"
    assert part == b"", "a frame was cut short"
    assert all(m == b"z" * frame_size for m in messages)
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == CloseCode.SLOW_CONSUMER


async def test_a_peer_that_never_reads_again_is_dropped_after_the_close_timeout(pair):
    server, client = pair
    session = make_session(server, 100_000)
    session.close_timeout = 0.3
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        with trio.fail_after(10):
            while session.close_code is None:
                session.push(binary_frame(b"q" * 10_000))
                await trio.lowlevel.checkpoint()
            await session.closed.wait()
    assert session.close_code == CloseCode.SLOW_CONSUMER


async def test_a_draining_close_sends_everything_queued_first(pair):
    server, client = pair
    session = make_session(server, 1 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.serve_writer)
        for i in range(200):
            session.push(binary_frame(b"ack %d " % i + b"." * 1000))
        session.close(CloseCode.GOING_AWAY, flush=True)
        events = await read_all(client)
        await session.closed.wait()
    acks, part = whole_messages(events)
    assert part == b""
    assert [a.split(b" ")[1] for a in acks] == [b"%d" % i for i in range(200)]
    assert isinstance(events[-1], CloseConnection) and events[-1].code == 1001
