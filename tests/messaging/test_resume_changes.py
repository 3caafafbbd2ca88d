"""Resume covers changes: missed edits, deletes, reactions and receipts are replayed."""

from __future__ import annotations

import httpx

from protocol import frames
from protocol.client import open_client
from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.e2e.helpers import create_group, register
from tests.messaging.helpers import chat_pushes_until_done, delete, edit, react, receipt, send


async def test_a_reconnecting_client_gets_missed_edits_deletes_reactions_and_receipts_in_order(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, carol = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob, carol)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, carol.access_token) as c:
            first = await send(a, room, "first")
            second = await send(a, room, "second")
            async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
                _, done = await chat_pushes_until_done(b)
                cursor, ev_cursor = done.rooms[room], done.evs[room]
                assert (cursor, ev_cursor) == (2, 0)
            # Bob is offline now.
            await edit(a, room, first.seq, "first, edited")
            await react(c, room, first.seq, "❤️")
            await delete(a, room, second.seq, everyone=True)
            await receipt(c, room, read=2)
            third = await send(a, room, "third")
            async with open_client(
                node.ws_url, bob.access_token, cursors={room: cursor}, evs={room: ev_cursor}
            ) as b:
                replayed, done = await chat_pushes_until_done(b)
    kinds = [type(f) for f in replayed]
    assert kinds == [
        frames.MsgNew,
        frames.MsgEdited,
        frames.MsgReaction,
        frames.MsgDeleted,
        frames.ReceiptUpdate,
    ]
    assert replayed[0].d == third
    assert [f.d.ev for f in replayed[1:]] == [1, 2, 3, 4]
    assert replayed[1].d.text == "first, edited"
    assert (replayed[2].d.emoji, replayed[2].d.user) == ("❤️", carol.id)
    assert replayed[3].d.seq == second.seq
    assert (replayed[4].d.user, replayed[4].d.read) == (carol.id, 2)
    assert (done.rooms[room], done.evs[room]) == (3, 4)


async def test_an_edit_of_a_message_deleted_later_is_replayed_without_its_text(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, room, "oops")
        await edit(a, room, m.seq, "still a secret")
        await delete(a, room, m.seq, everyone=True)
    async with open_client(node.ws_url, bob.access_token, cursors={room: 0}, evs={room: 0}) as b:
        replayed, done = await chat_pushes_until_done(b)
    assert isinstance(replayed[0], frames.MsgNew) and replayed[0].d.deleted
    assert all(not isinstance(f, frames.MsgEdited) for f in replayed)
    assert all("secret" not in repr(f) for f in replayed)
    assert done.evs[room] == 2


async def test_too_many_missed_changes_tell_the_client_to_reload(node_factory: NodeFactory):
    async with node_factory(resume_max_messages=3) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice, bob = await register(http), await register(http)
            room = await create_group(http, alice, bob)
            async with open_client(node.ws_url, alice.access_token) as a:
                m = await send(a, room, "popular")
                for emoji in ["👍", "❤️", "😂", "🎉"]:
                    await react(a, room, m.seq, emoji)
            async with open_client(
                node.ws_url, bob.access_token, cursors={room: 1}, evs={room: 0}
            ) as b:
                replayed, done = await chat_pushes_until_done(b)
    assert len(replayed) == 1 and isinstance(replayed[0], frames.ResumeGap)
    gap = replayed[0].d
    assert (gap.room, gap.changes, gap.last_ev, gap.last_seq) == (room, True, 4, 1)
    assert done.evs[room] == 4


async def test_live_changes_during_the_replay_arrive_once_after_it(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, room, "hi")
        for emoji in ["👍", "❤️", "😂"]:
            await react(a, room, m.seq, emoji)
        async with open_client(
            node.ws_url, bob.access_token, cursors={room: 1}, evs={room: 0}
        ) as b:
            await react(a, room, m.seq, "🎉")
            evs: list[int] = []
            while len(evs) < 4:
                frame = await b.next_push(timeout=5)
                if isinstance(frame, frames.MsgReaction):
                    evs.append(frame.d.ev)
    assert evs == [1, 2, 3, 4]


async def test_a_resume_from_ev_zero_replays_every_ev_once_in_order_whatever_was_erased(
    node: Node, http: httpx.AsyncClient
):
    """Issue 12, item 10: edits later deleted for everyone must not replay as a hole
    (their ev missing) plus a duplicate (the delete's ev twice). Every change kind."""
    alice, bob, carol = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob, carol)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, carol.access_token) as c:
            one = await send(a, room, "one")
            two = await send(a, room, "two")
            live = [
                (await edit(a, room, one.seq, "secret one")).ev,
                (await react(c, room, one.seq, "👍")).ev,
                (await delete(a, room, one.seq, everyone=True)).ev,
                (await receipt(c, room, read=two.seq)).ev,
                (await edit(a, room, two.seq, "secret two")).ev,
                (await edit(a, room, two.seq, "secret two, again")).ev,
                (await react(c, room, two.seq, "🎉")).ev,
                (await react(c, room, two.seq, "🎉", off=True)).ev,
                (await delete(a, room, two.seq, everyone=True)).ev,
                (await receipt(a, room, read=two.seq)).ev,
            ]
    assert live == list(range(1, 11))
    async with open_client(node.ws_url, bob.access_token, cursors={room: 0}, evs={room: 0}) as b:
        replayed, done = await chat_pushes_until_done(b)
    changes = [f for f in replayed if not isinstance(f, frames.MsgNew)]
    assert [f.d.ev for f in changes] == live
    assert done.evs[room] == 10
    kinds = [type(f).__name__ for f in changes]
    assert kinds == [
        "MsgDeleted",  # the edit of "one", erased by its delete: same ev, no text
        "MsgReaction",
        "MsgDeleted",
        "ReceiptUpdate",
        "MsgDeleted",  # both edits of "two", erased
        "MsgDeleted",
        "MsgReaction",
        "MsgReaction",
        "MsgDeleted",
        "ReceiptUpdate",
    ]
    assert all("secret" not in repr(f) for f in replayed)
    # A resume from the middle gets exactly the rest.
    async with open_client(node.ws_url, bob.access_token, cursors={room: 2}, evs={room: 4}) as b:
        replayed, done = await chat_pushes_until_done(b)
    assert [f.d.ev for f in replayed] == [5, 6, 7, 8, 9, 10]
