"""Admins (issue 15, part 2): the role from the CLI only, announcements to
everyone or one plan, live statistics over REST and as a subscription."""

from __future__ import annotations

import httpx
import pytest
import trio

from protocol.client import Client, ServerError, open_client
from protocol.frames import Ok
from protocol.frames_notify import AdminStats, AdminStatsSub, AdminStatsUnsub, NotifyNew
from realtime_server.admin_stats import LiveStats
from realtime_server.node import Node
from tests.conftest import NodeFactory
from tests.e2e.helpers import Account, auth, create_group, register
from tests.notifications.helpers import make_admin, next_of, no_push_of, notifications, run_cli


async def _announce(http: httpx.AsyncClient, who: Account, **body: object) -> httpx.Response:
    return await http.post("/admin/announcements", json=body, headers=auth(who))


async def test_the_cli_grants_and_revokes_the_admin_role_and_refuses_unknown_emails(
    node: Node, http: httpx.AsyncClient, database_url: str
) -> None:
    ada = await register(http, "ada")
    email = "ADA@example.test"
    assert (await http.get("/admin/stats", headers=auth(ada))).status_code == 403

    code, out, _ = await run_cli(database_url, "admin", "grant", email)
    assert (code, out) == (0, f"{email} ({ada.id}) is now an admin\n")
    code, out, _ = await run_cli(database_url, "admin", "grant", email)
    assert (code, "already an admin" in out) == (0, True)
    # Takes effect at once, with the token issued before the grant.
    assert (await http.get("/admin/stats", headers=auth(ada))).status_code == 200

    code, out, _ = await run_cli(database_url, "admin", "revoke", email)
    assert (code, "is no longer an admin" in out) == (0, True)
    code, out, _ = await run_cli(database_url, "admin", "revoke", email)
    assert (code, "was not an admin" in out) == (0, True)
    assert (await http.get("/admin/stats", headers=auth(ada))).status_code == 403

    code, _, err = await run_cli(database_url, "admin", "grant", "nobody@example.test")
    assert (code, "no user has the email" in err) == (1, True)
    code, _, err = await run_cli(database_url, "admin", "promote", email)
    assert (code, "invalid choice" in err) == (2, True)  # only grant and revoke


async def test_an_announcement_reaches_every_online_session_at_once_and_offline_users_later(
    node: Node, http: httpx.AsyncClient, database_url: str
) -> None:
    boss, bob, cy = await register(http), await register(http), await register(http)
    await make_admin(database_url, boss)
    async with (
        open_client(node.ws_url, boss.access_token) as b0,
        open_client(node.ws_url, bob.access_token, device="phone") as b1,
        open_client(node.ws_url, bob.access_token, device="laptop") as b2,
    ):
        r = await _announce(http, boss, title="Maintenance", text="Down at 02:00 UTC for 5 min.")
        assert r.status_code == 201, r.text
        sent = r.json()
        assert (sent["recipients"], sent["online_sessions"], sent["plan"]) == (3, 3, None)
        for session in (b0, b1, b2):
            n = (await next_of(session, NotifyNew)).d
            assert (n.id, n.kind, n.title, n.body) == (
                sent["id"],
                "announcement",
                "Maintenance",
                "Down at 02:00 UTC for 5 min.",
            )
    later = await notifications(http, cy)  # cy was offline
    assert ([x["id"] for x in later["notifications"]], later["unread"]) == ([sent["id"]], 1)
    # The same id is each user's own: bob marking it read leaves cy's unread.
    assert (await http.post(f"/me/notifications/{sent['id']}/read", headers=auth(bob))).json()[
        "unread"
    ] == 0
    assert (await notifications(http, cy))["unread"] == 1


async def test_an_announcement_to_one_plan_reaches_only_that_plans_users(
    node: Node, http: httpx.AsyncClient, database_url: str
) -> None:
    boss, bob = await register(http), await register(http)
    await make_admin(database_url, boss)
    async with open_client(node.ws_url, bob.access_token) as b:
        r = await _announce(http, boss, title="For premium", text="Thanks!", plan="premium")
        assert (r.status_code, r.json()["recipients"], r.json()["online_sessions"]) == (201, 0, 0)
        await no_push_of(b, NotifyNew, wait=0.1)
        r = await _announce(http, boss, title="Try premium", text="It is good.", plan="free")
        assert (r.status_code, r.json()["recipients"], r.json()["online_sessions"]) == (201, 2, 1)
        n = (await next_of(b, NotifyNew)).d
        assert (n.title, n.ref.plan) == ("Try premium", "free")


async def test_announcements_refuse_non_admins_oversize_text_blank_text_and_unknown_plans(
    node: Node, http: httpx.AsyncClient, database_url: str
) -> None:
    boss, bob = await register(http), await register(http)
    await make_admin(database_url, boss)
    r = await _announce(http, bob, title="Hi", text="I am not an admin")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    limit = node.settings.announcement_max_chars
    r = await _announce(http, boss, title="Long", text="x" * (limit + 1))
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["field"]) == (400, "invalid", "text")
    assert f"at most {limit}" in error["message"]
    r = await _announce(http, boss, title="Blank", text="   ")
    assert (r.status_code, r.json()["error"]["field"]) == (400, "text")
    r = await _announce(http, boss, title="Gold", text="Hi", plan="gold")
    error = r.json()["error"]
    assert (r.status_code, error["field"]) == (400, "plan")
    assert "free, basic, premium" in error["message"]
    r = await _announce(http, boss, text="no title")
    assert r.status_code == 400
    r = await http.post("/admin/announcements", json={"title": "x", "text": "y"})
    assert r.status_code == 401
    for who in (boss, bob):  # nothing refused was stored
        assert (await notifications(http, who))["notifications"] == []


