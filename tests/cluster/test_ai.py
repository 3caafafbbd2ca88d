"""AI generations across nodes (issue 13): a user's devices on two nodes see the
same answer, attach to it and stop it from either; one answer per room and the
quota hold for the whole cluster. Nodes run in this process on one PostgreSQL
schema, joined by the in-process bus; answers come from the built-in offline
model."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from protocol import frames
from protocol.client import Client, ServerError, open_client
from protocol.frames_ai import AiAsk, AiAskData, AiAttach, AiAttachData, AiDone, AiError
from realtime_server.base.settings import Settings
from realtime_server.cluster.ai import AiAttached, AiFrames, _encoder, is_ai_traffic
from realtime_server.cluster.envelopes import Batch, Event, encoder
from realtime_server.node import Node, open_node
from storage.leases import Leases
from storage.sql.store import SqlStore
from tests import conftest as base
from tests.ai.helpers import Answer, ask, new_conversation, read_answer, stop
from tests.cluster.conftest import LocalCluster
from tests.cluster.processes_fixture import NodeProcessesFactory
from tests.e2e.helpers import Account, auth, create_group, login, register

# Slow enough that an answer is still running while the test acts on it
# (the offline answer is about 30 words: about 3 s at this pace).
SLOW = {"ai_offline_delay": 0.1}
# For answers stopped early: so slow that a loaded machine cannot finish them first.
SLOWER = {"ai_offline_delay": 0.3}


def service_streams(node: Node) -> int:
    return len(node.gateway.services.ai.streams)


async def all_ended(nodes: list[Node]) -> None:
    """Until no node runs a generation (each gives its slot back as it ends)."""
    with trio.fail_after(5):
        while sum(service_streams(n) for n in nodes):  # noqa: ASYNC110 - other tasks' state
            await trio.sleep(0.01)


@asynccontextmanager
async def two_devices(node: Node) -> AsyncIterator[tuple[httpx.AsyncClient, Account, str, str]]:
    """A REST client, Alice (phone token in the account), her laptop's token and
    a conversation of hers."""
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        alice = await register(http, device="phone")
        laptop = await login(http, alice, device="laptop")
        room = await new_conversation(http, alice)
        yield http, alice, laptop, room


async def messages_until(client: Client, seq: int) -> list[frames.Message]:
    got: list[frames.Message] = []
    with trio.fail_after(5):
        while not got or got[-1].seq < seq:
            frame = await client.next_push()
            if isinstance(frame, frames.MsgNew):
                got.append(frame.d)
    return got


def test_ai_envelopes_are_told_apart_from_room_traffic_by_their_first_bytes() -> None:
    """The room channel carries both; the AI handler skips the rooms' without decoding."""
    ours = [
        AiFrames("r_1", "g_1", "n/1", 1, b"x"),
        AiAttached("r_1", "g_1", "n/1", "n/2", 7, b"x", False),
    ]
    theirs = [Batch("r_1", []), Event("r_1", b"raw", 3)]
    assert all(is_ai_traffic(_encoder.encode(e)) for e in ours)
    assert not any(is_ai_traffic(encoder.encode(e)) for e in theirs)


async def test_the_answer_streams_to_the_askers_other_device_on_another_node(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2, **SLOW) as (_, nodes):
        async with (
            two_devices(nodes[0]) as (http, alice, laptop_token, room),
            open_client(nodes[0].ws_url, alice.access_token) as phone,
            open_client(nodes[1].ws_url, laptop_token) as laptop,
        ):
            prompt = await ask(phone, room, "Across nodes please")
            on_phone, on_laptop = await read_answer(phone), await read_answer(laptop)
            assert on_laptop.start is not None and on_laptop.gen == on_phone.gen
            assert on_laptop.indexes == list(range(len(on_phone.deltas)))
            assert on_laptop.text == on_phone.text and len(on_laptop.deltas) > 10
            assert isinstance(on_laptop.end, AiDone) and on_laptop.end.d.status == "done"
            stored = on_laptop.end.d.msg
            assert stored is not None and stored.text == on_phone.text
            # And the stored prompt and answer as messages, in order.
            got = on_laptop.messages
            if not got or got[-1].seq < stored.seq:
                got += await messages_until(laptop, stored.seq)
            assert [m.seq for m in got] == [prompt.seq, stored.seq]
            assert got[-1] == stored
        await all_ended(nodes)


