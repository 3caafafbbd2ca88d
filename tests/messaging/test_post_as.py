"""Server code posts into rooms without a socket: ``actors.room.post_as``."""

from __future__ import annotations

import httpx
import pytest

from actors.errors import Rejected
from actors.room import post_as
from protocol import frames
from protocol.client import open_client
from realtime_server.node import Node
from tests.e2e.helpers import create_group, register
from tests.messaging.helpers import chat_pushes_until_done, next_of


async def test_a_member_posts_through_the_actor_and_members_see_it_live(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, bob.access_token) as b:
        await chat_pushes_until_done(b)
        stored = await post_as(node.system, room, alice.id, "ai-1", "an answer", kind="ai")
        assert (stored.seq, stored.sender, stored.kind) == (1, alice.id, "ai")
        assert (await next_of(b, frames.MsgNew)).d == stored


async def test_a_repeated_cid_answers_the_original_and_stores_nothing_new(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    first = await post_as(node.system, room, alice.id, "same", "once")
    again = await post_as(node.system, room, alice.id, "same", "twice?")
    assert again == first
    assert await node.store.last_seq(room) == 1


async def test_a_system_sender_needs_the_flag_to_post_without_membership(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    with pytest.raises(Rejected) as refused:
        await post_as(node.system, room, "system", "c1", "Bob joined")
    assert refused.value.code == "not_member"
    notice = await post_as(
        node.system, room, "system", "c1", "Bob joined", kind="system", system_sender=True
    )
    assert (notice.sender, notice.kind, notice.seq) == ("system", "system", 1)


async def test_an_unknown_kind_is_refused_before_the_room(node: Node, http: httpx.AsyncClient):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    with pytest.raises(Rejected) as refused:
        await post_as(node.system, room, alice.id, "c1", "x", kind="bogus")
    assert refused.value.code == "invalid"
    assert await node.store.last_seq(room) == 0
