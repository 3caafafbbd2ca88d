"""Reactions and receipts: one of each emoji per user, cursors across devices."""

from __future__ import annotations

import httpx
import pytest

from protocol import frames
from protocol.client import ServerError, open_client
from realtime_server.node import Node
from tests.e2e.helpers import auth, create_group, login, register
from tests.messaging.helpers import (
    chat_pushes_until_done,
    delete,
    next_of,
    react,
    receipt,
    send,
)


async def test_reactions_are_pushed_and_aggregated_with_mine_in_history(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, carol = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob, carol)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            async with open_client(node.ws_url, carol.access_token) as c:
                await chat_pushes_until_done(a)
                m = await send(a, room, "lunch?")
                assert (await react(b, room, m.seq, "👍")).ev == 1
                pushed = await next_of(a, frames.MsgReaction)
                assert (pushed.d.user, pushed.d.emoji, pushed.d.off) == (bob.id, "👍", False)
                # The same emoji again: nothing changes, no event.
                assert (await react(b, room, m.seq, "👍")).ev is None
                await react(c, room, m.seq, "👍")
                await react(c, room, m.seq, "👨‍👩‍👧")
                await react(c, room, m.seq, "🇹🇳")
                assert (await react(c, room, m.seq, "🇹🇳", off=True)).ev == 5
                # Removing what is not there changes nothing either.
                assert (await react(c, room, m.seq, "🎉", off=True)).ev is None
    r = await http.get(f"/rooms/{room}/history", headers=auth(bob))
    assert r.json()["messages"][0]["reactions"] == [
        {"e": "👍", "n": 2, "me": True},
        {"e": "👨‍👩‍👧", "n": 1},  # "me": false is left out, like every default
    ]


@pytest.mark.parametrize("emoji", ["a", "👍👍x", "<script>", "1", "👍 ", "\u200d", "🏻"])
async def test_a_bogus_emoji_is_invalid_and_stores_nothing(
    node: Node, http: httpx.AsyncClient, emoji: str
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, room, "hi")
        with pytest.raises(ServerError) as refused:
            await react(a, room, m.seq, emoji)
        assert refused.value.code == "invalid"
    r = await http.get(f"/rooms/{room}/history", headers=auth(alice))
    assert "reactions" not in r.json()["messages"][0]


async def test_reacting_outside_my_rooms_or_to_missing_or_deleted_messages_is_refused(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, eve = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, eve.access_token) as e:
            m = await send(a, room, "hi")
            with pytest.raises(ServerError) as refused:
                await react(e, room, m.seq, "👍")
            assert refused.value.code == "not_member"
            with pytest.raises(ServerError) as refused:
                await react(a, room, 42, "👍")
            assert refused.value.code == "not_found"
            await delete(a, room, m.seq, everyone=True)
            with pytest.raises(ServerError) as refused:
                await react(a, room, m.seq, "👍")
            assert refused.value.code == "conflict"


async def test_read_on_the_phone_clears_the_unread_count_on_the_laptop(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http, device="phone")
    room = await create_group(http, alice, bob)
    laptop_token = await login(http, bob, "laptop")
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token, device="phone") as phone:
            async with open_client(node.ws_url, laptop_token, device="laptop") as laptop:
                await chat_pushes_until_done(laptop)
                await chat_pushes_until_done(a)
                sent = [await send(a, room, f"m{i}") for i in range(3)]
                for _ in sent:
                    await next_of(laptop, frames.MsgNew)
                rooms = (await http.get("/rooms", headers=auth(bob))).json()["rooms"]
                assert rooms[0]["unread"] == 3
                await receipt(phone, room, dlv=3)
                got = await next_of(laptop, frames.ReceiptUpdate)
                assert (got.d.read, got.d.dlv, got.d.unread) == (0, 3, 3)
                await next_of(a, frames.ReceiptUpdate)
                ok = await receipt(phone, room, read=2)
                got = await next_of(laptop, frames.ReceiptUpdate)
                assert (got.d.user, got.d.read, got.d.unread, got.d.ev) == (bob.id, 2, 1, ok.ev)
                other = await next_of(a, frames.ReceiptUpdate)
                # The sender sees the cursor, not Bob's unread count.
                assert (other.d.read, other.d.dlv, other.d.unread) == (2, 3, None)
                await receipt(phone, room, read=99)  # clamped to the last seq
                got = await next_of(laptop, frames.ReceiptUpdate)
                assert (got.d.read, got.d.unread) == (3, 0)
                # Never backwards: an old cursor changes nothing.
                assert (await receipt(laptop, room, read=1)).ev is None
    rooms = (await http.get("/rooms", headers=auth(bob))).json()["rooms"]
    assert rooms[0]["unread"] == 0


async def test_a_receipt_needs_a_cursor_and_membership(node: Node, http: httpx.AsyncClient):
    alice, bob, eve = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, eve.access_token) as e:
        with pytest.raises(ServerError) as refused:
            await receipt(e, room, read=1)
        assert refused.value.code == "not_member"
        with pytest.raises(ServerError) as refused:
            await receipt(e, room)
        assert refused.value.code == "invalid"


async def test_a_reaction_is_exactly_one_emoji_as_people_see_it(
    node: Node, http: httpx.AsyncClient
):
    """Issue 12: two pictographs, or nine, are not one emoji; new and composed ones are."""
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    one = [
        "👍🏽",  # a skin tone
        "\U0001fae8",  # shaking face, Unicode 15: newer than Python's own tables
        "🙂\u200d↔\ufe0f",  # head shaking, a Unicode 15.1 ZWJ sequence
        "🧑🏻\u200d❤\ufe0f\u200d💋\u200d🧑🏼",  # four elements, two tones
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
        "#\ufe0f\u20e3",  # a keycap
        "❤\ufe0f",  # a variation selector
    ]
    many = ["👍👎", "👍" * 9, "🇹🇳🇫🇷", "🇹", "👍🏻🏻", "👍\u0301"]
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, room, "react to me")
        for emoji in many:
            with pytest.raises(ServerError) as refused:
                await react(a, room, m.seq, emoji)
            assert refused.value.code == "invalid", emoji
            assert "emoji" in refused.value.msg
        for emoji in one:
            assert (await react(a, room, m.seq, emoji)).ev is not None, emoji
    r = await http.get(f"/rooms/{room}/history", headers=auth(bob))
    got = {x["e"] for x in r.json()["messages"][0]["reactions"]}
    assert got == set(one)