async def test_a_device_on_another_node_attaches_mid_answer_and_gets_the_rest(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2, **SLOW) as (_, nodes):
        async with two_devices(nodes[0]) as (http, alice, laptop_token, room):
            async with open_client(nodes[0].ws_url, alice.access_token) as phone:
                await ask(phone, room, "Tell me a long story")
                seen = await read_answer(phone, until_deltas=3)
            # The phone is gone; the laptop comes online on the other node.
            async with open_client(nodes[1].ws_url, laptop_token) as laptop:
                reply = await laptop.request(
                    AiAttach(id=0, d=AiAttachData(room=room, from_=len(seen.deltas)))
                )
                assert isinstance(reply, frames.Ok)
                rest = await read_answer(laptop, Answer())
            assert rest.start is not None and rest.gen == seen.gen
            indexes = seen.indexes + rest.indexes
            assert indexes == list(range(len(indexes)))
            assert isinstance(rest.end, AiDone) and rest.end.d.msg is not None
            assert rest.end.d.msg.text == seen.text + rest.text
            # After the end there is nothing to attach to, on either node.
            async with open_client(nodes[1].ws_url, laptop_token) as laptop:
                with pytest.raises(ServerError) as caught:
                    await laptop.request(AiAttach(id=0, d=AiAttachData(room=room)))
                assert caught.value.code == "not_found"


async def test_a_device_on_another_node_stops_the_answer(local_cluster: LocalCluster) -> None:
    async with local_cluster(2, **SLOWER) as (_, nodes):
        async with (
            two_devices(nodes[0]) as (http, alice, laptop_token, room),
            open_client(nodes[0].ws_url, alice.access_token) as phone,
            open_client(nodes[1].ws_url, laptop_token) as laptop,
        ):
            await ask(phone, room, "Go on and on")
            on_laptop = await read_answer(laptop, until_deltas=2)
            await stop(laptop, on_laptop.gen)
            on_phone = await read_answer(phone)
            await read_answer(laptop, on_laptop)
            for seen in (on_phone, on_laptop):
                assert isinstance(seen.end, AiDone) and seen.end.d.status == "stopped"
            assert on_phone.end is not None and on_phone.end.d.msg is not None
            assert on_phone.end.d.msg.text == on_laptop.text == on_phone.text
            assert len(on_phone.deltas) < 20  # it did not run to its end
            # Stopping again, after the end, is ok from either node.
            await stop(laptop, on_laptop.gen)
            await stop(phone, on_laptop.gen)
            r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(alice))
            assert r.json()["messages"][-1]["status"] == "stopped"


async def test_a_device_that_came_online_later_stops_by_the_generation_id(
    local_cluster: LocalCluster,
) -> None:
    """The laptop's node never heard the start: it finds the running node from the
    AI slots of the user's rooms."""
    async with local_cluster(2, **SLOWER) as (_, nodes):
        async with (
            two_devices(nodes[0]) as (http, alice, laptop_token, room),
            open_client(nodes[0].ws_url, alice.access_token) as phone,
        ):
            await ask(phone, room, "Keep talking")
            seen = await read_answer(phone, until_deltas=2)
            async with open_client(nodes[1].ws_url, laptop_token) as laptop:
                await stop(laptop, seen.gen)
                with pytest.raises(ServerError) as caught:
                    await stop(laptop, "g_unknown")
                assert caught.value.code == "not_found"
            await read_answer(phone, seen)
            assert isinstance(seen.end, AiDone) and seen.end.d.status == "stopped"


async def test_two_asks_in_one_room_on_two_nodes_start_exactly_one_answer(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2, **SLOW) as (_, nodes):
        outcomes: list[str] = []
        async with (
            two_devices(nodes[0]) as (http, alice, laptop_token, room),
            open_client(nodes[0].ws_url, alice.access_token) as phone,
            open_client(nodes[1].ws_url, laptop_token) as laptop,
        ):

            async def one(client: Client) -> None:
                try:
                    await client.request(
                        AiAsk(id=0, d=AiAskData(room=room, cid=uuid.uuid4().hex, text="hi"))
                    )
                    outcomes.append("ok")
                except ServerError as exc:
                    outcomes.append(exc.code)

            for _ in range(3):  # a few rounds: either node may win the race
                outcomes.clear()
                async with trio.open_nursery() as n:
                    n.start_soon(one, phone)
                    n.start_soon(one, laptop)
                assert sorted(outcomes) == ["ai_busy", "ok"]
                # While it runs, neither node starts another.
                for client in (phone, laptop):
                    with pytest.raises(ServerError) as caught:
                        await ask(client, room, "me too")
                    assert caught.value.code == "ai_busy"
                answer = await read_answer(phone)
                assert isinstance(answer.end, AiDone)
                # The slot is given back as the generation ends: the next round can ask.
                await all_ended(nodes)
        store = nodes[0].store
        assert isinstance(store, SqlStore)
        holder = await Leases(store.db).holder(f"ai:{room}")
        assert holder is not None and holder.node_key == ""


