"""The Redis bus against a real Redis: the contract of ``realtime_server.cluster.bus``.

Every test uses its own channel prefix on the shared Redis; the restart test
runs a ``redis-server`` of its own on a free port, to kill and start again.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import coredis
import httpx
import pytest
import trio
import trio.lowlevel

from protocol import codec
from protocol.client import open_client
from protocol.frames_chatlist import ChatSettingsChanged, ChatSettingsData
from realtime_server.cluster.bus import BusUnavailable
from realtime_server.cluster.bus_redis import PING_EVERY, PING_TIMEOUT, RedisBus, redacted
from realtime_server.cluster.users import envelope
from realtime_server.node import open_node
from realtime_server.wsframes import binary_frame
from tests import conftest as base
from tests.e2e.helpers import create_group, register
from tests.rich.live import next_of


@pytest.fixture
def prefix() -> str:
    return f"test:{secrets.token_hex(4)}:"


@asynccontextmanager
async def buses(url: str, *names: str) -> AsyncIterator[list[RedisBus]]:
    """Started buses, one per name, stopped (connections closed) on exit."""
    async with trio.open_nursery() as nursery:
        started = []
        for name in names:
            bus = RedisBus(url, f"{name}/{secrets.token_hex(3)}")
            await nursery.start(bus.serve)
            started.append(bus)
        yield started
        nursery.cancel_scope.cancel()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - state other tasks and Redis change
            await trio.sleep(0.01)


async def subscribers(url: str, channel: str) -> int:
    """How many connections Redis has subscribed to ``channel`` (PUBSUB NUMSUB)."""
    async with coredis.Redis.from_url(url) as client:
        counts = await client.pubsub_numsub(channel)
    return int(counts[channel.encode()])


async def test_two_buses_hear_each_other_and_never_themselves(redis_url: str, prefix: str) -> None:
    heard_a: list[bytes] = []
    heard_b: list[bytes] = []
    async with buses(redis_url, "a", "b") as (a, b):
        assert a.up and b.up
        a.subscribe(prefix + "x", heard_a.append)
        b.subscribe(prefix + "x", heard_b.append)
        await a.wait_subscribed()
        await b.wait_subscribed()
        a.publish(prefix + "x", b"from a")
        b.publish(prefix + "x", b"from b")
        b.publish(prefix + "nobody", b"nobody listens")
        await until(lambda: bool(heard_a and heard_b))
        # Let anything wrongly echoed arrive: a round trip behind what was published.
        b.publish(prefix + "x", b"end b")
        await until(lambda: heard_a[-1] == b"end b")
        assert heard_a == [b"from b", b"end b"]
        assert heard_b == [b"from a"]


async def test_a_thousand_messages_arrive_in_the_order_published(
    redis_url: str, prefix: str
) -> None:
    heard: list[bytes] = []
    async with buses(redis_url, "a", "b") as (a, b):
        b.subscribe(prefix + "r:1", heard.append)
        await b.wait_subscribed()
        sent = [f"m{i}".encode() for i in range(1000)]
        for i, payload in enumerate(sent):
            a.publish(prefix + "r:1", payload)
            if i % 97 == 0:
                await trio.lowlevel.checkpoint()  # several pipelines, not one
        await until(lambda: len(heard) >= 1000)
        assert heard == sent


async def test_a_channel_is_held_until_its_last_holder_lets_go(redis_url: str, prefix: str) -> None:
    heard: list[bytes] = []
    marks: list[bytes] = []
    channel = prefix + "u:1"
    async with buses(redis_url, "a", "b") as (a, b):
        b.subscribe(prefix + "mark", marks.append)
        b.subscribe(channel, heard.append)
        b.subscribe(channel, heard.append)
        await b.wait_subscribed()
        b.unsubscribe(channel, heard.append)
        b.unsubscribe(prefix + "never", heard.append)  # not held: nothing happens
        a.publish(channel, b"still")
        a.publish(prefix + "mark", b"1")
        await until(lambda: marks == [b"1"])
        assert heard == [b"still"] and b.subscribed(channel)

        b.unsubscribe(channel, heard.append)
        assert not b.subscribed(channel)
        # The UNSUBSCRIBE goes out from the bus task: Redis drops the channel.
        with trio.fail_after(5):
            while await subscribers(redis_url, channel):  # noqa: ASYNC110 - Redis's state
                await trio.sleep(0.01)
        a.publish(channel, b"gone")
        a.publish(prefix + "mark", b"2")  # one publisher connection: "gone" went first
        await until(lambda: marks == [b"1", b"2"])
        assert heard == [b"still"]
    # Stopped: its connections are closed, so Redis forgets its subscriptions.
    assert await subscribers(redis_url, prefix + "mark") == 0


async def test_wait_subscribed_returns_once_redis_has_every_subscription(
    redis_url: str, prefix: str
) -> None:
    heard: list[bytes] = []
    channels = [f"{prefix}r:{i}" for i in range(50)]
    async with buses(redis_url, "a", "b") as (a, b):
        for channel in channels:
            b.subscribe(channel, heard.append)
        await b.wait_subscribed()
        for channel in channels:
            assert await subscribers(redis_url, channel) == 1
        # In effect: what is published right after is heard, no sleep needed.
        for channel in channels:
            a.publish(channel, channel.encode())
        await until(lambda: len(heard) == 50)
        assert sorted(heard) == sorted(c.encode() for c in channels)
        # Nothing new to confirm: returns at once.
        with trio.fail_after(1):
            await b.wait_subscribed()


async def test_a_megabyte_payload_arrives_whole(redis_url: str, prefix: str) -> None:
    heard: list[bytes] = []
    big = secrets.token_bytes(1024 * 1024)
    async with buses(redis_url, "a", "b") as (a, b):
        b.subscribe(prefix + "big", heard.append)
        await b.wait_subscribed()
        a.publish(prefix + "big", big)
        a.publish(prefix + "big", b"small after")
        await until(lambda: len(heard) == 2)
        assert heard[0] == big and heard[1] == b"small after"


async def test_a_message_that_is_not_a_bus_frame_is_dropped_and_the_bus_goes_on(
    redis_url: str, prefix: str
) -> None:
    heard: list[bytes] = []
    async with buses(redis_url, "a", "b") as (a, b):
        b.subscribe(prefix + "x", heard.append)
        await b.wait_subscribed()
        async with coredis.Redis.from_url(redis_url) as client:
            await client.publish(prefix + "x", b"\x00")  # too short for a length
            await client.publish(prefix + "x", b"\xff\xffshort")  # origin longer than the frame
        a.publish(prefix + "x", b"fine")
        await until(lambda: heard == [b"fine"])


async def test_a_bus_that_is_not_up_refuses_to_publish(redis_url: str) -> None:
    bus = RedisBus(redis_url, "idle/1")
    assert not bus.up
    with pytest.raises(BusUnavailable):
        bus.publish("x", b"1")
    with pytest.raises(BusUnavailable):
        await bus.wait_subscribed()


async def test_a_node_does_not_start_half_joined_when_redis_is_unreachable() -> None:
    url = f"redis://:secret@127.0.0.1:{_free_port()}/0"
    bus = RedisBus(url, "lonely/1")
    with trio.fail_after(5), pytest.raises(BusUnavailable) as caught:
        await bus.serve()
    message = str(caught.value)
    assert "REDIS_URL" in message and redacted(url) in message and "secret" not in message


# ----- a Redis of our own, killed and started again ---------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        if base.IN_CI:
            pytest.fail("redis-server not installed (CI=true: Redis tests must run, not skip)")
        pytest.skip("redis-server not installed")
    return path


@asynccontextmanager
async def redis_process(binary: str, port: int, workdir: Path) -> AsyncIterator[trio.Process]:
    process = await trio.lowlevel.open_process(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--daemonize", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        with trio.fail_after(5):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                break
        yield process
    finally:
        process.kill()
        await process.wait()


async def test_the_bus_survives_a_redis_restart_by_itself(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    binary, port = _redis_server(), _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    caplog.set_level(logging.INFO)
    heard: list[bytes] = []
    reconnected: list[str] = []
    async with redis_process(binary, port, tmp_path) as first:
        async with buses(url, "a", "b") as (a, b):
            a.on_reconnect(lambda: reconnected.append("a"))
            b.on_reconnect(lambda: reconnected.append("b" if b.up else "b too early"))
            b.subscribe(prefix + "r:1", heard.append)
            await b.wait_subscribed()
            a.publish(prefix + "r:1", b"before")
            await until(lambda: heard == [b"before"])

            first.kill()
            await first.wait()
            await until(lambda: not a.up and not b.up, 1.0)
            with pytest.raises(BusUnavailable):
                a.publish(prefix + "r:1", b"during")
            with pytest.raises(BusUnavailable):
                await b.wait_subscribed()
            # Held while down: subscribed once Redis is back.
            b.subscribe(prefix + "r:2", heard.append)

            async with redis_process(binary, port, tmp_path):
                await until(lambda: a.up and b.up)
                assert sorted(reconnected) == ["a", "b"]
                await b.wait_subscribed()
                a.publish(prefix + "r:1", b"after")
                a.publish(prefix + "r:2", b"new")
                await until(lambda: len(heard) == 3)
                assert heard == [b"before", b"after", b"new"]
                # One line when the outage starts and one when it ends, per
                # bus; not one per retry (nor coredis's own, with tracebacks).
                lines = sorted((r.name, r.levelname) for r in caplog.records)
                ours = "realtime_server.cluster.bus_redis"
                assert lines == [(ours, "INFO")] * 2 + [(ours, "WARNING")] * 2


async def test_a_redis_that_stops_answering_is_down_within_a_second_or_two(
    tmp_path: Path, prefix: str
) -> None:
    """No socket closes when Redis hangs (here SIGSTOP): the PING finds out."""
    binary, port = _redis_server(), _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    heard: list[bytes] = []
    async with redis_process(binary, port, tmp_path) as server:
        async with buses(url, "a", "b") as (a, b):
            b.subscribe(prefix + "x", heard.append)
            await b.wait_subscribed()
            server.send_signal(signal.SIGSTOP)
            try:
                started = trio.current_time()
                await until(lambda: not a.up and not b.up, 3.0)
                assert trio.current_time() - started < PING_EVERY + PING_TIMEOUT + 0.75
                with pytest.raises(BusUnavailable):
                    a.publish(prefix + "x", b"during")
            finally:
                server.send_signal(signal.SIGCONT)
            await until(lambda: a.up and b.up, 10.0)
            a.publish(prefix + "x", b"after")
            await until(lambda: heard == [b"after"])


async def test_a_node_with_redis_url_joins_the_bus(
    redis_url: str, cluster_url: str, tmp_path: Path, prefix: str
) -> None:
    settings = base.test_settings(
        cluster_url, tmp_path / "data", redis_url=redis_url, redis_prefix=prefix, node_id="n1"
    )
    heard: list[bytes] = []
    with trio.fail_after(30):
        async with open_node(settings) as node, buses(redis_url, "peer") as (peer,):
            assert node.cluster is not None
            bus = node.cluster.bus
            assert isinstance(bus, RedisBus) and bus.up
            assert node.cluster.node_key.startswith("n1/")
            channel = node.cluster.node_channel(node.cluster.node_key)
            bus.subscribe(channel, heard.append)
            await bus.wait_subscribed()
            peer.publish(channel, b"hello node")
            await until(lambda: heard == [b"hello node"])


async def test_a_client_connecting_while_redis_is_down_is_welcomed_and_reached_once_it_is_back(
    cluster_url: str, tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The wait for ``u:<user>`` before ``welcome`` is bounded: with Redis down
    the session is served here at once (with a warning in the log), the node
    stays up, and the subscription is made when Redis returns."""
    binary, port = _redis_server(), _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = base.test_settings(
        cluster_url, tmp_path / "data", redis_url=url, redis_prefix=prefix, node_id="lonely"
    )
    async with redis_process(binary, port, tmp_path) as first, open_node(settings) as node:
        assert node.cluster is not None
        bus = node.cluster.bus
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada, bob = await register(http), await register(http)
            await create_group(http, ada, bob)  # a room to listen on, too
        first.kill()
        await first.wait()
        await until(lambda: not bus.up, 3.0)
        with trio.fail_after(settings.ask_timeout + 5):
            async with open_client(node.ws_url, bob.access_token) as laptop:
                assert await laptop.ping() > 0
                assert any("not subscribed before welcome" in r.message for r in caplog.records)
                async with redis_process(binary, port, tmp_path):
                    await until(lambda: bus.up, 10.0)
                    await bus.wait_subscribed()
                    frame = ChatSettingsChanged(d=ChatSettingsData(room="r_x", muted=True))
                    async with buses(url, "peer") as (peer,):
                        body = binary_frame(codec.encode(frame))
                        peer.publish(node.cluster.user_channel(bob.id), envelope("push", body))
                        assert (await next_of(laptop, ChatSettingsChanged)).d.room == "r_x"
