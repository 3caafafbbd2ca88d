"""A user's devices, presence and typing across nodes (issue 13, item 3).

Every test puts the sender (or the REST call) on one node and the receiver
on the other: on a single node's logic, nothing would arrive.
"""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from protocol.client import Client, HandshakeRejected, open_client
from protocol.errors import CloseCode
from protocol.frames import Ok
from protocol.frames_chatlist import ChatSettingsChanged
from protocol.frames_notify import NotifyNew, NotifyRead
from protocol.frames_presence import (
    Presence,
    PresenceGet,
    PresenceGetData,
    PresenceList,
    Typing,
    TypingData,
    TypingStart,
    TypingStop,
)
from realtime_server.cluster.presence import (
    Beat,
    Delta,
    Message,
    Snapshot,
    Sync,
    presence_channel,
    user_hash,
)
from realtime_server.cluster.users import PER_USER_MAX
from realtime_server.node import open_node
from storage.base import now_ms
from tests import conftest as base
from tests.cluster.conftest import LocalCluster
from tests.e2e.helpers import Account, auth, create_group, login, register
from tests.notifications.helpers import make_admin
from tests.rich.live import assert_no_push_of, next_of


async def ask(client: Client, *users: Account) -> dict[str, tuple[bool, int | None]]:
    reply = await client.request(
        PresenceGet(id=0, d=PresenceGetData(users=[u.id for u in users], sub=True))
    )
    assert isinstance(reply, PresenceList)
    return {s.user: (s.online, s.last_seen) for s in reply.d.users}