async def test_the_quota_is_exact_with_asks_on_two_nodes_at_the_limit(
    local_cluster: LocalCluster,
) -> None:
    limit, per_node = 3, 4
    async with local_cluster(2, plan_free_ai_monthly=limit, ai_offline_delay=0.01) as (
        _,
        nodes,
    ):
        outcomes: list[str] = []
        async with (
            two_devices(nodes[0]) as (http, alice, laptop_token, _),
            open_client(nodes[0].ws_url, alice.access_token) as phone,
            open_client(nodes[1].ws_url, laptop_token) as laptop,
        ):
            rooms = [await new_conversation(http, alice) for _ in range(2 * per_node)]

            async def one(client: Client, room: str) -> None:
                try:
                    await client.request(
                        AiAsk(id=0, d=AiAskData(room=room, cid=uuid.uuid4().hex, text="q"))
                    )
                    outcomes.append("ok")
                except ServerError as exc:
                    outcomes.append(exc.code)

            async with trio.open_nursery() as n:
                for i, room in enumerate(rooms):
                    n.start_soon(one, phone if i % 2 == 0 else laptop, room)
        assert outcomes.count("ok") == limit
        assert outcomes.count("ai_quota_exceeded") == 2 * per_node - limit
        async with httpx.AsyncClient(base_url=nodes[1].http_url, timeout=10) as other:
            r = await other.get("/ai/usage", headers=auth(alice))
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["used"], body["limit"]) == (limit, limit), body


async def test_members_on_either_node_removed_mid_answer_get_nothing_more(
    local_cluster: LocalCluster,
) -> None:
    """A group answer runs on node 0 and streams to members on both nodes. The
    owner removes one member connected to each node, over node 1's REST: the
    node running it learns of it over the bus, the other node's mirror too."""
    async with local_cluster(2, **SLOW) as (_, nodes):
        async with (
            httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http0,
            httpx.AsyncClient(base_url=nodes[1].http_url, timeout=10) as http1,
        ):
            alice, bob, cy, dan = [await register(http0) for _ in range(4)]
            room = await create_group(http0, alice, bob, cy, dan)
            async with (
                open_client(nodes[0].ws_url, alice.access_token) as a,
                open_client(nodes[1].ws_url, bob.access_token) as b,
                open_client(nodes[0].ws_url, cy.access_token) as c,
                open_client(nodes[1].ws_url, dan.access_token) as d,
            ):
                await ask(a, room, "@ai tell us all")
                seen = {k: await read_answer(k, until_deltas=2) for k in (a, b, c, d)}
                assert len({s.gen for s in seen.values()}) == 1
                for gone in (cy, dan):
                    r = await http1.delete(f"/rooms/{room}/members/{gone.id}", headers=auth(alice))
                    assert r.status_code == 200, r.text
                for k in (a, b):
                    await read_answer(k, seen[k])
                    assert isinstance(seen[k].end, AiDone) and seen[k].end.d.status == "done"
                assert seen[a].text == seen[b].text
                for k in (c, d):
                    with pytest.raises(trio.TooSlowError):
                        await read_answer(k, seen[k], timeout=0.5)
                    assert seen[k].end is None
                    # What was in flight when the removal landed, not the rest.
                    assert len(seen[k].deltas) < len(seen[a].deltas) - 10


async def test_deleting_a_conversation_on_another_node_stops_its_answer(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2, **SLOWER) as (_, nodes):
        async with (
            two_devices(nodes[0]) as (_, alice, _, room),
            httpx.AsyncClient(base_url=nodes[1].http_url, timeout=10) as http1,
            open_client(nodes[0].ws_url, alice.access_token) as phone,
        ):
            await ask(phone, room, "A long one, please")
            seen = await read_answer(phone, until_deltas=2)
            r = await http1.delete(f"/ai/conversations/{room}", headers=auth(alice))
            assert r.status_code == 204, r.text
            await read_answer(phone, seen, timeout=3)
            # Stopped early; whether its partial answer could still be stored
            # in the room being deleted is a race, as on one node.
            assert seen.end is not None and len(seen.deltas) < 20
            await all_ended(nodes)


