"""Calls between devices on different nodes (issue 13): one node leads a
call, the others forward to it; rings, state changes and SDP/ICE reach
devices wherever they are connected; busy holds across nodes. Nodes run in
this process on one PostgreSQL schema, joined by the in-process bus; the
last test joins two nodes over the real Redis bus instead."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aioice.ice
import httpx
import pytest
import trio

from protocol import frames_calls as fc
from protocol.client import Client, open_client
from realtime_server.base.settings import Settings
from realtime_server.cluster.bus_redis import RedisBus
from realtime_server.node import Node, open_node
from storage.call_claims import LEASE_PREFIX, CallClaims
from storage.leases import Leases
from storage.sql.store import SqlStore
from tests import conftest as base
from tests.calls.helpers import (
    HOST_CANDIDATE,
    accept,
    direct_room,
    expect,
    expect_state,
    hangup,
    next_call_push,
    refused,
    send_ice,
    send_sdp,
    start,
    statuses,
)
from tests.calls.test_webrtc import AsyncioPeer, connect_peers
from tests.cluster.conftest import LocalCluster
from tests.e2e.helpers import auth, create_group, login, register


@asynccontextmanager
async def rest(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        yield http


def db(node: Node) -> SqlStore:
    assert isinstance(node.store, SqlStore)
    return node.store


def key(node: Node) -> str:
    assert node.cluster is not None
    return node.cluster.node_key


async def leader_of(node: Node, call: str) -> str | None:
    holder = await Leases(db(node).db).holder(LEASE_PREFIX + call)
    return None if holder is None else holder.node_key


@asynccontextmanager
async def two_nodes(
    bus: str,
    local_cluster: LocalCluster,
    cluster_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[list[Node]]:
    """Two nodes on the in-process bus (``local``) or on the real Redis (``redis``)."""
    if bus == "redis":
        redis_url = request.getfixturevalue("redis_url")
        async with redis_nodes(cluster_url, redis_url, tmp_path / "redis") as nodes:
            yield nodes
    else:
        async with local_cluster(2) as (_, started):
            yield started


async def quiet(client: Client, seconds: float = 0.3) -> None:
    """No call push arrives within ``seconds``."""
    with trio.move_on_after(seconds):
        frame = await next_call_push(client, timeout=seconds + 1)
        raise AssertionError(f"unexpected {frame!r}")


@pytest.mark.parametrize("bus", ["local", "redis"])
async def test_every_device_rings_and_the_call_runs_across_two_nodes(
    bus: str,
    local_cluster: LocalCluster,
    cluster_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Caller on node 0; the callee's phone on node 0 and laptop on node 1.
    Both ring; the laptop answers through node 1; SDP and ICE go between
    node 0 and node 1 to exactly the device in the call; the hangup reaches
    every device."""
    async with two_nodes(bus, local_cluster, cluster_url, tmp_path, request) as nodes:
        async with rest(nodes[0]) as http:
            ada, bob = await register(http), await register(http)
            laptop_token = await login(http, bob, device="laptop")
            room = await direct_room(http, ada, bob)
        async with (
            open_client(nodes[0].ws_url, ada.access_token) as a,
            open_client(nodes[0].ws_url, bob.access_token, device="phone") as b_phone,
            open_client(nodes[1].ws_url, laptop_token, device="laptop") as b_laptop,
        ):
            call = await start(a, room, "video")
            assert await leader_of(nodes[0], call.id) == key(nodes[0])
            for device in (b_phone, b_laptop):
                ring = await expect(device, fc.CallRing)
                assert ring.d.id == call.id and statuses(ring.d)[bob.id] == "ringing"
            await expect_state(a, "started")

            # Node 1 does not lead the call: the accept is forwarded, and the
            # answer comes back to the laptop from node 0.
            view = await accept(b_laptop, call.id)
            assert view.state == "active" and statuses(view)[bob.id] == "joined"
            for device in (a, b_phone, b_laptop):
                joined = await expect_state(device, "joined")
                assert joined.user == bob.id and joined.call.state == "active"
            assert await leader_of(nodes[1], call.id) == key(nodes[0])

            # Offer node 0 -> node 1, answer and ICE back, ICE forth.
            await send_sdp(a, call.id, bob.id, "offer", "v=0 offer")
            offer = await expect(b_laptop, fc.CallRemoteSdp)
            assert (offer.d.from_, offer.d.type, offer.d.sdp) == (ada.id, "offer", "v=0 offer")
            await send_sdp(b_laptop, call.id, ada.id, "answer", "v=0 answer")
            answer = await expect(a, fc.CallRemoteSdp)
            assert (answer.d.from_, answer.d.type, answer.d.sdp) == (bob.id, "answer", "v=0 answer")
            await send_ice(b_laptop, call.id, ada.id, HOST_CANDIDATE, sdp_mid="0")
            ice = await expect(a, fc.CallRemoteIce)
            assert (ice.d.from_, ice.d.candidate, ice.d.sdp_mid) == (bob.id, HOST_CANDIDATE, "0")
            await send_ice(a, call.id, bob.id, HOST_CANDIDATE, sdp_mline_index=0)
            ice = await expect(b_laptop, fc.CallRemoteIce)
            assert (ice.d.from_, ice.d.sdp_mline_index) == (ada.id, 0)
            # The phone is not the device in the call: no signaling for it.
            await quiet(b_phone)
            # Signaling from the device that is not in the call is refused, as on one node.
            await refused("not_in_call", send_sdp(b_phone, call.id, ada.id, "answer", "x"))

            await hangup(b_laptop, call.id)
            for device in (a, b_phone, b_laptop):
                ended = await expect_state(device, "ended")
                assert ended.call.outcome == "answered" and ended.user == bob.id
        async with rest(nodes[1]) as http:
            r = await http.get(
                f"/calls/{call.id}", headers={"authorization": f"Bearer {laptop_token}"}
            )
            assert r.status_code == 200, r.text
            assert r.json()["call"]["outcome"] == "answered"
        # Nobody stays busy once it is over.
        claims = CallClaims(db(nodes[0]).db)
        assert await claims.holder(ada.id) is None and await claims.holder(bob.id) is None


