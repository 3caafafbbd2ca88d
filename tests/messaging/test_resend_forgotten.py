"""A resend of a cid the room no longer remembers.

The room takes a cid it does not remember to be new and hands it to the writer
without a lookup (a query per batch would stand before every fan-out). The
unique (room, sender, cid) index refuses a resend, the batch stores nothing,
and the room looks the cid up and answers with the original: nothing is stored
twice, no seq is skipped, and what was sent meanwhile is stored in order.
"""

from __future__ import annotations

import httpx
import trio

from protocol import frames
from protocol.client import open_client
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, register
from tests.messaging.helpers import next_of


async def test_a_resend_older_than_the_rooms_memory_returns_the_original(
    node_factory: NodeFactory,
):
    # A cache of one message: the room remembers the cids of the last four only.
    async with (
        node_factory(room_cache_size=1) as node,
        httpx.AsyncClient(base_url=node.http_url, timeout=10) as http,
    ):
        alice, bob = await register(http), await register(http)
        room = await create_group(http, alice, bob)
        async with (
            open_client(node.ws_url, alice.access_token) as a,
            open_client(node.ws_url, bob.access_token) as b,
        ):
            first = await a.send_message(room, "the original", cid="old")
            for i in range(6):
                await a.send_message(room, f"later {i}", cid=f"later-{i}")
            for _ in range(7):
                await next_of(b, frames.MsgNew)

            # The forgotten resend and a new message, in one batch or two.
            async with trio.open_nursery() as nursery:
                replies: dict[str, frames.Message] = {}

                async def send(text: str, cid: str) -> None:
                    replies[cid] = await a.send_message(room, text, cid=cid)

                nursery.start_soon(send, "the original", "old")
                nursery.start_soon(send, "new", "new")

            assert replies["old"] == first
            assert replies["new"].seq == first.seq + 7
            pushed = await next_of(b, frames.MsgNew)
            assert (pushed.d.cid, pushed.d.seq) == ("new", first.seq + 7)

            # And again: the answer does not depend on what the room remembers.
            assert await a.send_message(room, "the original", cid="old") == first

        r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
        seqs = [m["seq"] for m in r.json()["messages"]]
        assert sorted(seqs) == list(range(first.seq, first.seq + 8))
