"""Pinned messages (issue 18, item 3): who may pin, the limit of 3, events with
``ev`` pushed live and replayed on resume, REST, and pins of deleted messages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from protocol import frames
from protocol.client import Client, ServerError, open_client
from protocol.frames_chat import MsgPinned, Pin, PinData
from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.e2e.helpers import Account, auth, create_group, register
from tests.messaging.helpers import chat_pushes_until_done, delete, next_of, send


async def pin(client: Client, room: str, seq: int, *, off: bool = False) -> frames.Ok:
    reply = await client.request(Pin(id=0, d=PinData(room=room, seq=seq, off=off)))
    assert isinstance(reply, frames.Ok), reply
    return reply


async def pin_refused(client: Client, room: str, seq: int) -> str:
    with pytest.raises(ServerError) as refused:
        await client.request(Pin(id=0, d=PinData(room=room, seq=seq)))
    return refused.value.code


async def pins_of(http: httpx.AsyncClient, room: str, who: Account) -> dict[str, Any]:
    r = await http.get(f"/rooms/{room}/pins", headers=auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_an_admin_pins_members_see_it_live_and_in_the_room_details(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        m = await send(a, room, "meeting at 10")
        await next_of(b, frames.MsgNew)
        ok = await pin(a, room, m.seq)
        pushed = await next_of(b, MsgPinned)
        assert ok.ev is not None and pushed.d.ev == ok.ev
        assert (pushed.d.seq, pushed.d.by, pushed.d.off, pushed.d.pins) == (
            m.seq,
            alice.id,
            False,
            [m.seq],
        )
        # Pinning it again changes nothing: no event.
        assert (await pin(a, room, m.seq)).ev is None
    details = await pins_of(http, room, bob)
    assert details["ev"] == ok.ev
    assert details["disappearing"] == "off"
    pins: list[dict[str, Any]] = details["pins"]
    assert [(p["seq"], p["by"], p["message"]["text"]) for p in pins] == [
        (m.seq, alice.id, "meeting at 10")
    ]


async def test_a_plain_group_member_may_not_pin_and_a_fourth_pin_is_refused(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        seqs = [(await send(a, room, f"m{i}")).seq for i in range(4)]
        assert await pin_refused(b, room, seqs[0]) == "forbidden"
        for seq in seqs[:3]:
            await pin(a, room, seq)
        assert await pin_refused(a, room, seqs[3]) == "pin_limit"
        assert await pin_refused(a, room, 999) == "not_found"
        # Over REST the same rules, with HTTP statuses.
        r = await http.put(f"/rooms/{room}/pins/{seqs[3]}", headers=auth(alice))
        assert (r.status_code, r.json()["error"]["code"]) == (409, "pin_limit")
        r = await http.put(f"/rooms/{room}/pins/{seqs[0]}", headers=auth(bob))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        r = await http.put(f"/rooms/{room}/pins/nope", headers=auth(alice))
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid")
        # Unpinning one makes room for the fourth.
        r = await http.delete(f"/rooms/{room}/pins/{seqs[0]}", headers=auth(alice))
        assert r.status_code == 200 and r.json()["ev"] > 0
        r = await http.put(f"/rooms/{room}/pins/{seqs[3]}", headers=auth(alice))
        assert r.status_code == 200, r.text
    details = await pins_of(http, room, bob)
    assert [p["seq"] for p in details["pins"]] == seqs[1:]
    stranger = await register(http)
    r = await http.get(f"/rooms/{room}/pins", headers=auth(stranger))
    assert r.status_code == 404
    r = await http.put(f"/rooms/{room}/pins/{seqs[0]}", headers=auth(stranger))
    assert r.status_code == 404
    async with open_client(node.ws_url, stranger.access_token) as s:
        assert await pin_refused(s, room, seqs[0]) == "not_member"


async def test_either_member_of_a_direct_room_pins(node: Node, http: httpx.AsyncClient) -> None:
    alice, bob = await register(http), await register(http)
    r = await http.post("/rooms", json={"kind": "direct", "user_id": bob.id}, headers=auth(alice))
    room = r.json()["room"]["id"]
    async with open_client(node.ws_url, bob.access_token) as b:
        m = await send(b, room, "hi")
        assert (await pin(b, room, m.seq)).ev is not None


async def test_pins_missed_while_offline_are_replayed_with_their_ev(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        first, second = await send(a, room, "one"), await send(a, room, "two")
        async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
            _, done = await chat_pushes_until_done(b)
            cursor, ev_cursor = done.rooms[room], done.evs[room]
        await pin(a, room, first.seq)
        await pin(a, room, second.seq)
        await pin(a, room, first.seq, off=True)
    async with open_client(
        node.ws_url, bob.access_token, cursors={room: cursor}, evs={room: ev_cursor}
    ) as b:
        replayed, done = await chat_pushes_until_done(b)
    assert all(isinstance(f, MsgPinned) for f in replayed)
    assert [(f.d.ev, f.d.seq, f.d.off) for f in replayed] == [
        (ev_cursor + 1, first.seq, False),
        (ev_cursor + 2, second.seq, False),
        (ev_cursor + 3, first.seq, True),
    ]
    assert replayed[-1].d.pins == [second.seq]
    assert done.evs[room] == ev_cursor + 3


async def test_a_message_deleted_for_everyone_drops_out_of_the_pins_even_after_a_restart(
    node_factory: NodeFactory,
) -> None:
    async with node_factory() as node, httpx.AsyncClient(base_url=node.http_url) as http:
        alice, bob = await register(http), await register(http)
        room = await create_group(http, alice, bob)
        async with open_client(node.ws_url, alice.access_token) as a:
            kept, gone = await send(a, room, "kept"), await send(a, room, "gone")
            await pin(a, room, kept.seq)
            await pin(a, room, gone.seq)
            await delete(a, room, gone.seq, everyone=True)
            assert await pin_refused(a, room, gone.seq) == "not_found"
        assert [p["seq"] for p in (await pins_of(http, room, bob))["pins"]] == [kept.seq]
    async with node_factory() as node, httpx.AsyncClient(base_url=node.http_url) as http:
        details = await pins_of(http, room, bob)
        assert [p["seq"] for p in details["pins"]] == [kept.seq]
