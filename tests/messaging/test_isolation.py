"""Bad chat input from one user changes nothing and disturbs nobody else."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from protocol import frames
from protocol.client import ServerError, open_client
from realtime_server.node import Node
from storage.messages_rich import rich_store
from tests.e2e.helpers import auth, create_group, login, register
from tests.messaging.helpers import (
    chat_pushes_until_done,
    delete,
    edit,
    forward,
    next_of,
    react,
    receipt,
    send,
)


async def test_a_stream_of_refused_changes_leaves_the_room_and_its_members_untouched(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, eve = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob, eve)
    elsewhere = await create_group(http, alice, bob, name="not eve's")
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            async with open_client(node.ws_url, eve.access_token) as e:
                await chat_pushes_until_done(b)
                m = await send(a, room, "hello all")
                await next_of(b, frames.MsgNew)
                await next_of(e, frames.MsgNew)
                attempts = [
                    (edit(e, room, m.seq, "mine now"), "forbidden"),
                    (delete(e, room, m.seq, everyone=True), "forbidden"),
                    (react(e, room, m.seq, "not an emoji"), "invalid"),
                    (react(e, elsewhere, 1, "👍"), "not_member"),
                    (forward(e, room, m.seq, [elsewhere], cid="x"), "not_member"),
                    (receipt(e, elsewhere, read=1), "not_member"),
                    (edit(e, room, 999, "ghost"), "not_found"),
                ]
                for attempt, code in attempts:
                    with pytest.raises(ServerError) as refused:
                        await attempt
                    assert refused.value.code == code
                bad_loc = {
                    "room": room,
                    "cid": "l",
                    "kind": "location",
                    "loc": {"lat": 200, "lon": 0},
                }
                await e.send_raw(msgspec.msgpack.encode({"t": "msg.send", "id": 77, "d": bad_loc}))
                assert (await next_of(e, frames.Err)).code == "invalid"
                # Meanwhile the others carry on as if nothing happened.
                later = await send(a, room, "still here")
                assert (await next_of(b, frames.MsgNew)).d == later
    rich = rich_store(node.store)
    assert await rich.last_ev(room) == 0
    assert await node.store.last_seq(room) == 2
    assert await node.store.last_seq(elsewhere) == 0
    first = await rich.message_at(room, m.seq)
    assert first is not None and (first.text, first.edited_at, first.deleted_at) == (
        "hello all",
        None,
        None,
    )


async def test_after_reconnecting_the_laptop_learns_the_phone_read_everything(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http, device="phone")
    room = await create_group(http, alice, bob)
    laptop_token = await login(http, bob, "laptop")
    async with open_client(node.ws_url, alice.access_token) as a:
        for i in range(4):
            await send(a, room, f"m{i}")
    async with open_client(node.ws_url, laptop_token, device="laptop", cursors={room: 4}) as lap:
        _, done = await chat_pushes_until_done(lap)
        ev_cursor = done.evs[room]
    async with open_client(node.ws_url, bob.access_token, device="phone") as phone:
        await receipt(phone, room, read=4)
    async with open_client(
        node.ws_url, laptop_token, device="laptop", cursors={room: 4}, evs={room: ev_cursor}
    ) as lap:
        replayed, done = await chat_pushes_until_done(lap)
    assert len(replayed) == 1 and isinstance(replayed[0], frames.ReceiptUpdate)
    assert (replayed[0].d.user, replayed[0].d.read, replayed[0].d.dlv) == (bob.id, 4, 4)
    rooms = (await http.get("/rooms", headers=auth(bob))).json()["rooms"]
    assert (rooms[0]["read_seq"], rooms[0]["unread"]) == (4, 0)
