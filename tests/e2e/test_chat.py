"""Chatting over the socket: what two people in a room rely on."""

from __future__ import annotations

import httpx
import pytest
import trio

from protocol import frames
from protocol.client import ServerError, open_client
from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, login, register


async def next_message(client, timeout: float = 5.0) -> frames.Message:  # noqa: ASYNC109
    """The next msg.new push, skipping the handshake's resume.done."""
    while True:
        frame = await client.next_push(timeout=timeout)
        if isinstance(frame, frames.MsgNew):
            return frame.d
        assert isinstance(frame, frames.ResumeDone), frame


async def test_two_users_register_open_a_room_and_chat(node: Node, http: httpx.AsyncClient):
    alice = await register(http, "alice")
    bob = await register(http, "bob")
    token = await login(http, bob, device="laptop")
    room = await create_group(http, alice, bob, name="weekend")

    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, token) as b,
    ):
        assert a.welcome.user == alice.id
        sent = await a.send_message(room, "hi bob")
        assert (sent.room, sent.seq, sent.sender, sent.text) == (room, 1, alice.id, "hi bob")
        got = await next_message(b)
        assert got == sent

        reply = await b.send_message(room, "hi alice")
        assert reply.seq == 2
        assert await next_message(a) == reply

    r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
    assert [m["text"] for m in r.json()["messages"]] == ["hi bob", "hi alice"]


async def test_seqs_are_gap_free_under_concurrent_senders(node: Node, http: httpx.AsyncClient):
    users = [await register(http) for _ in range(3)]
    room = await create_group(http, users[0], *users[1:])
    per_user = 40
    async with (
        open_client(node.ws_url, users[0].access_token) as c0,
        open_client(node.ws_url, users[1].access_token) as c1,
        open_client(node.ws_url, users[2].access_token) as c2,
    ):
        acked: list[int] = []

        async def burst(client, tag: str) -> None:
            async with trio.open_nursery() as n:
                for i in range(per_user):
                    n.start_soon(lambda i=i: _send_and_record(client, room, f"{tag}{i}", acked))

        async with trio.open_nursery() as n:
            for client, tag in ((c0, "a"), (c1, "b"), (c2, "c")):
                n.start_soon(burst, client, tag)
    assert sorted(acked) == list(range(1, 3 * per_user + 1))
    r = await http.get(f"/rooms/{room}/messages?limit=200", headers=auth(users[0]))
    assert [m["seq"] for m in r.json()["messages"]] == list(range(1, 3 * per_user + 1))


async def _send_and_record(client, room: str, text: str, acked: list[int]) -> None:
    acked.append((await client.send_message(room, text)).seq)


