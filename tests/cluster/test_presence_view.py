"""The cluster presence view between two nodes' trackers, on the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import LocalBusNetwork
from realtime_server.cluster.presence import ClusterPresence


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []

    def remote_online(self, user_id: str) -> None:
        self.events.append(("online", user_id, False))

    def remote_offline(self, user_id: str, last_seen: int, store: bool) -> None:
        self.events.append(("offline", user_id, store))


Views = tuple[LocalBusNetwork, ClusterPresence, ClusterPresence, Heard]


@asynccontextmanager
async def two_views() -> AsyncIterator[Views]:
    network = LocalBusNetwork()
    bus_a, bus_b = network.attach("a"), network.attach("b")
    view_a = ClusterPresence(Cluster(bus_a, "t:"), beacon=60, grace=1)
    view_b = ClusterPresence(Cluster(bus_b, "t:"), beacon=60, grace=1)
    heard = Heard()
    view_b.listener = heard
    async with trio.open_nursery() as nursery:
        for bus in (bus_a, bus_b):
            await nursery.start(bus.serve)
        await nursery.start(view_a.serve)
        await nursery.start(view_b.serve)
        yield network, view_a, view_b, heard
        nursery.cancel_scope.cancel()


async def test_an_idle_user_is_online_but_not_active_and_the_last_down_stores() -> None:
    async with two_views() as (_, a, b, heard):
        a.up("ada")
        await trio.testing.wait_all_tasks_blocked()
        assert b.elsewhere("ada") and b.active_elsewhere("ada")
        a.idle("ada")  # her last session on A left: the grace runs
        await trio.testing.wait_all_tasks_blocked()
        # Presence still says online; the push dispatcher must push to her phone.
        assert b.elsewhere("ada") and not b.active_elsewhere("ada")
        a.up("ada")  # back within the grace
        await trio.testing.wait_all_tasks_blocked()
        assert b.active_elsewhere("ada")
        assert a.down("ada", 1234) is False  # nobody else holds her: A stores
        await trio.testing.wait_all_tasks_blocked()
        assert not b.elsewhere("ada") and not b.active_elsewhere("ada")
        assert heard.events == [("online", "ada", False), ("offline", "ada", False)]
        assert b.recent_last_seen("ada") == 1234


async def test_two_nodes_leaving_at_once_still_store_last_seen() -> None:
    async with two_views() as (_, a, b, heard):
        a.up("ada")
        b.up("ada")
        await trio.testing.wait_all_tasks_blocked()
        # Both downs leave before either is heard: each sees the other.
        assert a.down("ada", 100) is True
        assert b.down("ada", 200) is True
        await trio.testing.wait_all_tasks_blocked()
        # B hears A's down with "others" set, having sent its own the same way.
        assert heard.events[-1] == ("offline", "ada", True)
        assert b.recent_last_seen("ada") == 200  # the later of the two


async def test_a_snapshot_after_an_outage_brings_the_idle_state_too() -> None:
    async with two_views() as (network, a, b, heard):
        network.down()
        a.up("ada")
        a.up("bob")
        a.idle("bob")
        await trio.testing.wait_all_tasks_blocked()
        assert not b.elsewhere("ada")  # lost with the bus
        network.up()
        await trio.testing.wait_all_tasks_blocked()
        assert b.active_elsewhere("ada")
        assert b.elsewhere("bob") and not b.active_elsewhere("bob")
        assert {e[1] for e in heard.events if e[0] == "online"} == {"ada", "bob"}
