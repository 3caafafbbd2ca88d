"""Reconnecting: a client gets exactly what it missed, in order, before live traffic."""

from __future__ import annotations

import httpx
import trio

from protocol import frames
from protocol.client import open_client
from realtime_server.node import Node
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, register


async def drain_until_resume_done(client) -> tuple[list[frames.Message], frames.ResumeDoneData]:
    replayed: list[frames.Message] = []
    while True:
        frame = await client.next_push(timeout=5)
        if isinstance(frame, frames.ResumeDone):
            return replayed, frame.d
        assert isinstance(frame, frames.MsgNew), frame
        replayed.append(frame.d)


async def test_a_reconnecting_client_gets_each_missed_message_once_in_order(
    node: Node, http: httpx.AsyncClient
):
    alice = await register(http)
    bob = await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            first = await a.send_message(room, "before the tunnel")
            await drain_until_resume_done(b)
            assert (await b.next_push(timeout=5)).d == first  # type: ignore[union-attr]
        # Bob is offline now.
        missed = [await a.send_message(room, f"missed {i}") for i in range(5)]
        async with open_client(node.ws_url, bob.access_token, cursors={room: first.seq}) as b:
            replayed, done = await drain_until_resume_done(b)
            assert replayed == missed
            assert done.rooms == {room: missed[-1].seq}
            live = await a.send_message(room, "live again")
            frame = await b.next_push(timeout=5)
            assert isinstance(frame, frames.MsgNew) and frame.d == live


async def test_messages_sent_during_the_replay_arrive_once_after_it(
    node: Node, http: httpx.AsyncClient
):
    alice = await register(http)
    bob = await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        for i in range(50):
            await a.send_message(room, f"backlog {i}")
        received: list[int] = []
        async with trio.open_nursery() as n:

            async def keep_sending() -> None:
                for i in range(50):
                    await a.send_message(room, f"during {i}")

            n.start_soon(keep_sending)
            async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
                while len(received) < 100:
                    frame = await b.next_push(timeout=5)
                    if isinstance(frame, frames.MsgNew):
                        received.append(frame.d.seq)
    assert received == list(range(1, 101))


async def test_a_large_gap_tells_the_client_to_reload(node_factory: NodeFactory):
    async with node_factory(resume_max_messages=10) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
            room = await create_group(http, alice, bob)
            async with open_client(node.ws_url, alice.access_token) as a:
                for i in range(12):
                    await a.send_message(room, f"m{i}")
            async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
                gap = await b.next_push(timeout=5)
                assert isinstance(gap, frames.ResumeGap)
                assert (gap.d.room, gap.d.after, gap.d.last_seq) == (room, 0, 12)
                assert isinstance(await b.next_push(timeout=5), frames.ResumeDone)


async def test_a_restarted_server_keeps_everything_it_acknowledged(node_factory: NodeFactory):
    async with node_factory() as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
            room = await create_group(http, alice, bob)
            async with open_client(node.ws_url, alice.access_token) as a:
                acked = [await a.send_message(room, f"keep {i}", cid=f"k{i}") for i in range(20)]
    # A new process on the same database (and the same JWT secret).
    async with node_factory() as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            r = await http.get(f"/rooms/{room}/messages?limit=100", headers=auth(alice))
            assert [m["id"] for m in r.json()["messages"]] == [m.id for m in acked]
            async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
                replayed, _ = await drain_until_resume_done(b)
                assert replayed == acked
            async with open_client(node.ws_url, alice.access_token) as a:
                # A resend after the restart is still recognised...
                again = await a.send_message(room, "keep 3", cid="k3")
                assert again == acked[3]
                # ...and numbering carries on without a gap.
                assert (await a.send_message(room, "after restart")).seq == 21
