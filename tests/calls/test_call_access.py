"""Who may be in a call follows who may be in its room, at once (issue 12, item 1).

Removing a member from a group, or a member leaving it, ends their part in
the room's running call on the spot: the others see them ``left``, their
signaling is refused (``not_in_call``) and they cannot join again
(``not_member``). A block made during a call cuts the pair apart: a 1:1
call ends, and in a group call the server stops relaying between the two.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from protocol import frames_calls as fc
from protocol.client import Client, open_client
from realtime_server.node import Node
from tests.calls.helpers import (
    HOST_CANDIDATE,
    accept,
    direct_room,
    expect,
    expect_state,
    history,
    join,
    next_call_push,
    refused,
    send_ice,
    send_sdp,
    start,
    statuses,
)
from tests.e2e.helpers import Account, auth, create_group, register


async def remove(http: httpx.AsyncClient, admin: Account, room: str, user: Account) -> None:
    r = await http.delete(f"/rooms/{room}/members/{user.id}", headers=auth(admin))
    assert r.status_code == 200, r.text


async def block(http: httpx.AsyncClient, blocker: Account, blocked: Account) -> None:
    r = await http.post("/blocks", json={"user_id": blocked.id}, headers=auth(blocker))
    assert r.status_code == 204, r.text


async def all_in(caller: Client, room: str, *others: Client) -> fc.CallView:
    """``caller`` calls the group and every one of ``others`` answers, in order."""
    call = await start(caller, room)
    await expect_state(caller, "started")
    for other in others:
        await expect(other, fc.CallRing)
    for other in others:
        await accept(other, call.id)
    for _ in others:
        for client in (caller, *others):
            await expect_state(client, "joined")
    return call


async def quiet(client: Client) -> None:
    """No call push reaches ``client`` for a moment."""
    with pytest.raises(trio.TooSlowError):
        await next_call_push(client, timeout=0.3)


async def test_a_member_removed_while_still_rung_cannot_join_or_signal(
    node: Node, http: httpx.AsyncClient
):
    """The review's case: A, B, C; A calls, B answers; A removes C; C tries to join."""
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await start(a, room)
        await expect_state(a, "started")
        await expect(b, fc.CallRing)
        await expect(c, fc.CallRing)
        await accept(b, call.id)
        for client in (a, b, c):
            assert (await expect_state(client, "joined")).user == bob.id

        await remove(http, ada, room, cy)
        for client in (a, b, c):  # cy hears it too: her phone stops ringing
            left = await expect_state(client, "left")
            assert left.user == cy.id and left.call.state == "active"
            assert statuses(left.call)[cy.id] == "left"

        await refused("not_member", join(c, call.id))
        await refused("not_member", accept(c, call.id))
        await refused("not_in_call", send_sdp(c, call.id, ada.id, "offer", "let me in"))
        await refused("not_in_call", send_sdp(a, call.id, cy.id, "offer", "to cy"))
        # The call goes on for ada and bob, and cy hears nothing more of it.
        await send_sdp(a, call.id, bob.id, "offer", "still here")
        assert (await expect(b, fc.CallRemoteSdp)).d.sdp == "still here"
        await quiet(c)
    [row] = await history(http, ada, room=room)
    assert {p["user_id"]: p["status"] for p in row["participants"]}[cy.id] == "left"


async def test_a_member_removed_mid_call_is_out_of_it_at_once(node: Node, http: httpx.AsyncClient):
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await all_in(a, room, b, c)
        await send_sdp(a, call.id, cy.id, "offer", "a->c")
        assert (await expect(c, fc.CallRemoteSdp)).d.sdp == "a->c"

        await remove(http, ada, room, cy)
        for client in (a, b, c):
            assert (await expect_state(client, "left")).user == cy.id
        await refused("not_in_call", send_ice(c, call.id, bob.id, HOST_CANDIDATE))
        await refused("not_in_call", send_sdp(b, call.id, cy.id, "offer", "b->c"))
        await refused("not_member", join(c, call.id))
        # Ada and bob still talk; cy is free for other calls (not held busy).
        await send_sdp(b, call.id, ada.id, "answer", "b->a")
        assert (await expect(a, fc.CallRemoteSdp)).d.sdp == "b->a"
        await quiet(c)


async def test_removing_one_of_the_last_two_ends_the_call(node: Node, http: httpx.AsyncClient):
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await start(a, room)
        await expect_state(a, "started")
        await expect(b, fc.CallRing)
        await accept(b, call.id)
        await c.request(fc.CallDecline(id=0, d=fc.CallRef(call=call.id)))
        for client in (a, b):
            await expect_state(client, "joined")
            await expect_state(client, "declined")
        # Nobody is rung any more: with bob out, ada is alone and the call ends.
        await remove(http, ada, room, bob)
        for client in (a, b):
            ended = await expect_state(client, "ended")
            assert (ended.user, ended.call.outcome) == (bob.id, "answered")
    [row] = await history(http, ada, room=room)
    assert (row["state"], row["outcome"]) == ("ended", "answered")


