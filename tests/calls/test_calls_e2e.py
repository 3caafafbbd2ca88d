"""Calls over real sockets: each outcome, devices, signaling relay, group join and leave."""

from __future__ import annotations

import httpx
import pytest
import trio

from protocol import frames_calls as fc
from protocol.client import ServerError, open_client
from protocol.frames import MsgNew
from realtime_server.node import Node
from tests.calls.helpers import (
    accept,
    decline,
    direct_room,
    expect,
    expect_state,
    hangup,
    history,
    join,
    send_ice,
    send_sdp,
    start,
    statuses,
)
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, login, register


async def test_an_answered_call_relays_signaling_and_is_stored(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http, "ada"), await register(http, "bob")
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token, device="ada-phone") as a,
        open_client(node.ws_url, bob.access_token, device="bob-phone") as b,
    ):
        call = await start(a, room, "video")
        assert (call.state, call.group, call.kind, call.caller) == (
            "ringing",
            False,
            "video",
            ada.id,
        )
        assert statuses(call) == {ada.id: "joined", bob.id: "ringing"}
        assert call.ice_servers == []  # none configured
        assert (await expect_state(a, "started")).call.id == call.id
        ring = await expect(b, fc.CallRing)
        assert (ring.d.id, ring.d.state) == (call.id, "ringing")

        answered = await accept(b, call.id)
        assert answered.state == "active" and answered.answered_at is not None
        for client in (a, b):
            state = await expect_state(client, "joined")
            assert state.user == bob.id
            assert {p.user: p.device for p in state.call.participants} == {
                ada.id: "ada-phone",
                bob.id: "bob-phone",
            }

        # The mesh rule: ada (already in) offers to bob (who joined).
        await send_sdp(a, call.id, bob.id, "offer", "v=0 offer")
        await send_ice(
            a, call.id, bob.id, "candidate:1 1 udp 1 127.0.0.1 5000 typ host", sdp_mid="0"
        )
        await send_ice(
            a, call.id, bob.id, "candidate:2 1 udp 1 127.0.0.1 5001 typ host", sdp_mid="0"
        )
        offer = await expect(b, fc.CallRemoteSdp)
        assert (offer.d.from_, offer.d.type, offer.d.sdp) == (ada.id, "offer", "v=0 offer")
        first, second = await expect(b, fc.CallRemoteIce), await expect(b, fc.CallRemoteIce)
        assert [first.d.candidate[:11], second.d.candidate[:11]] == ["candidate:1", "candidate:2"]
        assert first.d.sdp_mid == "0" and first.d.from_ == ada.id
        await send_sdp(b, call.id, ada.id, "answer", "v=0 answer")
        answer = await expect(a, fc.CallRemoteSdp)
        assert (answer.d.from_, answer.d.type) == (bob.id, "answer")

        await hangup(b, call.id)
        for client in (a, b):
            ended = await expect_state(client, "ended")
            assert (ended.user, ended.call.outcome) == (bob.id, "answered")

    [row] = await history(http, ada)
    assert (row["id"], row["outcome"], row["kind"], row["room_id"]) == (
        call.id,
        "answered",
        "video",
        room,
    )
    assert row["duration_ms"] == row["ended_at"] - row["answered_at"] >= 0
    assert [(p["user_id"], p["status"]) for p in row["participants"]] == [
        (ada.id, "left"),
        (bob.id, "left"),
    ]
    assert (await history(http, bob))[0]["id"] == call.id


