"""Slow or dead peers cannot hurt the server or the other members."""

from __future__ import annotations

import httpx
import trio

from protocol import frames
from protocol.client import open_client
from protocol.errors import CloseCode
from realtime_server.node import Node
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import create_group, register
from tests.e2e.rawws import hello, open_raw


async def wait_until(condition, limit: float = 5.0) -> None:
    """Poll a server-side fact the client cannot observe directly (e.g. cleanup done)."""
    with trio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - nothing to wait on from outside
            await trio.sleep(0.01)


def cut_off(node: Node, user_id: str) -> bool:
    """The user's sessions have all been told to go (their close frame may
    still wait, CLOSE_TIMEOUT at most, for a peer that is not reading)."""
    return all(s.close_code is not None for s in node.hub.sessions_of(user_id))


async def test_a_consumer_that_stops_reading_is_cut_off_and_others_carry_on(
    node_factory: NodeFactory,
):
    async with node_factory(outbound_queue_bytes=64 * 1024) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
            carol = await register(http)
            room = await create_group(http, alice, bob, carol)
        async with (
            open_raw(node.port, rcvbuf=4096) as stalled,
            open_client(node.ws_url, alice.access_token) as a,
            open_client(node.ws_url, carol.access_token) as c,
        ):
            await stalled.send_frame(hello(bob.access_token))
            assert isinstance(await stalled.receive_frame(), frames.Welcome)
            # Bob's socket now stops reading. Alice keeps talking.
            text = "y" * 2000
            sent = 0
            while not cut_off(node, bob.id):
                await a.send_message(room, text)
                sent += 1
                assert sent < 2000, "the stalled session was never cut off"
            # Carol, reading normally, got every message.
            seqs = []
            while len(seqs) < sent:
                frame = await c.next_push(timeout=5)
                if isinstance(frame, frames.MsgNew):
                    seqs.append(frame.d.seq)
            assert seqs == list(range(1, sent + 1))
        # Bob reconnects and resumes: nothing was lost for him either.
        async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
            got = 0
            while True:
                frame = await b.next_push(timeout=5)
                if isinstance(frame, frames.ResumeDone):
                    break
                got += 1
            assert got == sent


async def test_a_peer_that_stops_answering_pings_is_closed(node_factory: NodeFactory):
    async with node_factory(heartbeat_interval=0.2, heartbeat_timeout=0.2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
        async with open_raw(node.port) as silent:
            await silent.send_frame(hello(alice.access_token))
            # RawWS never answers pings: the server must give up on it.
            assert await silent.wait_closed() == CloseCode.HEARTBEAT_TIMEOUT
            await wait_until(lambda: not node.hub.is_online(alice.id))


async def test_a_client_that_answers_pings_stays_connected(node_factory: NodeFactory):
    async with node_factory(heartbeat_interval=0.1, heartbeat_timeout=0.2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
        async with open_client(node.ws_url, alice.access_token) as a:
            await trio.sleep(1.0)
            assert await a.ping()
            assert node.hub.is_online(alice.id)


async def test_a_cut_off_consumer_gets_whole_frames_then_a_clean_4000(
    node_factory: NodeFactory,
):
    async with node_factory(outbound_queue_bytes=64 * 1024) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
            room = await create_group(http, alice, bob)
        async with (
            open_raw(node.port, rcvbuf=4096) as stalled,
            open_client(node.ws_url, alice.access_token) as a,
        ):
            await stalled.send_frame(hello(bob.access_token))
            assert isinstance(await stalled.receive_frame(), frames.Welcome)
            # Bob stops reading; big messages leave a write stuck mid-frame.
            text = "z" * 3000
            while not cut_off(node, bob.id):
                await a.send_message(room, text)
            # Bob reads again (within CLOSE_TIMEOUT): every frame he gets is
            # whole (a truncated one would fail to decode) and the last word is 4000.
            got = 0
            with trio.fail_after(10):
                while (frame := await stalled.receive_frame()) is not None:
                    assert isinstance(frame, frames.ResumeDone | frames.MsgNew), frame
                    got += isinstance(frame, frames.MsgNew)
            assert got > 0
            assert stalled.close_code == CloseCode.SLOW_CONSUMER
            assert "resume" in stalled.close_reason
