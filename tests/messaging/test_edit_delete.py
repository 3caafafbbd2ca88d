"""Editing and deleting: who may, what everyone sees, what storage keeps."""

from __future__ import annotations

import httpx
import pytest

from protocol import frames
from protocol.client import ServerError, open_client
from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from storage.messages_rich import rich_store
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, login, register
from tests.messaging.helpers import chat_pushes_until_done, delete, edit, next_of, send


async def test_the_sender_edits_and_every_member_sees_the_new_text(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            await chat_pushes_until_done(b)
            m = await send(a, room, "helo")
            await next_of(b, frames.MsgNew)
            ok = await edit(a, room, m.seq, "hello")
            assert ok.ev == 1
            pushed = await next_of(b, frames.MsgEdited)
            assert (pushed.d.seq, pushed.d.text, pushed.d.ev, pushed.d.by) == (
                m.seq,
                "hello",
                1,
                alice.id,
            )
    stored = await rich_store(node.store).message_at(room, m.seq)
    assert stored is not None and stored.text == "hello" and stored.edited_at == pushed.d.at
    r = await http.get(f"/rooms/{room}/history", headers=auth(bob))
    assert r.json()["messages"][0]["edited"] == pushed.d.at


async def test_editing_someone_elses_or_a_deleted_message_is_refused_and_changes_nothing(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, eve = await register(http), await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            m = await send(a, room, "original")
            with pytest.raises(ServerError) as refused:
                await edit(b, room, m.seq, "hijacked")
            assert refused.value.code == "forbidden"
            with pytest.raises(ServerError) as refused:
                await edit(a, room, 99, "nothing there")
            assert refused.value.code == "not_found"
            with pytest.raises(ServerError) as refused:
                await edit(a, room, m.seq, "   ")
            assert refused.value.code == "invalid"
            await delete(a, room, m.seq, everyone=True)
            with pytest.raises(ServerError) as refused:
                await edit(a, room, m.seq, "back from the dead")
            assert refused.value.code == "conflict"
        async with open_client(node.ws_url, eve.access_token) as e:
            with pytest.raises(ServerError) as refused:
                await edit(e, room, m.seq, "outsider")
            assert refused.value.code == "not_member"
    stored = await rich_store(node.store).message_at(room, m.seq)
    assert stored is not None and stored.text == "" and stored.edited_at is None


async def test_delete_for_everyone_leaves_a_tombstone_and_erases_every_copy_of_the_content(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            await chat_pushes_until_done(b)
            m = await send(a, room, "secret one")
            await edit(a, room, m.seq, "secret two")
            reply = await send(b, room, "what secret?", reply=m.seq)
            assert reply.reply is not None and reply.reply.text == "secret two"
            ok = await delete(a, room, m.seq, everyone=True)
            await next_of(b, frames.MsgNew)
            await next_of(b, frames.MsgEdited)
            gone = await next_of(b, frames.MsgDeleted)
            assert (gone.d.seq, gone.d.ev, gone.d.me) == (m.seq, ok.ev, False)
    rich = rich_store(node.store)
    stored = await rich.message_at(room, m.seq)
    assert stored is not None and stored.text == "" and stored.meta is None
    assert stored.deleted_at is not None
    quoting = await rich.message_at(room, reply.seq)
    assert quoting is not None and "secret" not in (quoting.meta or "")
    events = await rich.events_after(room, 0, 100)
    assert all(b"secret" not in e.frame for e in events)
    r = await http.get(f"/rooms/{room}/history", headers=auth(bob))
    tomb, answer = r.json()["messages"]
    assert tomb["deleted"] is True and tomb["text"] == ""
    assert answer["reply"] == {"seq": m.seq, "sender": alice.id, "deleted": True}


async def test_a_group_admin_may_delete_anyones_message_a_member_may_not(
    node: Node, http: httpx.AsyncClient
):
    owner, bob, carol = await register(http), await register(http), await register(http)
    room = await create_group(http, owner, bob, carol)
    async with open_client(node.ws_url, owner.access_token) as o:
        async with open_client(node.ws_url, bob.access_token) as b:
            async with open_client(node.ws_url, carol.access_token) as c:
                m = await send(b, room, "rude")
                with pytest.raises(ServerError) as refused:
                    await delete(c, room, m.seq, everyone=True)
                assert refused.value.code == "forbidden"
                assert (await delete(o, room, m.seq, everyone=True)).ev == 1
                with pytest.raises(ServerError) as refused:
                    await delete(o, room, m.seq, everyone=True)
                assert refused.value.code == "conflict"


async def test_delete_for_everyone_is_refused_after_the_window(node_factory: NodeFactory):
    clock = ManualClock()
    async with node_factory(clock=clock, message_delete_window_seconds=1) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice, bob = await register(http), await register(http)
            room = await create_group(http, alice, bob)
            async with open_client(node.ws_url, alice.access_token) as a:
                m = await send(a, room, "too late")
                clock.advance(1200)
                with pytest.raises(ServerError) as refused:
                    await delete(a, room, m.seq, everyone=True)
                assert refused.value.code == "forbidden"
                stored = await rich_store(node.store).message_at(room, m.seq)
                assert stored is not None and stored.text == "too late"


async def test_delete_for_me_hides_it_on_my_devices_only(node: Node, http: httpx.AsyncClient):
    alice, bob = await register(http, device="phone"), await register(http)
    room = await create_group(http, alice, bob)
    laptop_token = await login(http, alice, "laptop")
    async with open_client(node.ws_url, alice.access_token, device="phone") as phone:
        async with open_client(node.ws_url, laptop_token, device="laptop") as laptop:
            await chat_pushes_until_done(laptop)
            m = await send(phone, room, "embarrassing")
            await next_of(laptop, frames.MsgNew)
            ok = await delete(phone, room, m.seq, everyone=False)
            assert ok.ev is None
            hidden = await next_of(laptop, frames.MsgDeleted)
            assert (hidden.d.seq, hidden.d.me, hidden.d.ev) == (m.seq, True, 0)
    mine = await http.get(f"/rooms/{room}/history", headers=auth(alice))
    theirs = await http.get(f"/rooms/{room}/history", headers=auth(bob))
    assert mine.json()["messages"] == []
    assert [x["text"] for x in theirs.json()["messages"]] == ["embarrassing"]