async def test_a_declined_call(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await start(a, room)
        await expect_state(a, "started")
        await expect(b, fc.CallRing)
        await decline(b, call.id)
        for client in (a, b):
            ended = await expect_state(client, "ended")
            assert (ended.call.outcome, ended.user) == ("declined", bob.id)
            assert statuses(ended.call) == {ada.id: "left", bob.id: "declined"}
    assert (await history(http, ada))[0]["outcome"] == "declined"


async def test_calling_someone_in_another_call_is_busy(node: Node, http: httpx.AsyncClient):
    ada, bob, cy = await register(http), await register(http), await register(http)
    ada_bob = await direct_room(http, ada, bob)
    cy_bob = await direct_room(http, cy, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        first = await start(a, ada_bob)
        await accept(b, first.id)
        busy = await start(c, cy_bob)
        assert (busy.state, busy.outcome) == ("ended", "busy")
        assert statuses(busy) == {cy.id: "left", bob.id: "busy"}
        ended = await expect_state(c, "ended")
        assert ended.call.outcome == "busy"
        # Bob is not disturbed: nothing about cy's call reaches him.
        await expect(b, fc.CallRing)
        assert (await expect_state(b, "joined")).call.id == first.id
        with pytest.raises(trio.TooSlowError):
            await expect(b, fc.CallStateFrame, timeout=0.3)
    [row] = await history(http, cy)
    assert (row["outcome"], row["state"]) == ("busy", "ended")
    assert {c["id"] for c in await history(http, bob)} == {first.id, busy.id}


async def test_a_missed_call_leaves_a_system_message_and_a_notice(
    node_factory: NodeFactory, http_factory
):
    async with node_factory(call_ring_seconds=0.3) as node:
        async with http_factory(node) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
            async with (
                open_client(node.ws_url, ada.access_token) as a,
                open_client(node.ws_url, bob.access_token, device="phone") as b1,
                open_client(node.ws_url, bob.access_token, device="laptop") as b2,
            ):
                call = await start(a, room, "video")
                for b in (b1, b2):
                    await expect(b, fc.CallRing)
                for b in (b1, b2):
                    ended = await expect_state(b, "ended")
                    assert (ended.call.outcome, statuses(ended.call)[bob.id]) == (
                        "missed",
                        "missed",
                    )
                    notice = await expect(b, fc.CallMissed)
                    assert (notice.d.call, notice.d.caller, notice.d.kind) == (
                        call.id,
                        ada.id,
                        "video",
                    )
                await expect_state(a, "started")
                assert (await expect_state(a, "ended")).call.outcome == "missed"
                system = await _next_msg(b1)
                assert (system.sender, system.kind, system.cid, system.text) == (
                    "system",
                    "system",
                    f"call:{call.id}:missed",
                    "Missed video call",
                )
            r = await http.get(f"/rooms/{room}/messages", headers=auth(bob))
            assert [m["cid"] for m in r.json()["messages"]] == [f"call:{call.id}:missed"]
            assert (await history(http, bob))[0]["outcome"] == "missed"


async def _next_msg(client):
    while True:
        frame = await client.next_push(timeout=5)
        if isinstance(frame, MsgNew):
            return frame.d


async def test_a_call_cancelled_by_the_caller(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await start(a, room)
        await expect_state(a, "started")
        await expect(b, fc.CallRing)
        await hangup(a, call.id)
        for client in (a, b):
            ended = await expect_state(client, "ended")
            assert ended.call.outcome == "cancelled"
        # Cancelled means not busy any more: bob can call ada right away.
        again = await start(b, room)
        assert again.state == "ringing"
    assert [c["outcome"] for c in await history(http, ada)] == [None, "cancelled"]


async def test_the_first_device_to_answer_wins_and_the_others_stop_ringing(
    node: Node, http: httpx.AsyncClient
):
    ada, bob = await register(http), await register(http)
    laptop = await login(http, bob, device="laptop")
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token, device="phone") as phone,
        open_client(node.ws_url, laptop, device="laptop") as lap,
    ):
        call = await start(a, room)
        await expect(phone, fc.CallRing)
        await expect(lap, fc.CallRing)
        await accept(lap, call.id)
        await expect_state(lap, "joined")
        joined = await expect_state(phone, "joined")
        me = {p.user: p for p in joined.call.participants}[bob.id]
        assert (me.status, me.device) == ("joined", "laptop")  # answered elsewhere: stop ringing
        with pytest.raises(ServerError) as late:
            await accept(phone, call.id)
        assert late.value.code == "already_answered"
        # Only the answering device gets signaling.
        await send_sdp(a, call.id, bob.id, "offer", "v=0")
        assert (await expect(lap, fc.CallRemoteSdp)).d.sdp == "v=0"
        with pytest.raises(trio.TooSlowError):
            await expect(phone, fc.CallRemoteSdp, timeout=0.3)


async def test_a_group_call_with_members_joining_and_leaving(node: Node, http: httpx.AsyncClient):
    ada, bob, cy, dan = [await register(http) for _ in range(4)]
    room = await create_group(http, ada, bob, cy, dan)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
        open_client(node.ws_url, dan.access_token) as d,
    ):
        call = await start(a, room, "video")
        assert call.group and statuses(call) == {
            ada.id: "joined",
            bob.id: "ringing",
            cy.id: "ringing",
            dan.id: "ringing",
        }
        for client in (b, c, d):
            await expect(client, fc.CallRing)
        await expect_state(a, "started")

        await accept(b, call.id)
        for client in (a, b, c, d):
            assert (await expect_state(client, "joined")).user == bob.id
        # Mesh: ada offers to bob.
        await send_sdp(a, call.id, bob.id, "offer", "a->b")
        assert (await expect(b, fc.CallRemoteSdp)).d.from_ == ada.id

        await decline(d, call.id)
        for client in (a, b, c, d):
            assert (await expect_state(client, "declined")).user == dan.id

        # cy joins the running call: both ada and bob offer to cy.
        await join(c, call.id)
        for client in (a, b, c, d):
            state = await expect_state(client, "joined")
            assert state.user == cy.id and state.call.state == "active"
        await send_sdp(a, call.id, cy.id, "offer", "a->c")
        await send_sdp(b, call.id, cy.id, "offer", "b->c")
        got = {(await expect(c, fc.CallRemoteSdp)).d.sdp for _ in range(2)}
        assert got == {"a->c", "b->c"}

        # Bob leaves; the call goes on for ada and cy.
        await hangup(b, call.id)
        for client in (a, b, c, d):
            left = await expect_state(client, "left")
            assert left.user == bob.id and left.call.state == "active"
        await send_ice(c, call.id, ada.id, "candidate:9 1 udp 1 127.0.0.1 9 typ host", sdp_mid="0")
        assert (await expect(a, fc.CallRemoteIce)).d.from_ == cy.id

        # Dan changes his mind and joins after declining.
        await join(d, call.id)
        for client in (a, b, c, d):
            assert (await expect_state(client, "joined")).user == dan.id

        await hangup(a, call.id)
        await hangup(c, call.id)
        for client in (a, b, c, d):
            assert (await expect_state(client, "left")).user == ada.id
            ended = await expect_state(client, "ended")
            assert ended.call.outcome == "answered"

    [row] = await history(http, ada, room=room)
    assert row["group"] is True and row["outcome"] == "answered"
    assert row["participants"][0]["user_id"] == ada.id  # the caller first
    assert {p["user_id"]: p["status"] for p in row["participants"]} == {
        u.id: "left" for u in (ada, bob, cy, dan)
    }


