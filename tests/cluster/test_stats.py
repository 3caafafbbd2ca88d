"""Admin statistics count the whole deployment (issue 13): asked on one node,
they add every other node's figures, and online users are distinct users
however many nodes their devices are on."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import trio

from protocol.client import open_client
from tests.cluster.conftest import LocalCluster
from tests.e2e.helpers import Account, auth, create_group, register
from tests.notifications.helpers import make_admin


async def stats_when(http: httpx.AsyncClient, admin: Account, **wanted: Any) -> dict[str, Any]:
    """The figures once they say ``wanted`` (each node publishes every interval)."""
    with trio.fail_after(5):
        while True:
            r = await http.get("/admin/stats", headers=auth(admin))
            assert r.status_code == 200, r.text
            stats: dict[str, Any] = r.json()
            if all(stats[k] == v for k, v in wanted.items()):
                return stats
            await trio.sleep(0.05)


async def test_stats_asked_on_one_node_count_every_node_and_users_once(
    local_cluster: LocalCluster, cluster_url: str
) -> None:
    async with (
        local_cluster(2, admin_stats_interval=0.1) as (_, nodes),
        httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http,
    ):
        boss, ada, bob = [await register(http) for _ in range(3)]
        await make_admin(cluster_url, boss)
        room = await create_group(http, ada, bob)
        async with (
            open_client(nodes[0].ws_url, ada.access_token, device="phone") as phone,
            open_client(nodes[1].ws_url, ada.access_token, device="laptop"),
            open_client(nodes[1].ws_url, bob.access_token),
        ):
            # Ada's two devices on two nodes are one user online.
            await stats_when(http, boss, nodes=2, connections=3, sessions=3, online_users=2)

            async def chat() -> None:
                for i in itertools.count():
                    await phone.send_message(room, f"hello {i}")

            async with trio.open_nursery() as talking:  # traffic in every window
                talking.start_soon(chat)
                stats = await stats_when(http, boss, nodes=2, rooms_with_traffic=1)
                talking.cancel_scope.cancel()
            assert stats["messages_per_second"] > 0 and stats["rooms_live"] >= 1
        # A node that stops is no longer counted once its figures are stale.
        await nodes.stop(1)
        await stats_when(http, boss, nodes=1, connections=0, online_users=0)
