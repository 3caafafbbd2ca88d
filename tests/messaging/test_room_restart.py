"""A room actor that crashes while its batch is still in the writer (issue 12, item 9).

The writer is paused (``MessageWriter.pause``, a real seam of the writer) so
the race is certain: the batch of the crashed incarnation commits only after
the restarted incarnation has been asked to post. Every sender must get one
``ok``, for the message that was stored under that seq, and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import trio

from actors.room import ROOM
from protocol import frames
from protocol.client import Client, open_client
from realtime_server.node import Node
from tests.e2e.helpers import auth, create_group, register
from tests.messaging.helpers import next_of, send


class Poison:
    """A message no room takes: handling it is a crash (the actor's raising ``case _``)."""


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most 5 s) until ``condition`` holds; ``what`` names it in the failure."""
    with trio.move_on_after(5):
        # Polls statistics of the node under test: nothing there signals them.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.005)
        return
    raise AssertionError(f"still waiting after 5 s: {what}")


async def request_in_background(
    nursery: trio.Nursery, client: Client, room: str, text: str
) -> dict[str, Any]:
    """Send ``text`` now; the reply (or the error) lands in the returned dict."""
    box: dict[str, Any] = {}

    async def run() -> None:
        frame = frames.Send(id=0, d=frames.SendData(room=room, cid=uuid.uuid4().hex, text=text))
        try:
            box["reply"] = await client.request(frame)
        except Exception as exc:
            box["reply"] = exc

    nursery.start_soon(run)
    return box


async def test_an_ack_after_a_restart_answers_only_the_batch_that_stored_the_message(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    writer, system = node.writer, node.system
    async with (
        open_client(node.ws_url, alice.access_token, request_timeout=5) as a,
        open_client(node.ws_url, bob.access_token, request_timeout=5) as b,
    ):
        first = await send(a, room, "before")
        writer.pause()
        async with trio.open_nursery() as nursery:
            old = await request_in_background(nursery, a, room, "from the old incarnation")
            await until(lambda: writer.statistics().queued == 1, "the batch is in the writer")
            await system.ref(ROOM, room).tell(Poison())
            await until(lambda: system.statistics().crashes == 1, "the room crashed")
            new = await request_in_background(nursery, b, room, "to the new incarnation")
            await trio.sleep(0.2)  # the restarted room has had every chance to post
            writer.resume()
        stored = await _history(http, alice, room)

    by_seq = {m["seq"]: m["text"] for m in stored}
    # Gap-free, each seq once.
    assert sorted(by_seq) == [first.seq, first.seq + 1, first.seq + 2]
    # The restarted room's sender is acked for ITS message, under the seq storage gave it.
    new_reply = new["reply"]
    assert isinstance(new_reply, frames.Ok) and new_reply.d is not None, new_reply
    assert by_seq[new_reply.d.seq] == new_reply.d.text == "to the new incarnation"
    # The crashed room's sender is not forgotten: its batch answers it.
    old_reply = old["reply"]
    assert isinstance(old_reply, frames.Ok) and old_reply.d is not None, old_reply
    assert by_seq[old_reply.d.seq] == old_reply.d.text == "from the old incarnation"


async def test_the_batch_of_a_crashed_room_still_reaches_the_other_members(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    writer, system = node.writer, node.system
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        await send(a, room, "warm up")
        await next_of(b, frames.MsgNew)
        writer.pause()
        async with trio.open_nursery() as nursery:
            box = await request_in_background(nursery, a, room, "in flight")
            await until(lambda: writer.statistics().queued == 1, "the batch is in the writer")
            await system.ref(ROOM, room).tell(Poison())
            await until(lambda: system.statistics().crashes == 1, "the room crashed")
            writer.resume()
        pushed = await next_of(b, frames.MsgNew)
    assert isinstance(box["reply"], frames.Ok)
    assert isinstance(pushed, frames.MsgNew) and pushed.d == box["reply"].d


async def _history(http: httpx.AsyncClient, who: Any, room: str) -> list[dict[str, Any]]:
    r = await http.get(f"/rooms/{room}/messages", headers=auth(who))
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages
