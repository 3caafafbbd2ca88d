"""Calls ring offline phones with a high-priority push; a missed call follows."""

from __future__ import annotations

import httpx

from protocol.client import open_client
from realtime_server.node import Node
from tests.calls.helpers import direct_room, start
from tests.e2e.helpers import register
from tests.push.google import Google
from tests.push.test_offline_push import fcm_token, with_token


async def test_an_offline_callee_is_rung_at_high_priority_then_told_of_the_missed_call(
    push_node: Node, api: httpx.AsyncClient, google: Google
) -> None:
    ada, bob = await register(api, "ada"), await register(api, "bob")
    room = await direct_room(api, ada, bob)
    await with_token(api, bob)
    async with open_client(push_node.ws_url, ada.access_token) as a:
        call = await start(a, room, "video")
        ring = await google.next_message()
        missed = await google.next_message()  # nobody answered within CALL_RING_SECONDS
    assert ring["token"] == fcm_token(bob)
    assert ring["android"]["priority"] == "high" and ring["android"]["ttl"] == "30s"
    assert ring["data"] == {
        "kind": "call.ring",
        "call": call.id,
        "room": room,
        "call_kind": "video",
        "caller": ada.id,
    }
    assert ring["notification"] == {"title": "ada", "body": "Incoming video call"}
    assert missed["data"] == {"kind": "call.missed"}
    assert missed["android"]["priority"] == "normal"
    assert missed["notification"] == {"title": "Missed video call", "body": "ada called you."}