async def session_id_of(http: httpx.AsyncClient, token: str, device: str) -> str:
    r = await http.get("/me/sessions", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return str(next(s["id"] for s in r.json()["sessions"] if s["device"] == device))


async def test_a_users_devices_on_two_nodes_both_get_notifications_and_chat_list_pushes(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(2) as (_, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob = await register(http), await register(http)
        laptop = await login(http, bob, "laptop")
        async with (
            open_client(a.ws_url, bob.access_token) as phone,
            open_client(b.ws_url, laptop, device="laptop") as remote,
        ):
            # A notification made on node A (REST there) reaches the device on B.
            room = await create_group(http, ada, bob, name="Climbing")
            got = [(await next_of(device, NotifyNew)).d for device in (phone, remote)]
            assert got[0] == got[1] and (got[0].kind, got[0].ref.room) == ("group.added", room)
            # A chat-list change made through node B reaches the device on A.
            async with httpx.AsyncClient(base_url=b.http_url, timeout=10) as http_b:
                r = await http_b.patch(
                    f"/rooms/{room}/settings", json={"mute": "8h"}, headers=auth(bob)
                )
            assert r.status_code == 200, r.text
            for device in (phone, remote):
                changed = (await next_of(device, ChatSettingsChanged)).d
                assert changed.room == room and changed.muted is True
            # Marking read on A: the unread count reaches B as well.
            r = await http.post("/me/notifications/read-all", headers=auth(bob))
            assert r.status_code == 200, r.text
            for device in (phone, remote):
                read = (await next_of(device, NotifyRead)).d
                assert (read.all, read.unread) == (True, 0)


async def test_one_frame_to_many_users_or_everyone_reaches_the_other_node_in_one_publish(
    local_cluster: LocalCluster, cluster_url: str
) -> None:
    async with (
        local_cluster(2) as (_, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        boss = await register(http)
        added = [await register(http) for _ in range(PER_USER_MAX + 1)]
        await make_admin(cluster_url, boss)
        async with (
            open_client(b.ws_url, added[0].access_token) as first,
            open_client(b.ws_url, added[-1].access_token) as last,
        ):
            # More recipients than PER_USER_MAX: one publish on ``users``.
            room = await create_group(http, boss, *added, name="Everyone")
            for device in (first, last):
                n = (await next_of(device, NotifyNew)).d
                assert (n.kind, n.ref.room) == ("group.added", room)
            r = await http.post(
                "/admin/announcements",
                json={"title": "Maintenance", "text": "At 02:00 UTC."},
                headers=auth(boss),
            )
            assert r.status_code == 201, r.text
            # Counted: sessions on the node that took the request.
            assert r.json()["online_sessions"] == 0
            for device in (first, last):
                n = (await next_of(device, NotifyNew)).d
                assert (n.kind, n.title) == ("announcement", "Maintenance")


async def test_signing_a_device_out_on_one_node_closes_its_socket_on_the_other_with_4104(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(2) as (_, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada = await register(http)  # device "phone"
        laptop = await login(http, ada, "laptop")
        phone_id = await session_id_of(http, laptop, "phone")
        async with (
            open_client(b.ws_url, ada.access_token) as phone,
            open_client(a.ws_url, laptop, device="laptop") as mine,
        ):
            r = await http.delete(
                f"/me/sessions/{phone_id}", headers={"Authorization": f"Bearer {laptop}"}
            )
            assert r.status_code == 204, r.text
            with trio.fail_after(2):
                closed = await phone.wait_closed()
            assert closed.code == CloseCode.SESSION_REVOKED
            assert await mine.ping() > 0  # the device that signed the other out stays
        # Node B refuses the signed-out device's access token from now on, as A does.
        for node in (b, a):
            with pytest.raises(HandshakeRejected) as rejected:
                async with open_client(node.ws_url, ada.access_token):
                    pass
            assert rejected.value.code == CloseCode.UNAUTHORIZED


async def test_a_sign_out_while_the_bus_is_down_closes_the_remote_socket_when_it_is_back(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(2) as (network, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob = await register(http), await register(http)
        room = await create_group(http, ada, bob)
        laptop = await login(http, ada, "laptop")
        phone_id = await session_id_of(http, laptop, "phone")
        async with (
            open_client(b.ws_url, ada.access_token) as phone,
            open_client(a.ws_url, laptop, device="laptop") as mine,
        ):
            network.down()
            # What the user does still works on this node: the sign-out is
            # stored, and a chat-list push reaches the device here.
            r = await http.delete(
                f"/me/sessions/{phone_id}", headers={"Authorization": f"Bearer {laptop}"}
            )
            assert r.status_code == 204, r.text
            r = await http.patch(
                f"/rooms/{room}/settings",
                json={"pinned": True},
                headers={"Authorization": f"Bearer {laptop}"},
            )
            assert r.status_code == 200, r.text
            assert (await next_of(mine, ChatSettingsChanged)).d.room == room
            assert await phone.ping() > 0  # node B was not told yet
            assert a.users is not None and a.users.unpublished["close"] == 1
            network.up()
            with trio.fail_after(2):
                closed = await phone.wait_closed()
            assert closed.code == CloseCode.SESSION_REVOKED


async def test_online_on_either_node_and_offline_once_the_last_device_on_the_last_node_leaves(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(2, presence_grace=0.3, presence_throttle=0.0) as (_, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob = await register(http), await register(http)
        await create_group(http, ada, bob)
        laptop = await login(http, ada, "laptop")
        async with open_client(a.ws_url, bob.access_token) as watcher:  # bob watches on A
            assert await ask(watcher, ada) == {ada.id: (False, None)}
            async with open_client(b.ws_url, laptop, device="laptop"):
                # Ada is only on B: the watcher on A hears it and A answers it.
                got = await next_of(watcher, Presence)
                assert (got.d.user, got.d.online) == (ada.id, True)
                assert await ask(watcher, ada) == {ada.id: (True, None)}
                async with open_client(a.ws_url, ada.access_token):
                    pass  # her phone comes and goes on A
                # A's own grace ends, but she is still on B: no offline, no flapping.
                await assert_no_push_of(watcher, Presence, 0.6)
                assert await ask(watcher, ada) == {ada.id: (True, None)}
                left = now_ms()
            got = await next_of(watcher, Presence, timeout=3)
            assert (got.d.user, got.d.online) == (ada.id, False)
            assert got.d.last_seen is not None and got.d.last_seen >= left
            assert await ask(watcher, ada) == {ada.id: (False, got.d.last_seen)}
            await assert_no_push_of(watcher, Presence, 0.3)  # told once
        # Stored by node B, once, with the same time the watcher on A was told.
        r = await http.get("/me/presence", headers=auth(ada))
        assert r.json()["last_seen"] == got.d.last_seen
        for node in (a, b):
            tracker = node.gateway.services.presence
            assert tracker.broadcasts[ada.id] == 2  # online, then offline


async def test_a_node_that_stops_takes_its_users_offline_after_the_grace_period(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(
            2, presence_grace=0.3, presence_throttle=0.0, presence_beacon_seconds=0.1
        ) as (_, nodes),
        httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http,
    ):
        a, b = nodes
        ada, bob = await register(http), await register(http)
        await create_group(http, ada, bob)
        async with open_client(a.ws_url, bob.access_token) as watcher:
            assert await ask(watcher, ada) == {ada.id: (False, None)}
            async with open_client(b.ws_url, ada.access_token) as client:
                got = await next_of(watcher, Presence)
                assert (got.d.user, got.d.online) == (ada.id, True)
                stopped = now_ms()
                await nodes.stop(1)  # a rolling restart: B says bye
                with trio.fail_after(2):
                    assert (await client.wait_closed()).code == CloseCode.GOING_AWAY
            # Her client had the grace period to come back through A; it did not.
            got = await next_of(watcher, Presence, timeout=3)
            assert (got.d.user, got.d.online) == (ada.id, False)
            assert got.d.last_seen is not None and got.d.last_seen >= stopped
        r = await http.get("/me/presence", headers=auth(ada))
        assert r.json()["last_seen"] == got.d.last_seen


async def test_a_silent_node_does_not_keep_its_users_online_forever(
    local_cluster: LocalCluster,
) -> None:
    beacon = 0.1
    async with (
        local_cluster(
            2, presence_grace=0.2, presence_throttle=0.0, presence_beacon_seconds=beacon
        ) as (network, (a, _b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob = await register(http), await register(http)
        await create_group(http, ada, bob)
        # A third node that announces ada's session, then dies without a word
        # (kill -9: no down, no bye, no beacon).
        ghost = network.attach(f"ghost/{secrets.token_hex(3)}")
        assert a.cluster is not None
        async with open_client(a.ws_url, bob.access_token) as watcher:
            assert await ask(watcher, ada) == {ada.id: (False, None)}
            died = now_ms()
            ghost.publish(
                presence_channel(a.cluster.prefix),
                msgspec.msgpack.encode(Delta(ghost.node_key, [(ada.id, 0, False)])),
            )
            got = await next_of(watcher, Presence)
            assert (got.d.user, got.d.online) == (ada.id, True)
            with trio.fail_after(10 * beacon + 2):
                got = await next_of(watcher, Presence)
            assert (got.d.user, got.d.online) == (ada.id, False)
            assert got.d.last_seen is not None and got.d.last_seen >= died
        with trio.fail_after(2):
            while True:
                r = await http.get("/me/presence", headers=auth(ada))
                if r.json()["last_seen"] is not None:
                    break
                await trio.sleep(0.02)
        assert r.json()["last_seen"] == got.d.last_seen


async def test_presence_missed_while_the_bus_was_down_is_repaired_when_it_is_back(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(2, presence_grace=0.2, presence_throttle=0.0) as (network, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob = await register(http), await register(http)
        await create_group(http, ada, bob)
        async with open_client(a.ws_url, bob.access_token) as watcher:
            assert await ask(watcher, ada) == {ada.id: (False, None)}
            network.down()
            async with open_client(b.ws_url, ada.access_token):
                await assert_no_push_of(watcher, Presence, 0.2)  # B's news is lost
                network.up()  # both sides send their snapshot
                got = await next_of(watcher, Presence)
                assert (got.d.user, got.d.online) == (ada.id, True)
            got = await next_of(watcher, Presence)
            assert (got.d.user, got.d.online) == (ada.id, False)


async def test_a_node_whose_beacon_disagrees_with_the_view_is_asked_for_its_snapshot(
    local_cluster: LocalCluster,
) -> None:
    beacon = 0.1
    async with (
        local_cluster(
            2, presence_grace=0.2, presence_throttle=0.0, presence_beacon_seconds=beacon
        ) as (network, (a, _b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
        trio.open_nursery() as nursery,
    ):
        ada, bob = await register(http), await register(http)
        await create_group(http, ada, bob)
        assert a.cluster is not None
        channel = presence_channel(a.cluster.prefix)
        ghost = network.attach(f"ghost/{secrets.token_hex(3)}")
        heard_send, heard = trio.open_memory_channel[Message](1000)
        ghost.subscribe(
            channel, lambda raw: heard_send.send_nowait(msgspec.msgpack.decode(raw, type=Message))
        )
        await nursery.start(ghost.serve)
        async with open_client(a.ws_url, bob.access_token) as watcher:
            assert await ask(watcher, ada) == {ada.id: (False, None)}
            # Its delta was lost: only its beacon says it holds one user.
            beat = Beat(ghost.node_key, 1, user_hash(ada.id))
            ghost.publish(channel, msgspec.msgpack.encode(beat))
            with trio.fail_after(2):
                async for message in heard:
                    if isinstance(message, Sync) and message.target == ghost.node_key:
                        break
            ghost.publish(channel, msgspec.msgpack.encode(Snapshot(ghost.node_key, [ada.id])))
            got = await next_of(watcher, Presence)
            assert (got.d.user, got.d.online) == (ada.id, True)
            # Then it falls silent: its user leaves with it.
            got = await next_of(watcher, Presence, timeout=10 * beacon + 2)
            assert (got.d.user, got.d.online) == (ada.id, False)
        nursery.cancel_scope.cancel()


async def test_typing_on_one_node_reaches_a_member_on_the_other(
    local_cluster: LocalCluster,
) -> None:
    async with (
        local_cluster(2, presence_throttle=0.0) as (_, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob = await register(http), await register(http)
        room = await create_group(http, ada, bob)
        async with open_client(a.ws_url, ada.access_token) as typist:
            await ask(typist, bob)
            async with open_client(b.ws_url, bob.access_token) as member:
                # Node A has heard that bob is on B (typing goes to the nodes
                # the presence view names).
                assert (await next_of(typist, Presence)).d.online is True
                reply = await typist.request(TypingStart(id=0, d=TypingData(room=room)))
                assert isinstance(reply, Ok)
                got = await next_of(member, Typing)
                assert (got.d.room, got.d.user, got.d.on) == (room, ada.id, True)
                reply = await typist.request(TypingStop(id=0, d=TypingData(room=room)))
                assert isinstance(reply, Ok)
                got = await next_of(member, Typing)
                assert (got.d.room, got.d.user, got.d.on) == (room, ada.id, False)
                await assert_no_push_of(typist, Typing, 0.1)  # the typist hears nothing


async def test_over_redis_a_users_devices_sign_out_and_presence_cross_nodes(
    redis_url: str, cluster_url: str, tmp_path: Path
) -> None:
    """The same paths on the Redis bus, two nodes in this process."""
    prefix = f"test:{secrets.token_hex(4)}:"
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                open_node(
                    base.test_settings(
                        cluster_url,
                        tmp_path / "data",
                        redis_url=redis_url,
                        redis_prefix=prefix,
                        node_id=f"r{i}",
                        presence_throttle=0.0,
                    )
                )
            )
            for i in range(2)
        ]
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=a.http_url, timeout=10))
        ada, bob = await register(http), await register(http)
        room = await create_group(http, ada, bob)
        laptop = await login(http, bob, "laptop")
        laptop_id = await session_id_of(http, laptop, "laptop")
        watcher = await stack.enter_async_context(open_client(a.ws_url, ada.access_token))
        assert await ask(watcher, bob) == {bob.id: (False, None)}
        remote = await stack.enter_async_context(open_client(b.ws_url, laptop, device="laptop"))
        got = await next_of(watcher, Presence)
        assert (got.d.user, got.d.online) == (bob.id, True)
        assert b.cluster is not None
        await b.cluster.bus.wait_subscribed()  # B listens on u:<bob> at Redis
        phone = await stack.enter_async_context(open_client(a.ws_url, bob.access_token))
        r = await http.patch(f"/rooms/{room}/settings", json={"mute": "8h"}, headers=auth(bob))
        assert r.status_code == 200, r.text
        for device in (phone, remote):
            assert (await next_of(device, ChatSettingsChanged)).d.room == room
        r = await http.delete(
            f"/me/sessions/{laptop_id}", headers={"Authorization": f"Bearer {bob.access_token}"}
        )
        assert r.status_code == 204, r.text
        with trio.fail_after(5):
            closed = await remote.wait_closed()
        assert closed.code == CloseCode.SESSION_REVOKED
        assert await phone.ping() > 0


async def test_over_redis_what_another_node_sends_right_after_welcome_arrives(
    redis_url: str, cluster_url: str, tmp_path: Path
) -> None:
    """The gateway waits until Redis has ``u:<user>`` before ``welcome``: a
    push another node makes the moment the client is welcomed is not lost.
    Five times, each a fresh first session of the user on that node."""
    prefix = f"test:{secrets.token_hex(4)}:"
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                open_node(
                    base.test_settings(
                        cluster_url,
                        tmp_path / "data",
                        redis_url=redis_url,
                        redis_prefix=prefix,
                        node_id=f"w{i}",
                    )
                )
            )
            for i in range(2)
        ]
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=a.http_url, timeout=10))
        ada, bob = await register(http), await register(http)
        room = await create_group(http, ada, bob)
        for mute in ("8h", "off", "8h", "off", "8h"):
            async with open_client(b.ws_url, bob.access_token) as laptop:
                r = await http.patch(
                    f"/rooms/{room}/settings", json={"mute": mute}, headers=auth(bob)
                )
                assert r.status_code == 200, r.text
                changed = (await next_of(laptop, ChatSettingsChanged)).d
                assert changed.room == room and changed.muted is (mute != "off")