async def test_a_callee_in_a_call_led_by_the_other_node_is_busy(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        async with rest(nodes[0]) as http:
            ada, bob, cy = [await register(http) for _ in range(3)]
            ada_bob = await direct_room(http, ada, bob)
            cy_bob = await direct_room(http, cy, bob)
        async with (
            open_client(nodes[0].ws_url, ada.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
            open_client(nodes[1].ws_url, cy.access_token) as c,
        ):
            first = await start(c, cy_bob)  # led by node 1
            await expect(b, fc.CallRing)
            await accept(b, first.id)
            assert await leader_of(nodes[0], first.id) == key(nodes[1])

            second = await start(a, ada_bob)  # led by node 0
            assert second.state == "ended" and second.outcome == "busy"
            assert statuses(second)[bob.id] == "busy"
            ended = await expect_state(a, "ended")
            assert ended.call.outcome == "busy"
            # Bob was not rung, and his call goes on.
            while (frame := await next_call_push(b)) is not None:
                assert not isinstance(frame, fc.CallRing), frame
                if isinstance(frame, fc.CallStateFrame) and frame.d.call.id == first.id:
                    break
            await quiet(b)

            # Bob, in the call on node 1, cannot start another from node 0 either.
            async with open_client(nodes[0].ws_url, bob.access_token, device="tablet") as b2:
                await refused(
                    "already_in_call",
                    b2.request(fc.CallStart(id=0, d=fc.CallStartData(room=ada_bob, kind="audio"))),
                )

            await hangup(c, first.id)
            await expect_state(b, "ended")
            # Free again: a call from node 0 rings him on node 1.
            third = await start(a, ada_bob)
            assert statuses(third)[bob.id] == "ringing"
            assert (await expect(b, fc.CallRing)).d.id == third.id


async def test_two_calls_to_one_user_from_two_nodes_at_once_ring_exactly_once(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        async with rest(nodes[0]) as http:
            ada, cy, bob = [await register(http) for _ in range(3)]
            ada_bob = await direct_room(http, ada, bob)
            cy_bob = await direct_room(http, cy, bob)
        claims = CallClaims(db(nodes[0]).db)
        async with (
            open_client(nodes[0].ws_url, ada.access_token) as a,
            open_client(nodes[1].ws_url, cy.access_token) as c,
        ):
            for _ in range(8):
                views: list[fc.CallView] = []

                async def call(client: Client, room: str, views: list[fc.CallView]) -> None:
                    views.append(await start(client, room))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call, a, ada_bob, views)
                    nursery.start_soon(call, c, cy_bob, views)
                outcomes = sorted(statuses(v)[bob.id] for v in views)
                assert outcomes == ["busy", "ringing"], views
                ringing = next(v for v in views if statuses(v)[bob.id] == "ringing")
                assert await claims.holder(bob.id) == ringing.id
                await hangup(a if ringing.caller == ada.id else c, ringing.id)
                assert await claims.holder(bob.id) is None


async def test_a_device_that_drops_is_reconnecting_on_the_leading_node(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2, call_reconnect_grace=0.5) as (_, nodes):
        async with rest(nodes[0]) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
        async with open_client(nodes[0].ws_url, ada.access_token) as a:
            async with open_client(nodes[1].ws_url, bob.access_token) as b:
                call = await start(a, room)
                await expect(b, fc.CallRing)
                await accept(b, call.id)
            # Bob's connection on node 1 closed: node 0, which leads, hears.
            await expect_state(a, "started")
            await expect_state(a, "joined")
            assert (await expect_state(a, "reconnecting")).user == bob.id
            ended = await expect_state(a, "ended", timeout=5)
            assert ended.call.outcome == "answered"


async def test_a_call_whose_leading_node_stops_ends_as_failed_on_the_other(
    local_cluster: LocalCluster,
) -> None:
    """Signaling state lives in the leader's memory: when its node goes, the
    call cannot go on. The other node takes the call over and ends it as
    ``failed`` for every device; a request sent meanwhile hears ``call_ended``."""
    async with local_cluster(2) as (_, nodes):
        async with rest(nodes[1]) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
        async with open_client(nodes[1].ws_url, bob.access_token) as b:
            async with open_client(nodes[0].ws_url, ada.access_token) as a:
                call = await start(a, room)
                await expect(b, fc.CallRing)
                await accept(b, call.id)
                await expect_state(b, "joined")
            # Ada left first (her device is reconnecting), then her node stops.
            assert (await expect_state(b, "reconnecting")).user == ada.id
            await nodes.stop(0)
            ended = await expect_state(b, "ended", timeout=10)
            assert ended.call.outcome == "failed"
            assert await leader_of(nodes[1], call.id) == key(nodes[1])
            await refused("call_ended", b.request(fc.CallHangup(id=0, d=fc.CallRef(call=call.id))))
            claims = CallClaims(db(nodes[1]).db)
            assert await claims.holder(bob.id) is None


async def test_a_member_removed_through_another_node_is_out_of_the_call_at_once(
    local_cluster: LocalCluster,
) -> None:
    async with local_cluster(2) as (_, nodes):
        async with rest(nodes[0]) as http:
            ada, bob, cy = [await register(http) for _ in range(3)]
            room = await create_group(http, ada, bob, cy)
        async with (
            open_client(nodes[0].ws_url, ada.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
            open_client(nodes[0].ws_url, cy.access_token) as c,
        ):
            call = await start(a, room)  # led by node 0
            await expect(b, fc.CallRing)
            await expect(c, fc.CallRing)
            await accept(b, call.id)
            await accept(c, call.id)
            # Removed through node 1's REST API: node 0, which leads, hears.
            async with rest(nodes[1]) as http:
                r = await http.delete(f"/rooms/{room}/members/{bob.id}", headers=auth(ada))
                assert r.status_code in (200, 204), r.text
            while (left := (await expect(a, fc.CallStateFrame)).d).event != "left":
                assert left.event in ("started", "joined"), left
            assert left.user == bob.id and statuses(left.call)[bob.id] == "left"
            assert statuses(left.call)[cy.id] == "joined"


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@asynccontextmanager
async def redis_nodes(cluster_url: str, redis_url: str, data: Path) -> AsyncIterator[list[Node]]:
    """Two nodes joined by the Redis bus, under a prefix of their own."""
    prefix = f"test:{secrets.token_hex(4)}:"

    def settings(i: int) -> Settings:
        return base.test_settings(
            cluster_url, data, redis_url=redis_url, redis_prefix=prefix, node_id=f"r{i}"
        )

    async with open_node(settings(0)) as n0, open_node(settings(1)) as n1:
        assert n0.cluster is not None and isinstance(n0.cluster.bus, RedisBus)
        yield [n0, n1]


@pytest.mark.parametrize("bus", ["local", "redis"])
async def test_two_aiortc_peers_on_two_nodes_connect_through_relayed_signaling(
    bus: str,
    local_cluster: LocalCluster,
    cluster_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    loopback_ice: None,
) -> None:
    async with two_nodes(bus, local_cluster, cluster_url, tmp_path, request) as nodes:
        async with rest(nodes[0]) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
        async with (
            AsyncioPeer.running() as ada_peer,
            AsyncioPeer.running() as bob_peer,
            open_client(nodes[0].ws_url, ada.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
        ):
            call = await start(a, room, "video")
            await expect(b, fc.CallRing)
            await accept(b, call.id)
            await expect_state(a, "started")
            assert (await expect_state(a, "joined")).user == bob.id
            await expect_state(b, "joined")

            await connect_peers(
                (a, ada_peer),
                (b, bob_peer, bob.id),
                call.id,
                ("hello from node 0", "hello from node 1"),
            )
            await hangup(b, call.id)
            assert (await expect_state(a, "ended")).call.outcome == "answered"


async def sdp_to(client: Client) -> fc.RemoteSdpData:
    """The next SDP relayed to ``client``, past the call's state changes."""
    while not isinstance(frame := await next_call_push(client, 5.0), fc.CallRemoteSdp):
        assert isinstance(frame, fc.CallStateFrame), frame
    return frame.d


async def test_a_block_made_on_a_third_node_keeps_the_pair_apart_in_a_group_call(
    local_cluster: LocalCluster,
) -> None:
    """Ada (node 0) leads; bob is on node 1, cy on node 2, and cy blocks bob
    through node 2's REST API: the leader hears it, and signaling between the
    pair is refused from either side, as on one node; unblocking reconnects them."""
    async with local_cluster(3) as (_, nodes):
        async with rest(nodes[0]) as http:
            ada, bob, cy = [await register(http) for _ in range(3)]
            room = await create_group(http, ada, bob, cy)
        async with (
            open_client(nodes[0].ws_url, ada.access_token) as a,
            open_client(nodes[1].ws_url, bob.access_token) as b,
            open_client(nodes[2].ws_url, cy.access_token) as c,
            rest(nodes[2]) as http_c,
        ):
            call = await start(a, room)
            await expect(b, fc.CallRing)
            await expect(c, fc.CallRing)
            await accept(b, call.id)
            await accept(c, call.id)
            assert await leader_of(nodes[0], call.id) == key(nodes[0])

            r = await http_c.post("/blocks", json={"user_id": bob.id}, headers=auth(cy))
            assert r.status_code == 204, r.text
            # Cy's request leaves node 2 after the block's notice: it is refused.
            await refused("forbidden", send_ice(c, call.id, bob.id, HOST_CANDIDATE))
            await refused("forbidden", send_sdp(b, call.id, cy.id, "offer", "b->c"))
            # Everyone else still talks to everyone.
            await send_sdp(a, call.id, cy.id, "offer", "a->c")
            await send_sdp(b, call.id, ada.id, "offer", "b->a")
            assert (await sdp_to(c)).sdp == "a->c"
            assert (await sdp_to(a)).sdp == "b->a"

            r = await http_c.delete(f"/blocks/{bob.id}", headers=auth(cy))
            assert r.status_code == 204, r.text
            await send_sdp(c, call.id, bob.id, "offer", "c->b again")
            got = await sdp_to(b)
            assert (got.from_, got.sdp) == (cy.id, "c->b again")