async def test_a_dropped_device_can_rejoin_within_the_grace_period(
    node_factory: NodeFactory, http_factory
):
    async with node_factory(call_reconnect_grace=5.0) as node:
        async with http_factory(node) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
            async with open_client(node.ws_url, ada.access_token) as a:
                async with open_client(node.ws_url, bob.access_token) as b:
                    call = await start(a, room)
                    await expect(b, fc.CallRing)
                    await accept(b, call.id)
                    await expect_state(a, "started")
                    await expect_state(a, "joined")
                # bob's socket is gone
                state = await expect_state(a, "reconnecting")
                assert statuses(state.call)[bob.id] == "reconnecting"
                async with open_client(node.ws_url, bob.access_token) as b2:
                    back = await join(b2, call.id)
                    assert statuses(back)[bob.id] == "joined"
                    assert (await expect_state(b2, "rejoined")).user == bob.id
                    assert (await expect_state(a, "rejoined")).user == bob.id
                    await send_sdp(a, call.id, bob.id, "offer", "again")
                    assert (await expect(b2, fc.CallRemoteSdp)).d.sdp == "again"


async def test_a_dropped_device_that_does_not_come_back_leaves_the_call(
    node_factory: NodeFactory, http_factory
):
    async with node_factory(call_reconnect_grace=0.2) as node:
        async with http_factory(node) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
            async with open_client(node.ws_url, ada.access_token) as a:
                async with open_client(node.ws_url, bob.access_token) as b:
                    call = await start(a, room)
                    await accept(b, call.id)
                await expect_state(a, "started")
                await expect_state(a, "joined")
                await expect_state(a, "reconnecting")
                ended = await expect_state(a, "ended")
                assert (ended.user, ended.call.outcome) == (bob.id, "answered")
            assert (await history(http, ada))[0]["id"] == call.id


async def test_calls_a_stopped_node_left_open_end_as_failed_on_restart(
    node_factory: NodeFactory, http_factory
):
    async with node_factory() as node:
        async with http_factory(node) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
            async with (
                open_client(node.ws_url, ada.access_token) as a,
                open_client(node.ws_url, bob.access_token) as b,
            ):
                call = await start(a, room)
                await accept(b, call.id)
                assert (await history(http, ada))[0]["state"] == "active"
    async with node_factory() as node:
        async with http_factory(node) as http:
            [row] = await history(http, ada)
            assert (row["id"], row["state"], row["outcome"]) == (call.id, "ended", "failed")
            # And nobody is left busy: they can call each other at once.
            async with open_client(node.ws_url, bob.access_token) as b:
                assert (await start(b, room)).state == "ringing"
