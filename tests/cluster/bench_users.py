"""Cost of the per-user cluster paths, in one process on the in-process bus.

    python -m tests.cluster.bench_users [users]

1. A connect storm: ``users`` users arrive on node A in one burst; how many
   presence messages A publishes (deltas are batched per scheduler tick) and
   how long until node B's view holds them all.
2. ``UserChannels.send`` per call for a user with no session here: a single
   node (no bus) against a node on the bus (one publish, heard by B).
"""

from __future__ import annotations

import sys
import time

import trio
import trio.testing

from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import LocalBusNetwork
from realtime_server.cluster.presence import ClusterPresence
from realtime_server.cluster.users import UserChannels
from realtime_server.hub import Hub


class _Count:
    def __init__(self) -> None:
        self.online = 0

    def remote_online(self, user_id: str) -> None:
        self.online += 1

    def remote_offline(self, user_id: str, last_seen: int, store: bool) -> None:
        self.online -= 1


async def storm(users: int) -> None:
    network = LocalBusNetwork()
    bus_a, bus_b = network.attach("a"), network.attach("b")
    view_a = ClusterPresence(Cluster(bus_a, "x:"), beacon=60, grace=1)
    view_b = ClusterPresence(Cluster(bus_b, "x:"), beacon=60, grace=1)
    heard = _Count()
    view_b.listener = heard
    published = 0
    publish = bus_a.publish

    def counting(channel: str, payload: bytes) -> None:
        nonlocal published
        published += 1
        publish(channel, payload)

    bus_a.publish = counting  # type: ignore[method-assign]  # count what A sends
    async with trio.open_nursery() as nursery:
        for bus in (bus_a, bus_b):
            await nursery.start(bus.serve)
        await nursery.start(view_a.serve)
        await nursery.start(view_b.serve)
        await trio.testing.wait_all_tasks_blocked()
        published = 0
        started = time.perf_counter()
        for i in range(users):
            view_a.up(f"user{i}")
            if i % 100 == 99:
                await trio.lowlevel.checkpoint()  # sessions arrive over many ticks
        while heard.online < users:  # noqa: ASYNC110 - measuring the other task
            await trio.lowlevel.checkpoint()
        took = time.perf_counter() - started
        print(
            f"storm: {users} users up on A -> in B's view in {took * 1000:.1f} ms "
            f"({users / took:,.0f} users/s), {published} presence publishes "
            f"({users / max(published, 1):.0f} users per publish)"
        )
        nursery.cancel_scope.cancel()


async def sends(calls: int) -> None:
    for label, clustered in (("single node", False), ("on the bus", True)):
        network = LocalBusNetwork()
        bus_a, bus_b = network.attach("a"), network.attach("b")
        hub_b = Hub()
        cluster = Cluster(bus_a, "x:") if clustered else None
        users_a = UserChannels(Hub(), cluster)
        UserChannels(hub_b, Cluster(bus_b, "x:"))
        bus_b.subscribe("x:u:bob", lambda payload: None)  # B holds bob's channel
        data = b"\x82" + b"x" * 100
        async with trio.open_nursery() as nursery:
            await nursery.start(bus_b.serve)
            started = time.perf_counter()
            for _ in range(calls):
                users_a.send("bob", data)
            took = time.perf_counter() - started
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        print(f"send, {label}: {took / calls * 1e6:.2f} us per call ({calls} calls)")


async def main(users: int) -> None:
    await storm(users)
    await sends(100_000)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