async def test_over_redis_a_device_on_another_node_attaches_and_stops(
    redis_url: str, cluster_url: str, tmp_path: Path
) -> None:
    """The same across two nodes on the real Redis bus (coredis)."""
    prefix = f"t{secrets.token_hex(4)}:"

    def settings(i: int) -> Settings:
        return base.test_settings(
            cluster_url,
            tmp_path / f"data{i}",
            node_id=f"node{i}",
            redis_url=redis_url,
            redis_prefix=prefix,
            **SLOWER,
        )

    with trio.fail_after(60):
        async with (
            open_node(settings(0)) as node0,
            open_node(settings(1)) as node1,
            two_devices(node0) as (_, alice, laptop_token, room),
            open_client(node0.ws_url, alice.access_token) as phone,
        ):
            await ask(phone, room, "Over Redis, please")
            seen = await read_answer(phone, until_deltas=2)
            async with open_client(node1.ws_url, laptop_token) as laptop:
                reply = await laptop.request(
                    AiAttach(id=0, d=AiAttachData(room=room, from_=len(seen.deltas)))
                )
                assert isinstance(reply, frames.Ok)
                rest = await read_answer(laptop, Answer(), until_deltas=2)
                await stop(laptop, seen.gen)
                await read_answer(laptop, rest)
            await read_answer(phone, seen)
            assert isinstance(rest.end, AiDone) and rest.end.d.status == "stopped"
            assert rest.start is not None and rest.gen == seen.gen
            # The laptop's deltas continue the phone's first ones, with no gap.
            assert rest.indexes[0] == 2 and rest.indexes == list(range(2, 2 + len(rest.deltas)))
            assert rest.end == seen.end


async def test_rest_shows_the_answer_running_on_another_node(local_cluster: LocalCluster) -> None:
    """``running`` of a conversation names the answer wherever it runs: node 1's
    REST API, with no device of the user on node 1, asks node 0."""
    async with local_cluster(2, **SLOWER) as (_, nodes):
        async with (
            two_devices(nodes[0]) as (http, alice, _laptop, room),
            httpx.AsyncClient(base_url=nodes[1].http_url, timeout=10) as http_1,
        ):
            async with open_client(nodes[0].ws_url, alice.access_token) as phone:
                await ask(phone, room, "Go on and on")
                seen = await read_answer(phone, until_deltas=1)
                r = await http_1.get(f"/ai/conversations/{room}", headers=auth(alice))
                assert r.status_code == 200, r.text
                assert r.json()["conversation"]["running"] == seen.gen
                r = await http_1.get("/ai/conversations", headers=auth(alice))
                assert [c["running"] for c in r.json()["conversations"]] == [seen.gen]
                await stop(phone, seen.gen)
            await all_ended(nodes)
            r = await http_1.get(f"/ai/conversations/{room}", headers=auth(alice))
            assert r.json()["conversation"]["running"] is None


async def test_a_device_elsewhere_hears_unavailable_when_the_answering_node_dies(
    node_processes: NodeProcessesFactory,
) -> None:
    """Kill -9 the node generating the answer: the laptop on the other node gets
    a terminal ``ai.error`` (``unavailable``) once that node's lease has run
    out, not silence."""
    with trio.fail_after(90):
        async with node_processes(2, **SLOWER) as nodes:
            async with httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http:
                alice = await register(http, device="phone")
                laptop_token = await login(http, alice, device="laptop")
                room = await new_conversation(http, alice)
            async with (
                open_client(nodes[0].ws_url, alice.access_token) as phone,
                open_client(nodes[1].ws_url, laptop_token) as laptop,
            ):
                await ask(phone, room, "Go on and on")
                seen = await read_answer(laptop, until_deltas=2)
                await nodes.kill(0)
                killed_at = trio.current_time()
                await read_answer(laptop, seen, timeout=15)
                assert isinstance(seen.end, AiError), seen.end
                assert seen.end.d.code == "unavailable" and seen.end.d.gen == seen.gen
                assert seen.end.d.n >= len(seen.deltas) - 1
                # Within two node leases and a check period (1.5 s, 1.5 s, 1 s here).
                assert trio.current_time() - killed_at < 6
