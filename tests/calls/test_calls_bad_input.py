"""Bad call requests over real sockets: a clear code, the call unchanged, nobody disturbed.

"Nobody disturbed" is shown by a real exchange right after the bad requests:
the next call frame the others get is that exchange, nothing before it.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio

from protocol import frames_calls as fc
from protocol.client import Client, open_client
from realtime_server.node import Node
from tests.calls.helpers import (
    HOST_CANDIDATE,
    accept,
    decline,
    direct_room,
    expect,
    expect_state,
    hangup,
    history,
    join,
    next_call_push,
    refused,
    send_ice,
    send_sdp,
    start,
    statuses,
)
from tests.conftest import NodeFactory
from tests.e2e.helpers import Account, auth, create_group, login, register


async def in_a_call(a: Client, b: Client, room: str) -> fc.CallView:
    call = await start(a, room)
    await expect_state(a, "started")
    await expect(b, fc.CallRing)
    await accept(b, call.id)
    await expect_state(a, "joined")
    await expect_state(b, "joined")
    return call


async def still_talking(a: Client, b: Client, call: str, ada: Account, bob: Account) -> None:
    """The call works as before, and this exchange is the next thing each side sees."""
    await send_sdp(a, call, bob.id, "offer", "still here")
    got = await expect(b, fc.CallRemoteSdp)
    assert (got.d.from_, got.d.sdp) == (ada.id, "still here")
    await send_sdp(b, call, ada.id, "answer", "me too")
    assert (await expect(a, fc.CallRemoteSdp)).d.sdp == "me too"


async def test_signaling_for_a_call_i_am_not_in(node: Node, http: httpx.AsyncClient):
    ada, bob, eve = await register(http), await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, eve.access_token) as e,
    ):
        call = await in_a_call(a, b, room)
        await refused("not_in_call", send_sdp(e, call.id, bob.id, "offer", "spam"))
        await refused("not_in_call", send_ice(e, call.id, ada.id, HOST_CANDIDATE))
        await refused("not_in_call", join(e, call.id))
        await refused("not_in_call", accept(e, call.id))
        await refused("not_in_call", hangup(e, call.id))
        await refused("not_found", send_sdp(e, "c_nope", bob.id, "offer", "x"))
        await refused("not_found", accept(e, "c_nope"))
        # Signaling to someone outside the call, or to oneself.
        await refused("not_in_call", send_sdp(a, call.id, eve.id, "offer", "x"))
        await refused("invalid", send_sdp(a, call.id, ada.id, "offer", "x"))
        await still_talking(a, b, call.id, ada, bob)


async def test_signaling_from_a_device_that_is_not_the_one_in_the_call(
    node: Node, http: httpx.AsyncClient
):
    ada, bob = await register(http), await register(http)
    laptop = await login(http, bob, device="laptop")
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token, device="phone") as b,
        open_client(node.ws_url, laptop, device="laptop") as other,
    ):
        call = await in_a_call(a, b, room)
        await refused("not_in_call", send_sdp(other, call.id, ada.id, "answer", "x"))
        await still_talking(a, b, call.id, ada, bob)


async def test_answering_twice_and_declining_after_answering(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await in_a_call(a, b, room)
        await refused("already_answered", accept(b, call.id))
        await refused("already_answered", join(b, call.id))
        await refused("already_answered", decline(b, call.id))
        await refused("already_answered", accept(a, call.id))  # the caller is in it already
        await still_talking(a, b, call.id, ada, bob)


async def test_offers_and_answers_after_hang_up(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await in_a_call(a, b, room)
        await hangup(a, call.id)
        await expect_state(a, "ended")
        await expect_state(b, "ended")
        await refused("call_ended", send_sdp(b, call.id, ada.id, "offer", "late"))
        await refused("call_ended", send_ice(a, call.id, bob.id, ""))
        await refused("call_ended", accept(b, call.id))
        await refused("call_ended", join(a, call.id))
        await refused("call_ended", hangup(b, call.id))
        await refused("call_ended", decline(b, call.id))
        # The history says what happened, once; both can call again.
        [row] = await history(http, ada)
        assert (row["state"], row["outcome"]) == ("ended", "answered")
        again = await start(b, room)
        assert again.state == "ringing"


async def test_oversized_sdp_and_ice_are_refused_before_relay(
    node_factory: NodeFactory, http_factory
):
    async with node_factory(call_max_sdp_bytes=2000, call_max_ice_bytes=200) as node:
        async with http_factory(node) as http:
            ada, bob = await register(http), await register(http)
            room = await direct_room(http, ada, bob)
            async with (
                open_client(node.ws_url, ada.access_token) as a,
                open_client(node.ws_url, bob.access_token) as b,
            ):
                call = await in_a_call(a, b, room)
                await refused("signal_too_large", send_sdp(a, call.id, bob.id, "offer", "x" * 2001))
                # Bytes, not characters: 1000 two-byte characters are 2000 bytes and pass...
                await send_sdp(a, call.id, bob.id, "offer", "é" * 1000)
                assert (await expect(b, fc.CallRemoteSdp)).d.sdp == "é" * 1000
                # ...1001 do not.
                await refused("signal_too_large", send_sdp(a, call.id, bob.id, "offer", "é" * 1001))
                await refused(
                    "signal_too_large", send_ice(a, call.id, bob.id, "candidate:" + "1" * 200)
                )
                await refused("invalid", send_sdp(a, call.id, bob.id, "offer", "  "))
                await still_talking(a, b, call.id, ada, bob)


async def test_calling_a_room_i_am_not_in(node: Node, http: httpx.AsyncClient):
    ada, bob, eve = await register(http), await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, eve.access_token) as e,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        await refused("not_member", start(e, room))
        await refused("not_member", start(e, "r_does_not_exist"))
        await refused("invalid", e.request(fc.CallStart(id=0, d=fc.CallStartData(room=""))))
        with pytest.raises(trio.TooSlowError):
            await next_call_push(b, timeout=0.3)
    assert await history(http, eve) == [] and await history(http, bob) == []


async def test_a_malformed_call_frame_is_invalid(node: Node, http: httpx.AsyncClient):
    ada = await register(http)
    async with open_client(node.ws_url, ada.access_token) as a:
        raw = msgspec.msgpack.encode(
            {"t": "call.start", "id": 7, "d": {"room": "r", "kind": "holo"}}
        )
        await a.send_raw(raw)
        err = await a.next_push(timeout=5)
        while not hasattr(err, "code"):
            err = await a.next_push(timeout=5)
        assert (err.code, err.re) == ("invalid", 7)


async def test_starting_a_second_call_while_in_one(node: Node, http: httpx.AsyncClient):
    ada, bob, cy = await register(http), await register(http), await register(http)
    ada_bob = await direct_room(http, ada, bob)
    ada_cy = await direct_room(http, ada, cy)
    group = await create_group(http, bob, ada, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await in_a_call(a, b, ada_bob)
        await refused("already_in_call", start(a, ada_cy))
        await refused("already_in_call", start(b, group))
        # cy calls a group ada and bob are in: they are busy, nobody rings.
        group_call = await start(c, group)
        assert (group_call.state, group_call.outcome) == ("ended", "busy")
        await expect_state(c, "ended")
        assert [c2["id"] for c2 in await history(http, cy)] == [group_call.id]
        await still_talking(a, b, call.id, ada, bob)


async def test_a_group_call_has_a_participant_cap(node_factory: NodeFactory, http_factory):
    async with node_factory(call_max_participants=2) as node:
        async with http_factory(node) as http:
            ada, bob, cy = await register(http), await register(http), await register(http)
            group = await create_group(http, ada, bob, cy)
            async with (
                open_client(node.ws_url, ada.access_token) as a,
                open_client(node.ws_url, bob.access_token) as b,
                open_client(node.ws_url, cy.access_token) as c,
            ):
                call = await start(a, group)
                await expect_state(a, "started")
                await expect(b, fc.CallRing)
                await expect(c, fc.CallRing)
                await accept(b, call.id)
                for client in (a, b, c):
                    await expect_state(client, "joined")
                await refused("call_full", accept(c, call.id))
                await refused("call_full", join(c, call.id))
                await still_talking(a, b, call.id, ada, bob)
                # cy is still rung and untouched: once bob leaves there is room.
                await hangup(b, call.id)
                for client in (a, b, c):
                    await expect_state(client, "left")
                view = await join(c, call.id)
                assert statuses(view)[cy.id] == "joined"


async def test_calling_someone_who_blocked_me_either_way(node: Node, http: httpx.AsyncClient):
    ada, bob, cy = await register(http), await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    group = await create_group(http, ada, bob, cy)
    r = await http.post("/blocks", json={"user_id": ada.id}, headers=auth(bob))
    assert r.status_code == 204, r.text
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        await refused("forbidden", start(a, room))  # bob blocked ada
        await refused("forbidden", start(b, room))  # and the block holds both ways
        # In a group, the blocked pair is simply not connected: cy rings, bob does not.
        call = await start(a, group)
        assert statuses(call) == {ada.id: "joined", cy.id: "ringing"}
        assert (await expect(c, fc.CallRing)).d.id == call.id
        with pytest.raises(trio.TooSlowError):
            await next_call_push(b, timeout=0.3)
    assert [row["id"] for row in await history(http, ada)] == [call.id]
    assert await history(http, bob) == []


async def test_an_id_with_a_nul_is_invalid_on_every_backend(node: Node, http: httpx.AsyncClient):
    """Issue 12: PostgreSQL answered "unavailable" (retry!) for a NUL in an id."""
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with open_client(node.ws_url, ada.access_token) as a:
        await refused("invalid", a.request(fc.CallJoin(id=0, d=fc.CallRef(call="c_\x00"))))
        await refused(
            "invalid", a.request(fc.CallStart(id=0, d=fc.CallStartData(room="r\x00", kind="audio")))
        )
        call = await start(a, room)
        await refused("invalid", send_sdp(a, call.id, "u\x00", "offer", "v=0"))
        assert call.state == "ringing"
