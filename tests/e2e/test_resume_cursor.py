"""A resume cursor beyond the room's end is clamped to it, as read receipts are (issue 12)."""

from __future__ import annotations

import httpx

from protocol import frames
from protocol.client import open_client
from realtime_server.node import Node
from tests.e2e.helpers import create_group, register
from tests.e2e.test_resume import drain_until_resume_done


async def test_a_cursor_past_the_last_message_is_answered_with_the_last_seq(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        sent = [await a.send_message(room, f"m{i}") for i in range(3)]
    async with open_client(node.ws_url, bob.access_token, cursors={room: 1_000}) as b:
        replayed, done = await drain_until_resume_done(b)
        # Nothing to replay, and the cursor the client keeps is the room's real end,
        # so it cannot skip the messages 4..1000 once they exist.
        assert replayed == []
        assert done.rooms == {room: sent[-1].seq}
        async with open_client(node.ws_url, alice.access_token) as a:
            live = await a.send_message(room, "the fourth")
        frame = await b.next_push(timeout=5)
        assert isinstance(frame, frames.MsgNew) and frame.d == live and live.seq == 4
