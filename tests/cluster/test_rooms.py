"""One room, members on different nodes (issue 13): what users rely on is the
same as on one node. Nodes run in this process on one PostgreSQL schema,
joined by the in-process bus; tests/cluster/test_processes.py repeats the
essentials with real processes on Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from protocol import frames
from protocol.client import Client, ServerError, open_client
from protocol.frames_chat import Edit, EditData, React, ReactData
from realtime_server.node import Node
from storage.leases import Leases
from storage.sql.store import SqlStore
from tests.cluster.conftest import LocalCluster
from tests.e2e.helpers import Account, auth, create_group, login, register


async def next_push(client: Client, kind: type, timeout: float = 5.0):  # noqa: ASYNC109
    """The next push of ``kind``, skipping the handshake's resume.done and others."""
    with trio.fail_after(timeout):
        while True:
            frame = await client.next_push()
            if isinstance(frame, kind):
                return frame


async def next_message(client: Client, timeout: float = 5.0) -> frames.Message:  # noqa: ASYNC109
    return (await next_push(client, frames.MsgNew, timeout)).d


@asynccontextmanager
async def rest(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        yield http


async def group_on(node: Node, size: int) -> tuple[list[Account], str]:
    """``size`` new users, through ``node``'s REST API, and a group of them all."""
    async with rest(node) as http:
        users = [await register(http) for _ in range(size)]
        return users, await create_group(http, users[0], *users[1:])


def leases(node: Node) -> Leases:
    assert isinstance(node.store, SqlStore)
    return Leases(node.store.db)


def key(node: Node) -> str:
    assert node.cluster is not None
    return node.cluster.node_key


async def stored_seqs(node: Node, room: str) -> list[int]:
    assert isinstance(node.store, SqlStore)
    rows = await node.store.db.fetch(
        "SELECT seq FROM messages WHERE room_id = ? ORDER BY seq", (room,)
    )
    return [r[0] for r in rows]


async def test_a_message_sent_on_one_node_reaches_members_on_the_others(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(3) as (_, nodes):
        (alice, bob, carol), room = await group_on(nodes[0], 3)
        async with (
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
            open_client(nodes[2].ws_url, carol.access_token) as c,
        ):
            sent = await a.send_message(room, "hello from node 0")
            assert sent.seq == 1
            assert await next_message(b) == sent
            assert await next_message(c) == sent
            # Bob's node does not lead the room: his post is forwarded, and
            # his ack still carries the stored message.
            reply = await b.send_message(room, "hello from node 1")
            assert reply.seq == 2
            assert await next_message(a) == reply
            assert await next_message(c) == reply
        holder = await leases(nodes[0]).holder(room)
        assert holder is not None and holder.node_key == key(nodes[0])


async def test_concurrent_senders_on_three_nodes_get_one_gap_free_sequence(
    local_cluster: LocalCluster,
) -> None:
    per_user = 30
    async with local_cluster(3) as (_, nodes):
        users, room = await group_on(nodes[0], 3)
        acked: list[int] = []
        async with (
            open_client(nodes[0].ws_url, users[0].access_token) as c0,
            open_client(nodes[1].ws_url, users[1].access_token) as c1,
            open_client(nodes[2].ws_url, users[2].access_token) as c2,
        ):

            async def burst(client: Client, tag: str) -> None:
                async def one(i: int) -> None:
                    acked.append((await client.send_message(room, f"{tag}{i}")).seq)

                async with trio.open_nursery() as n:
                    for i in range(per_user):
                        n.start_soon(one, i)

            async with trio.open_nursery() as n:
                for client, tag in ((c0, "a"), (c1, "b"), (c2, "c")):
                    n.start_soon(burst, client, tag)
            # Every member saw every message of the others, each once.
            for client, me in ((c0, users[0]), (c1, users[1]), (c2, users[2])):
                seen: set[int] = set()
                while len(seen) < 2 * per_user:
                    m = await next_message(client)
                    assert m.sender != me.id and m.seq not in seen
                    seen.add(m.seq)
        total = 3 * per_user
        assert sorted(acked) == list(range(1, total + 1))
        assert await stored_seqs(nodes[0], room) == list(range(1, total + 1))


async def test_a_users_devices_on_two_nodes_both_receive(local_cluster: LocalCluster) -> None:
    async with local_cluster(2) as (_, nodes):
        async with rest(nodes[0]) as http:
            alice, bob = await register(http), await register(http)
            phone = bob.access_token
            laptop = await login(http, bob, device="laptop")
            room = await create_group(http, alice, bob)
        async with (
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[0].ws_url, phone, device="phone") as b_phone,
            open_client(nodes[1].ws_url, laptop, device="laptop") as b_laptop,
        ):
            sent = await a.send_message(room, "to both of bob's devices")
            assert await next_message(b_phone) == sent
            assert await next_message(b_laptop) == sent
            # Bob's laptop posts; his phone, on the leading node, sees it too.
            own = await b_laptop.send_message(room, "from the laptop")
            assert await next_message(b_phone) == own
            assert await next_message(a) == own


async def test_a_resend_through_another_node_is_answered_with_the_original(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        cid = uuid.uuid4().hex
        async with open_client(nodes[0].ws_url, alice.access_token) as a:
            first = await a.send_message(room, "once", cid=cid)
        # Alice reconnects to the other node and resends (her ack was lost).
        async with open_client(nodes[1].ws_url, alice.access_token) as a2:
            again = await a2.send_message(room, "once", cid=cid)
        assert again == first
        assert await stored_seqs(nodes[0], room) == [1]


async def test_edits_and_reactions_reach_members_on_other_nodes(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        async with (
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
        ):
            sent = await b.send_message(room, "typo")  # node 1 leads the room from now on
            await next_message(a)
            ok = await b.request(Edit(id=0, d=EditData(room=room, seq=sent.seq, text="fixed")))
            assert isinstance(ok, frames.Ok) and ok.ev == 1
            edited = await next_push(a, frames.MsgEdited)
            assert (edited.d.seq, edited.d.text, edited.d.ev) == (sent.seq, "fixed", 1)
            # A reaction from the node that does not lead the room.
            ok = await a.request(React(id=0, d=ReactData(room=room, seq=sent.seq, emoji="👍")))
            assert isinstance(ok, frames.Ok) and ok.ev == 2
            reaction = await next_push(b, frames.MsgReaction)
            assert (reaction.d.user, reaction.d.emoji, reaction.d.ev) == (alice.id, "👍", 2)


async def test_a_removed_member_stops_receiving_on_every_node(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        async with rest(nodes[0]) as http:
            alice, bob, carol = [await register(http) for _ in range(3)]
            room = await create_group(http, alice, bob, carol)
            async with (
                open_client(nodes[0].ws_url, alice.access_token) as a,
                open_client(nodes[1].ws_url, bob.access_token) as b,
                open_client(nodes[1].ws_url, carol.access_token) as c,
            ):
                await a.send_message(room, "before")
                await next_message(b)
                await next_message(c)
                r = await http.delete(f"/rooms/{room}/members/{bob.id}", headers=auth(alice))
                assert r.status_code in (200, 204), r.text
                after = await a.send_message(room, "after bob left")
                # Carol, on bob's node, gets it: the node still listens.
                while (m := await next_message(c)).seq != after.seq:
                    pass
                # Bob never does.
                with trio.move_on_after(0.5):
                    while True:
                        m = await next_message(b, timeout=0.5)
                        assert m.seq < after.seq and m.sender == "system"


async def test_a_member_resumes_on_another_node_with_nothing_missed(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        async with open_client(nodes[0].ws_url, alice.access_token) as a:
            async with open_client(nodes[0].ws_url, bob.access_token) as b:
                first = await a.send_message(room, "1")
                assert await next_message(b) == first
            missed = [await a.send_message(room, str(i)) for i in range(2, 6)]
            async with open_client(
                nodes[1].ws_url, bob.access_token, cursors={room: first.seq}
            ) as b2:
                replayed = [await next_message(b2) for _ in missed]
                assert replayed == missed
                live = await a.send_message(room, "live")
                assert await next_message(b2) == live


async def test_a_room_moves_when_its_node_stops_and_seqs_go_on(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        (alice, bob), room = await group_on(nodes[1], 2)
        async with open_client(nodes[0].ws_url, alice.access_token) as a:
            assert (await a.send_message(room, "node 0 leads")).seq == 1
        # Node 0 stops for good: a graceful stop frees its rooms at once.
        await nodes.stop(0)
        async with open_client(nodes[1].ws_url, bob.access_token) as b:
            assert (await b.send_message(room, "node 1 leads now")).seq == 2
        holder = await leases(nodes[1]).holder(room)
        assert holder is not None and holder.node_key == key(nodes[1])


async def test_a_leader_whose_lease_ran_out_commits_nothing_and_hands_over(
    local_cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Node 0 leads, then goes silent past its lease (as if paused): node 1
    takes the room. Node 0's next batch is refused by the fence, nothing of it
    is stored, and its posts reach the new leader: one gap-free sequence."""
    async with local_cluster(2, node_lease_seconds=0.6) as (_, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        async with (
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
        ):
            assert (await a.send_message(room, "1")).seq == 1
            await next_message(b)
            # Node 0 is "paused": its lease is made to have run out, and its
            # renewals are held back while node 1 takes the room over.
            assert isinstance(nodes[0].store, SqlStore)
            db = nodes[0].store.db
            # (Its renewal task may slip in between on a loaded host: retried.)
            for _ in range(20):
                await db.execute(
                    "UPDATE node_leases SET expires_at = 0 WHERE node_key = ?", (key(nodes[0]),)
                )
                holder = await leases(nodes[1]).claim(room, key(nodes[1]))
                if holder.node_key == key(nodes[1]):
                    break
            assert holder.node_key == key(nodes[1]) and holder.token == 2
            # Node 0 still thinks it leads: its batch is fenced, then forwarded.
            m = await a.send_message(room, "2")
            assert m.seq == 2
            m3 = await b.send_message(room, "3")
            assert m3.seq == 3
        assert await stored_seqs(nodes[0], room) == [1, 2, 3]
        # The refusal happened, and said so: node 0's own write of "2" was fenced.
        assert f"room {room}: lease lost to another node (token 1); stepping down" in caplog.text


async def test_a_post_that_needs_another_node_while_the_bus_is_down_is_refused_clearly(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (network, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        async with (
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
        ):
            await a.send_message(room, "node 0 leads")
            network.down()
            cid = uuid.uuid4().hex
            with pytest.raises(ServerError) as refused:
                await b.send_message(room, "needs node 0", cid=cid)
            assert refused.value.code == "unavailable"
            network.up()
            # The resend with the same cid goes through once the bus is back.
            m = await b.send_message(room, "needs node 0", cid=cid)
            assert m.seq == 2


async def test_what_the_bus_lost_while_down_reaches_members_once_it_is_back(
    local_cluster: LocalCluster,
) -> None:
    """Redis pub/sub keeps nothing for a node that was cut off: the node reads
    what it missed from storage, so delivery stays at least once."""
    async with local_cluster(2) as (network, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        async with (
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
        ):
            first = await a.send_message(room, "before")
            assert await next_message(b) == first
            network.down()
            # Node 0 leads: its own users keep chatting while the bus is down.
            lost = [await a.send_message(room, f"while down {i}") for i in range(3)]
            network.up()
            assert [await next_message(b) for _ in lost] == lost
            after = await a.send_message(room, "after")
            assert await next_message(b) == after
            with trio.move_on_after(0.3):
                extra = await next_message(b, timeout=0.3)
                raise AssertionError(f"delivered twice: {extra}")


async def test_posts_forwarded_in_one_tick_cross_the_bus_as_one_message(
    local_cluster: LocalCluster,
) -> None:
    """A burst of posts from a node that does not lead the room reaches the
    leader in fewer bus messages than posts (one per scheduler tick), and is
    stored and acked exactly as one by one: one gap-free sequence."""
    burst = 60
    async with local_cluster(2) as (network, nodes):
        (alice, bob), room = await group_on(nodes[0], 2)
        spy = network.attach("spy/1")
        heard: list[bytes] = []
        assert nodes[0].cluster is not None
        spy.subscribe(nodes[0].cluster.node_channel(key(nodes[0])), heard.append)
        async with (
            trio.open_nursery() as spying,
            open_client(nodes[0].ws_url, alice.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
        ):
            await spying.start(spy.serve)
            first = await a.send_message(room, "node 0 leads")
            acked: list[int] = []

            async def one(i: int) -> None:
                acked.append((await b.send_message(room, f"b{i}")).seq)

            async with trio.open_nursery() as sending:
                for i in range(burst):
                    sending.start_soon(one, i)
            assert sorted(acked) == list(range(first.seq + 1, first.seq + burst + 1))
            assert 0 < len(heard) < burst
            spying.cancel_scope.cancel()
        assert await stored_seqs(nodes[0], room) == list(range(1, burst + 2))