async def test_stats_over_rest_count_connections_users_rooms_and_messages(
    node: Node, http: httpx.AsyncClient, database_url: str
) -> None:
    boss, bob = await register(http), await register(http)
    await make_admin(database_url, boss)
    room = await create_group(http, boss, bob)
    async with (
        open_client(node.ws_url, boss.access_token) as a,
        open_client(node.ws_url, bob.access_token, device="phone"),
        open_client(node.ws_url, bob.access_token, device="laptop"),
    ):
        for i in range(5):
            await a.send_message(room, f"hello {i}")
        await trio.sleep(node.settings.admin_stats_interval * 2)  # one full tick after the sends
        r = await http.get("/admin/stats", headers=auth(boss))
        assert r.status_code == 200, r.text
        stats = r.json()
        assert (stats["connections"], stats["sessions"], stats["online_users"]) == (3, 3, 2)
        assert stats["rooms_live"] >= 1
        assert (stats["ai_generations"], stats["calls"]) == (0, 0)
        # The window the rates cover: at least the configured interval (a
        # loaded node's tick comes late, and the window says by how much).
        assert stats["interval"] >= node.settings.admin_stats_interval
    r = await http.get("/admin/stats", headers=auth(bob))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")


async def test_messages_per_second_and_rooms_with_traffic_cover_the_last_interval(
    node_factory: NodeFactory, database_url: str
) -> None:
    # A longer interval here, so the sends surely fall inside one window.
    async with node_factory(admin_stats_interval=0.5) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            boss, bob = await register(http), await register(http)
            await make_admin(database_url, boss)
            room = await create_group(http, boss, bob)
            async with open_client(node.ws_url, boss.access_token) as a:
                assert isinstance(await a.request(AdminStatsSub(id=1)), Ok)
                await next_of(a, AdminStats)  # the one at once
                for i in range(10):
                    await a.send_message(room, f"hello {i}")
                # A tick may come before the sends end, or in their middle:
                # read past quiet ticks, then the busy ones, to a quiet one.
                tick = (await next_of(a, AdminStats)).d
                while not tick.rooms_with_traffic:
                    tick = (await next_of(a, AdminStats)).d
                busy = [tick]
                while (tick := (await next_of(a, AdminStats)).d).rooms_with_traffic:
                    busy.append(tick)
                ticks, quiet = [*busy, tick], tick
                assert busy and all(t.rooms_with_traffic == 1 for t in busy)
                sent = sum(t.messages_per_second * t.interval for t in busy)
                assert 9.5 <= sent <= 10.5, ticks  # 10 messages: rate x real window, rounded
                assert (quiet.rooms_with_traffic, quiet.messages_per_second) == (0, 0)


async def test_the_stats_subscription_pushes_until_unsubscribed_closed_or_revoked(
    node: Node, http: httpx.AsyncClient, database_url: str
) -> None:
    boss, bob = await register(http, "boss"), await register(http)
    await make_admin(database_url, boss)
    stats: LiveStats = node.gateway.services.stats
    async with open_client(node.ws_url, bob.access_token) as b:
        with pytest.raises(ServerError) as refused:
            await b.request(AdminStatsSub(id=1))
        assert refused.value.code == "forbidden"
        await no_push_of(b, AdminStats, wait=0.25)

    async with open_client(node.ws_url, boss.access_token) as a:
        await a.request(AdminStatsSub(id=1))
        first = (await next_of(a, AdminStats)).d  # at once
        assert (first.connections, first.online_users) == (1, 1)
        second = (await next_of(a, AdminStats, timeout=1)).d  # then every interval
        assert second.ts >= first.ts
        await a.request(AdminStatsUnsub(id=2))
        assert stats.subscribers == 0
        _drain(a)  # a push queued before the ok
        await no_push_of(a, AdminStats, wait=0.3)

        await a.request(AdminStatsSub(id=3))
        await next_of(a, AdminStats)
        code, _, _ = await run_cli(database_url, "admin", "revoke", "boss@example.test")
        assert code == 0
        await _until_no_subscribers(stats)  # the next tick drops the revoked admin
        _drain(a)
        await no_push_of(a, AdminStats, wait=0.3)

    async with open_client(node.ws_url, boss.access_token) as a:
        await run_cli(database_url, "admin", "grant", "boss@example.test")
        await a.request(AdminStatsSub(id=1))
        assert stats.subscribers == 1
    # Closed: the next tick forgets the session.
    await _until_no_subscribers(stats)


def _drain(client: Client) -> None:
    try:
        while True:
            client.next_push_nowait()
    except trio.WouldBlock:
        pass


async def _until_no_subscribers(stats: LiveStats) -> None:
    """Ticks come late on a loaded host: wait for the one that drops them (5 s at most)."""
    with trio.fail_after(5):
        while stats.subscribers:  # noqa: ASYNC110 - the ticker signals nothing to wait on
            await trio.sleep(stats.interval / 4)
