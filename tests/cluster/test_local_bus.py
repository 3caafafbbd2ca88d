"""The in-process bus: what the cluster tests stand on behaves like the Redis one."""

from __future__ import annotations

import pytest
import trio

from realtime_server.cluster.bus import BusUnavailable, LocalBusNetwork
from tests.cluster.conftest import Started


async def test_a_node_hears_what_others_publish_on_its_channels_never_its_own() -> None:
    network = LocalBusNetwork()
    a, b = network.attach("a"), network.attach("b")
    heard_a: list[bytes] = []
    heard_b: list[bytes] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(a.serve)
        await nursery.start(b.serve)
        a.subscribe("x", heard_a.append)
        b.subscribe("x", heard_b.append)
        a.publish("x", b"1")
        b.publish("x", b"2")
        b.publish("y", b"nobody listens")
        await trio.testing.wait_all_tasks_blocked()
        assert heard_a == [b"2"] and heard_b == [b"1"]
        nursery.cancel_scope.cancel()


async def test_a_channel_is_heard_until_its_last_holder_lets_go() -> None:
    network = LocalBusNetwork()
    a, b = network.attach("a"), network.attach("b")
    heard: list[bytes] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(a.serve)
        await nursery.start(b.serve)
        a.subscribe("x", heard.append)
        a.subscribe("x", heard.append)
        a.unsubscribe("x", heard.append)
        b.publish("x", b"still")
        await trio.testing.wait_all_tasks_blocked()
        a.unsubscribe("x", heard.append)
        b.publish("x", b"gone")
        await trio.testing.wait_all_tasks_blocked()
        assert heard == [b"still"] and not a.subscribed("x")
        nursery.cancel_scope.cancel()


async def test_publishing_while_down_says_so_and_reconnect_callbacks_run() -> None:
    network = LocalBusNetwork()
    a = network.attach("a")
    reconnected: list[bool] = []
    a.on_reconnect(lambda: reconnected.append(True))
    network.down()
    with pytest.raises(BusUnavailable):
        a.publish("x", b"1")
    network.up()
    assert reconnected == [True] and a.up


async def test_two_nodes_share_one_database_each_on_its_own_port(two_nodes: Started) -> None:
    _, (a, b) = two_nodes
    assert a.port != b.port
    assert a.cluster is not None and b.cluster is not None
    assert a.cluster.node_key != b.cluster.node_key