async def test_a_member_who_leaves_the_group_leaves_its_call(node: Node, http: httpx.AsyncClient):
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await all_in(a, room, b, c)
        r = await http.post(f"/rooms/{room}/leave", headers=auth(cy))
        assert r.status_code == 204, r.text
        for client in (a, b, c):
            assert (await expect_state(client, "left")).user == cy.id
        await refused("not_member", join(c, call.id))
    # Not from another device either.
    async with open_client(node.ws_url, cy.access_token) as c2:
        await refused("not_member", join(c2, call.id))


async def test_a_caller_removed_while_the_group_call_rings_cancels_it(
    node: Node, http: httpx.AsyncClient
):
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    r = await http.post(f"/rooms/{room}/members/{bob.id}/promote", headers=auth(ada))
    assert r.status_code == 200, r.text
    async with (
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await start(b, room)
        await expect_state(b, "started")
        await expect(c, fc.CallRing)
        await remove(http, ada, room, bob)
        for client in (b, c):
            ended = await expect_state(client, "ended")
            assert (ended.user, ended.call.outcome) == (bob.id, "cancelled")
        await refused("call_ended", accept(c, call.id))


async def test_a_block_during_a_direct_call_ends_it(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await start(a, room)
        await expect_state(a, "started")
        await expect(b, fc.CallRing)
        await accept(b, call.id)
        await expect_state(a, "joined")
        await expect_state(b, "joined")
        await block(http, bob, ada)
        for client in (a, b):
            ended = await expect_state(client, "ended")
            # Nobody learns who blocked whom: the end names no one.
            assert (ended.user, ended.call.outcome) == (None, "answered")
        await refused("call_ended", send_sdp(a, call.id, bob.id, "offer", "hello?"))
        await refused("forbidden", start(a, room))


async def test_a_block_while_a_direct_call_rings_ends_it(node: Node, http: httpx.AsyncClient):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await start(a, room)
        await expect(b, fc.CallRing)
        await expect_state(a, "started")
        await block(http, ada, bob)
        for client in (a, b):
            ended = await expect_state(client, "ended")
            assert (ended.user, ended.call.outcome) == (None, "cancelled")
        await refused("call_ended", accept(b, call.id))


async def test_a_block_during_a_group_call_stops_signaling_between_the_pair(
    node: Node, http: httpx.AsyncClient
):
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await all_in(a, room, b, c)
        await block(http, cy, bob)
        await refused("forbidden", send_sdp(b, call.id, cy.id, "offer", "b->c"))
        await refused("forbidden", send_ice(c, call.id, bob.id, HOST_CANDIDATE))
        # Everyone else still talks to everyone.
        await send_sdp(a, call.id, cy.id, "offer", "a->c")
        assert (await expect(c, fc.CallRemoteSdp)).d.sdp == "a->c"
        await send_sdp(b, call.id, ada.id, "offer", "b->a")
        assert (await expect(a, fc.CallRemoteSdp)).d.sdp == "b->a"
        # Unblocking connects them again.
        r = await http.delete(f"/blocks/{bob.id}", headers=auth(cy))
        assert r.status_code == 204, r.text
        await send_sdp(b, call.id, cy.id, "offer", "b->c again")
        assert (await expect(c, fc.CallRemoteSdp)).d.sdp == "b->c again"


async def test_a_blocked_member_joining_a_group_call_is_not_connected_to_the_blocker(
    node: Node, http: httpx.AsyncClient
):
    ada, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, ada, bob, cy)
    await block(http, ada, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await start(a, room)
        assert statuses(call) == {ada.id: "joined", bob.id: "ringing"}
        await accept(b, call.id)
        await join(c, call.id)  # still a member: she may join and talk to bob
        await refused("forbidden", send_sdp(c, call.id, ada.id, "offer", "c->a"))
        await refused("forbidden", send_sdp(a, call.id, cy.id, "offer", "a->c"))
        await expect(b, fc.CallRing)
        assert (await expect_state(b, "joined")).user == bob.id
        assert (await expect_state(b, "joined")).user == cy.id
        await send_sdp(c, call.id, bob.id, "offer", "c->b")
        got = await expect(b, fc.CallRemoteSdp)
        assert (got.d.from_, got.d.sdp) == (cy.id, "c->b")
