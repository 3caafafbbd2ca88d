"""Starred messages (issue 18, items 2 and 5): star and unstar over REST,
``GET /me/starred`` across rooms with cursor paging, and what drops out."""

from __future__ import annotations

from typing import Any

import httpx

from protocol.client import open_client
from protocol.frames import MsgNew
from protocol.frames_chatlist import MsgStarred
from realtime_server.node import Node
from tests.chatlist.conftest import ManualClock
from tests.e2e.helpers import Account, auth, create_group, login, register
from tests.messaging.helpers import delete, next_of, send


async def _star(
    http: httpx.AsyncClient, who: Account, room: str, seq: int, on: bool = True
) -> httpx.Response:
    method = http.put if on else http.delete
    return await method(f"/rooms/{room}/messages/{seq}/star", headers=auth(who))


async def _starred(http: httpx.AsyncClient, who: Account, **params: Any) -> dict[str, Any]:
    r = await http.get("/me/starred", params=params, headers=auth(who))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _keys(page: dict[str, Any]) -> list[tuple[str, int]]:
    return [(s["message"]["room"], s["message"]["seq"]) for s in page["starred"]]


async def test_starred_messages_list_across_rooms_newest_star_first_page_by_page(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    alice, bob = await register(http), await register(http)
    one = await create_group(http, alice, bob, name="one")
    two = await create_group(http, alice, bob, name="two")
    async with open_client(node.ws_url, alice.access_token) as a:
        for n in range(3):
            await send(a, one, f"one {n}")
            await send(a, two, f"two {n}")
    order = [(one, 2), (two, 1), (one, 1), (two, 3), (one, 3)]
    for room, seq in order:
        r = await _star(http, bob, room, seq)
        assert r.status_code == 200, r.text
        assert r.json()["starred"] is True
        clock.advance(1000)
    # Starring again keeps the first time: the order does not change.
    again = await _star(http, bob, one, 2)
    assert again.json()["starred_at"] == (await _starred(http, bob))["starred"][-1]["starred_at"]

    newest_first = list(reversed(order))
    first = await _starred(http, bob, limit=2)
    assert _keys(first) == newest_first[:2]
    assert first["starred"][0]["message"]["text"] == "one 2"
    second = await _starred(http, bob, limit=2, cursor=first["next_cursor"])
    assert _keys(second) == newest_first[2:4]
    last = await _starred(http, bob, limit=2, cursor=second["next_cursor"])
    assert (_keys(last), last["next_cursor"]) == (newest_first[4:], None)
    # Stars are per user.
    assert (await _starred(http, alice))["starred"] == []

    r = await _star(http, bob, two, 3, on=False)
    assert (r.status_code, r.json()["starred"]) == (200, False)
    assert (two, 3) not in _keys(await _starred(http, bob))


async def test_a_message_deleted_for_everyone_or_for_me_or_in_a_room_i_left_drops_out(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    left = await create_group(http, alice, bob, name="left")
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        for n in range(3):
            await send(a, room, f"m{n}")
        await send(a, left, "in a room bob leaves")
        for seq in (1, 2, 3):
            assert (await _star(http, bob, room, seq)).status_code == 200
        assert (await _star(http, bob, left, 1)).status_code == 200
        assert len((await _starred(http, bob))["starred"]) == 4

        await delete(a, room, 1, everyone=True)
        await delete(b, room, 2, everyone=False)
    r = await http.post(f"/rooms/{left}/leave", headers=auth(bob))
    assert r.status_code == 204, r.text
    assert _keys(await _starred(http, bob)) == [(room, 3)]


async def test_starring_needs_a_visible_message_of_a_room_you_are_in(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, eve = await register(http), await register(http)
    room = await create_group(http, alice)
    async with open_client(node.ws_url, alice.access_token) as a:
        await send(a, room, "mine")
        await send(a, room, "gone")
        await delete(a, room, 2, everyone=True)
    for r in (
        await _star(http, eve, room, 1),  # not a member
        await _star(http, eve, room, 1, on=False),
        await _star(http, alice, "r_nope", 1),
        await _star(http, alice, room, 99),  # no such message
        await _star(http, alice, room, 2),  # deleted for everyone
    ):
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.text
    r = await http.get("/me/starred", params={"cursor": "not-a-cursor"}, headers=auth(alice))
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid")
    assert (await _starred(http, eve))["starred"] == []


async def test_a_star_reaches_the_users_other_devices(node: Node, http: httpx.AsyncClient) -> None:
    alice = await register(http)
    room = await create_group(http, alice)
    tablet = await login(http, alice, "tablet")
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, tablet, device="tablet") as t,
    ):
        await send(a, room, "keep this")
        await next_of(t, MsgNew)
        await _star(http, alice, room, 1)
        on = await next_of(t, MsgStarred)
        await _star(http, alice, room, 1, on=False)
        off = await next_of(t, MsgStarred)
        # Unstarring what is not starred changes nothing and pushes nothing.
        await _star(http, alice, room, 1, on=False)
        await _star(http, alice, room, 1)
        again = await next_of(t, MsgStarred)
    assert [(p.d.room, p.d.seq, p.d.on) for p in (on, off, again)] == [
        (room, 1, True),
        (room, 1, False),
        (room, 1, True),
    ]