async def test_every_device_of_a_member_gets_the_message(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    bob = await register(http)
    room = await create_group(http, alice, bob)
    phone = bob.access_token
    laptop = await login(http, bob, device="laptop")
    alice_tablet = await login(http, alice, device="tablet")
    async with (
        open_client(node.ws_url, alice.access_token, device="phone") as a1,
        open_client(node.ws_url, alice_tablet, device="tablet") as a2,
        open_client(node.ws_url, phone, device="phone") as b1,
        open_client(node.ws_url, laptop, device="laptop") as b2,
    ):
        sent = await a1.send_message(room, "to every screen")
        # The sender's own other device is kept in sync too.
        for client in (a2, b1, b2):
            assert await next_message(client) == sent


async def test_resending_a_cid_returns_the_original_and_stores_nothing_new(
    node: Node, http: httpx.AsyncClient
):
    alice = await register(http)
    bob = await register(http)
    room = await create_group(http, alice, bob)
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        first = await a.send_message(room, "once", cid="c-1")
        again = await a.send_message(room, "once", cid="c-1")
        assert again == first
        # Concurrent resends of a new cid also collapse into one message.
        async with trio.open_nursery() as n:
            results: list[frames.Message] = []
            for _ in range(5):
                n.start_soon(lambda: _append(results, a.send_message(room, "twice?", cid="c-2")))
        assert len({m.id for m in results}) == 1
        assert results[0].seq == 2
        assert (await next_message(b)).seq == 1
        assert (await next_message(b)).seq == 2
        with pytest.raises(trio.TooSlowError):
            await next_message(b, timeout=0.3)
    r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
    assert [m["seq"] for m in r.json()["messages"]] == [1, 2]


async def _append(results: list, awaitable) -> None:
    results.append(await awaitable)


async def test_a_non_member_can_neither_write_nor_resume_a_room(
    node: Node, http: httpx.AsyncClient
):
    alice = await register(http)
    bob = await register(http)
    mallory = await register(http)
    room = await create_group(http, alice, bob)
    async with (
        open_client(node.ws_url, mallory.access_token, cursors={room: 0}) as m,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        err = await m.next_push(timeout=5)
        assert isinstance(err, frames.Err) and err.code == "not_member"
        with pytest.raises(ServerError) as refused:
            await m.send_message(room, "let me in")
        assert refused.value.code == "not_member"
        with pytest.raises(ServerError) as missing:
            await m.send_message("r_does_not_exist", "hello?")
        assert missing.value.code == "not_member"
        # The room and its members are unaffected.
        async with open_client(node.ws_url, alice.access_token) as a:
            sent = await a.send_message(room, "still private")
        assert await next_message(b) == sent
    r = await http.get(f"/rooms/{room}/messages", headers=auth(mallory))
    assert r.status_code == 404


async def test_sql_looking_text_is_stored_verbatim(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    room = await create_group(http, alice)
    nasty = "'); DROP TABLE messages; -- \U0001f600 \\x00 %s $1"
    async with open_client(node.ws_url, alice.access_token) as a:
        assert (await a.send_message(room, nasty)).text == nasty
        # NUL cannot be stored by PostgreSQL: it is refused on every backend alike.
        with pytest.raises(ServerError) as refused:
            await a.send_message(room, "nul \x00 here")
        assert refused.value.code == "invalid"
    r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
    assert r.json()["messages"][0]["text"] == nasty


async def test_room_list_shows_last_message_and_unread_count(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    bob = await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        for i in range(3):
            await a.send_message(room, f"m{i}")
    rooms = (await http.get("/rooms", headers=auth(bob))).json()["rooms"]
    assert rooms[0]["id"] == room
    assert rooms[0]["unread"] == 3
    assert rooms[0]["last_message"]["text"] == "m2"
    assert (await http.get("/rooms", headers=auth(alice))).json()["rooms"][0]["unread"] == 0
    r = await http.post(f"/rooms/{room}/read", json={"seq": 2}, headers=auth(bob))
    assert r.status_code == 200
    assert (await http.get("/rooms", headers=auth(bob))).json()["rooms"][0]["unread"] == 1


async def test_a_resend_older_than_the_room_s_memory_returns_the_original_beside_new_messages(
    node_factory: NodeFactory,
):
    # A room keeps only its last few messages in memory and asks storage about
    # no cid before writing: the database's (room, sender, cid) rule catches
    # the old resend, and the new messages of the same round still get
    # gap-free seqs.
    async with node_factory(room_cache_size=2) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            alice = await register(http)
            bob = await register(http)
            room = await create_group(http, alice, bob)
            async with (
                open_client(node.ws_url, alice.access_token) as a,
                open_client(node.ws_url, bob.access_token) as b,
            ):
                first = await a.send_message(room, "old one", cid="old")
                for i in range(3):  # pushes "old" out of the room's memory
                    await a.send_message(room, f"filler {i}", cid=f"f{i}")
                async with trio.open_nursery() as n:
                    results: list[frames.Message] = []
                    n.start_soon(
                        lambda: _append(results, a.send_message(room, "old one", cid="old"))
                    )
                    for i in range(3):
                        n.start_soon(
                            lambda i=i: _append(
                                results, b.send_message(room, f"new {i}", cid=f"n{i}")
                            )
                        )
                again = next(m for m in results if m.cid == "old")
                assert again == first
                new_seqs = sorted(m.seq for m in results if m.cid != "old")
                assert new_seqs == [5, 6, 7]
            r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
            assert [m["seq"] for m in r.json()["messages"]] == [1, 2, 3, 4, 5, 6, 7]
