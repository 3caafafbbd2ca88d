"""Disappearing messages (issue 18, item 4) on a node whose expiry clock the test
moves by hand (``ManualClock``): a 24-hour timer without a 24-hour wait.

Expiry is delete-for-everyone: the same erasing, an ``ev`` per message, live
pushes and resume; and a node started after messages expired sweeps them
before it serves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import msgspec
import pytest

from protocol import frames
from protocol.client import Client, ServerError, open_client
from protocol.frames_chat import (
    Disappear,
    DisappearData,
    DisappearTtl,
    MsgDeleted,
    MsgPinned,
    Pin,
    PinData,
    RoomDisappearing,
)
from realtime_server.base.clock import ManualClock
from realtime_server.node import Node, open_node
from storage.base import now_ms
from tests import conftest
from tests.e2e.helpers import auth, create_group, register
from tests.messaging.helpers import chat_pushes_until_done, next_of, send

DAY = 24 * 3600 * 1000
MINUTE = 60 * 1000

ClockedNode = Callable[[ManualClock], AbstractAsyncContextManager[Node]]


@pytest.fixture
def clocked_node(database_url: str, tmp_path: Path, _real_io_deadline: None) -> ClockedNode:
    @asynccontextmanager
    async def factory(clock: ManualClock) -> AsyncIterator[Node]:
        # Tokens count on the node's clock too: they outlive the days it is moved.
        settings = conftest.test_settings(database_url, tmp_path / "data", access_token_ttl=10**9)
        async with open_node(settings, clock=clock) as node:
            yield node

    return factory


async def disappear(client: Client, room: str, ttl: DisappearTtl) -> frames.Ok:
    reply = await client.request(Disappear(id=0, d=DisappearData(room=room, ttl=ttl)))
    assert isinstance(reply, frames.Ok), reply
    return reply


async def history(http: httpx.AsyncClient, room: str, token: str) -> list[dict[str, object]]:
    r = await http.get(f"/rooms/{room}/history", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    messages: list[dict[str, object]] = r.json()["messages"]
    return messages


async def test_an_admin_turns_it_on_everyone_is_told_and_new_messages_carry_their_expiry(
    clocked_node: ClockedNode,
) -> None:
    clock = ManualClock()
    async with (
        clocked_node(clock) as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        alice, bob = await register(http), await register(http)
        room = await create_group(http, alice, bob)
        async with (
            open_client(node.ws_url, alice.access_token) as a,
            open_client(node.ws_url, bob.access_token) as b,
        ):
            before = await send(a, room, "said before")
            await next_of(b, frames.MsgNew)
            with pytest.raises(ServerError) as refused:
                await b.request(Disappear(id=0, d=DisappearData(room=room, ttl="24h")))
            assert refused.value.code == "forbidden"
            # An unknown duration, sent by a client that does not check it.
            raw = {"t": "room.disappear", "id": 77, "d": {"room": room, "ttl": "1h"}}
            await a.send_raw(msgspec.msgpack.encode(raw))
            err = await next_of(a, frames.Err)
            assert (err.code, err.re) == ("invalid", 77)
            ok = await disappear(a, room, "24h")
            changed = await next_of(b, RoomDisappearing)
            assert (changed.d.ev, changed.d.ttl, changed.d.by) == (ok.ev, "24h", alice.id)
            notice = await next_of(b, frames.MsgNew)
            assert notice.d.kind == "system" and notice.d.expires_at is None
            assert json.loads(notice.d.text) == {"ev": "disappearing", "by": alice.id, "ttl": "24h"}
            # The same timer again: nothing changes, nothing is announced.
            assert (await disappear(a, room, "24h")).ev is None
            sent_at = clock.now_ms()  # message times are the node's clock
            m = await send(a, room, "gone tomorrow")
            assert m.expires_at is not None and m.expires_at == m.ts + DAY
            assert sent_at <= m.ts
            live = await next_of(b, frames.MsgNew)
            assert live.d.expires_at == m.expires_at
        stored = {x["seq"]: x for x in await history(http, room, bob.access_token)}
        assert stored[m.seq]["expires_at"] == m.expires_at
        assert "expires_at" not in stored[before.seq]
        r = await http.get(f"/rooms/{room}/pins", headers=auth(bob))
        assert r.json()["disappearing"] == "24h"
        # Over REST: an unknown duration is refused; a plain member is refused.
        r = await http.put(f"/rooms/{room}/disappearing", json={"ttl": "1h"}, headers=auth(alice))
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid")
        r = await http.put(f"/rooms/{room}/disappearing", json={"ttl": "off"}, headers=auth(bob))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        r = await http.put(f"/rooms/{room}/disappearing", json={"ttl": "7d"}, headers=auth(alice))
        assert r.status_code == 200 and r.json()["ev"] > ok.ev


async def test_an_expired_message_is_erased_for_everyone_and_peers_get_the_deletion(
    clocked_node: ClockedNode,
) -> None:
    clock = ManualClock()
    async with clocked_node(clock) as node, httpx.AsyncClient(base_url=node.http_url) as http:
        alice, bob = await register(http), await register(http)
        room = await create_group(http, alice, bob)
        week_room = await create_group(http, alice, bob)
        async with (
            open_client(node.ws_url, alice.access_token) as a,
            open_client(node.ws_url, bob.access_token) as b,
        ):
            # A week-long message first: the sweeper sleeps towards it, and must
            # wake for the day-long one stored after it.
            await disappear(a, week_room, "7d")
            week = await send(a, week_room, "for a week")
            await disappear(a, room, "24h")
            secret = await send(a, room, "the secret")
            # A longer timer from now on: the secret keeps its day, the reply gets a week.
            await disappear(a, room, "7d")
            reply = await send(b, room, "noted", reply=secret.seq)
            assert reply.reply is not None and reply.reply.text == "the secret"
            assert secret.expires_at is not None and reply.expires_at is not None
            assert reply.expires_at - secret.expires_at >= 6 * DAY
            await a.request(Pin(id=0, d=PinData(room=room, seq=secret.seq)))
            while not isinstance(
                (f := await b.next_push(timeout=5)), MsgPinned
            ):  # skip what came before the pin
                pass
            clock.advance(DAY - 10 * MINUTE)
            assert node.expiry is not None
            assert await node.expiry.sweep() == 0  # not yet
            clock.advance(20 * MINUTE)
            deleted = await next_of(b, MsgDeleted)
            assert (deleted.d.seq, deleted.d.by) == (secret.seq, "system")
            assert deleted.d.ev == f.d.ev + 1
        by_seq = {x["seq"]: x for x in await history(http, room, bob.access_token)}
        assert by_seq[secret.seq]["deleted"] is True and by_seq[secret.seq]["text"] == ""
        # The reply stays, its preview of the secret erased as delete-for-everyone does.
        assert by_seq[reply.seq]["text"] == "noted"
        assert by_seq[reply.seq]["reply"] == {
            "seq": secret.seq,
            "sender": alice.id,
            "deleted": True,
        }
        assert all("secret" not in json.dumps(x) for x in by_seq.values())
        r = await http.get(f"/rooms/{room}/pins", headers=auth(bob))
        assert r.json()["pins"] == []
        week_left = {x["seq"]: x for x in await history(http, week_room, bob.access_token)}
        assert week_left[week.seq]["text"] == "for a week"


async def test_a_node_started_after_expiry_sweeps_on_start_up_and_resume_brings_the_deletion(
    clocked_node: ClockedNode,
) -> None:
    async with (
        clocked_node(ManualClock()) as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        alice, bob = await register(http), await register(http)
        room = await create_group(http, alice, bob)
        async with open_client(node.ws_url, alice.access_token) as a:
            await disappear(a, room, "24h")
            doomed = await send(a, room, "see you")
        async with open_client(node.ws_url, bob.access_token, cursors={room: 0}) as b:
            _, done = await chat_pushes_until_done(b)
            cursor, ev_cursor = done.rooms[room], done.evs[room]
    # The server was down while the message expired: the next one starts later.
    async with (
        clocked_node(ManualClock(now_ms() + DAY + MINUTE)) as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        # Swept before the node served anything: no waiting here.
        by_seq = {x["seq"]: x for x in await history(http, room, bob.access_token)}
        assert by_seq[doomed.seq]["deleted"] is True and by_seq[doomed.seq]["text"] == ""
        async with open_client(
            node.ws_url, bob.access_token, cursors={room: cursor}, evs={room: ev_cursor}
        ) as b:
            replayed, done = await chat_pushes_until_done(b)
        assert [(type(f), f.d.seq, f.d.by, f.d.ev) for f in replayed] == [
            (MsgDeleted, doomed.seq, "system", ev_cursor + 1)
        ]
        assert done.evs[room] == ev_cursor + 1
