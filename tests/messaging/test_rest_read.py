"""REST ``POST /rooms/{id}/read`` does what the socket's ``rcpt`` does (issue 12, item 16).

Same room actor, same rules: the sender and the reader's other devices hear
``rcpt.update``, the change gets an ``ev`` that a resume replays, the cursor
never moves back and stops at the last message.
"""

from __future__ import annotations

from typing import Any

import httpx

from protocol import frames
from protocol.client import open_client
from realtime_server.node import Node
from tests.e2e.helpers import Account, auth, create_group, login, register
from tests.messaging.helpers import chat_pushes_until_done, next_of, send


async def _read(http: httpx.AsyncClient, who: Account, room: str, seq: Any) -> httpx.Response:
    return await http.post(f"/rooms/{room}/read", json={"seq": seq}, headers=auth(who))


async def test_reading_over_rest_tells_the_sender_and_the_readers_other_devices(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    bob_tablet = await login(http, bob, "tablet")
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob_tablet, device="tablet") as tablet,
    ):
        await send(a, room, "one")
        await send(a, room, "two")
        await next_of(tablet, frames.MsgNew)
        await next_of(tablet, frames.MsgNew)
        r = await _read(http, bob, room, 1)
        assert r.status_code == 200, r.text
        assert r.json() == {"read_seq": 1}
        to_sender = await next_of(a, frames.ReceiptUpdate)
        to_other_device = await next_of(tablet, frames.ReceiptUpdate)
    assert (to_sender.d.user, to_sender.d.read, to_sender.d.dlv, to_sender.d.ev) == (
        bob.id,
        1,
        1,
        1,
    )
    assert (to_other_device.d.read, to_other_device.d.ev, to_other_device.d.unread) == (1, 1, 1)
    # Stored as a change event: a peer resuming from ev 0 gets it.
    async with open_client(node.ws_url, alice.access_token, cursors={room: 2}, evs={room: 0}) as a:
        replayed, done = await chat_pushes_until_done(a)
    assert [(type(f), f.d.ev, f.d.read) for f in replayed] == [(frames.ReceiptUpdate, 1, 1)]
    assert done.evs[room] == 1


async def test_the_rest_read_cursor_never_moves_back_and_stops_at_the_last_message(
    node: Node, http: httpx.AsyncClient
):
    alice = await register(http)
    room = await create_group(http, alice)
    async with open_client(node.ws_url, alice.access_token) as a:
        for n in range(10):
            await send(a, room, f"message {n}")
    answers = []
    for seq in (4, 2, 99, 10):
        r = await _read(http, alice, room, seq)
        assert r.status_code == 200, r.text
        answers.append(r.json()["read_seq"])
    assert answers == [4, 4, 10, 10]
    listed = (await http.get("/rooms", headers=auth(alice))).json()["rooms"][0]
    assert (listed["read_seq"], listed["unread"]) == (10, 0)


async def test_reading_a_room_you_are_not_in_looks_like_no_room_at_all(
    node: Node, http: httpx.AsyncClient
):
    alice, eve = await register(http), await register(http)
    room = await create_group(http, alice)
    theirs = await _read(http, eve, room, 1)
    nowhere = await _read(http, eve, "r_does_not_exist", 1)
    assert theirs.status_code == nowhere.status_code == 404
    # The same answer but for the request id each response carries.
    same, other = theirs.json()["error"], nowhere.json()["error"]
    assert same.pop("request_id") != other.pop("request_id")
    assert same == other
    assert same["code"] == "not_found"
