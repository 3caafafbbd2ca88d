"""Choose the bus's Redis client by measurement on trio (issue 13, item 1).

Two clients, the same loop: ``publish`` queues, one task sends everything
queued as one pipeline and waits for its replies, a second connection is
subscribed and one task hands each message to a handler.

- coredis: ``RedisBus`` itself (``realtime_server.cluster.bus_redis``), which
  runs natively on trio through anyio;
- redis-py's asyncio client hosted in trio through trio-asyncio (as the
  project hosts asyncpg, ``storage.sql.asyncio_bridge``): a pipeline per batch
  crossing the bridge once, and the subscriber's read loop running inside the
  asyncio loop, calling the handler there (no crossing per message). redis-py
  is in the ``dev`` extra for this script only.

Run (a scratch channel prefix; nothing is stored in Redis)::

    flock /work/wt/bench.lock python -m realtime_server.cluster.bench_bus \\
        --redis redis://127.0.0.1:6379/0

What it measures, per client, as the median of ``--rounds`` interleaved rounds:
- throughput: ``--count`` messages of ``--size`` bytes, published in bursts
  of 100 with a checkpoint between (so the publisher pipelines what queued
  up meanwhile), msgs/s from the first publish to the last one received;
- CPU per message: this process's CPU time (publishing and receiving both;
  Redis is another process) over that run, divided by the messages;
- latency: 2,000 messages at 1,000 msgs/s, from the ``publish`` call to the
  handler's call, p50 and p99.
"""

from __future__ import annotations

import argparse
import math
import secrets
import statistics
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio
import trio.lowlevel

from realtime_server.cluster.bus import Handler
from realtime_server.cluster.bus_redis import RedisBus

if TYPE_CHECKING:
    from storage.sql.asyncio_bridge import AsyncioBridge

_STAMP = struct.Struct(">d")
BURST = 100


class Endpoint(Protocol):
    def publish(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, channel: str, handler: Handler) -> None: ...

    async def wait_subscribed(self) -> None: ...


# A client under test: started inside a nursery, it gives (publisher, subscriber).
Opener = Callable[[trio.Nursery, str], Awaitable[tuple[Endpoint, Endpoint]]]


@dataclass
class Sample:
    msgs_per_s: float
    cpu_us_per_msg: float
    p50_ms: float
    p99_ms: float


async def open_coredis(nursery: trio.Nursery, url: str) -> tuple[Endpoint, Endpoint]:
    pub = RedisBus(url, f"bench-pub/{secrets.token_hex(3)}")
    sub = RedisBus(url, f"bench-sub/{secrets.token_hex(3)}")
    await nursery.start(pub.serve)
    await nursery.start(sub.serve)
    return pub, sub


class RedisPyEndpoint:
    """The bus's loop on redis-py's asyncio client, hosted by trio-asyncio."""

    def __init__(self, url: str, bridge: AsyncioBridge) -> None:
        self._url = url
        self._bridge = bridge
        self._outbox: list[tuple[str, bytes]] = []
        self._ready = trio.Event()
        self._handlers: dict[str, Handler] = {}
        self._pubsub: Any = None
        self._nursery: trio.Nursery | None = None

    def publish(self, channel: str, payload: bytes) -> None:
        self._outbox.append((channel, payload))
        self._ready.set()

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel] = handler

    async def wait_subscribed(self) -> None:
        """Subscribe, wait for Redis's confirmations, then start the read loop."""
        pubsub, channels = self._pubsub, list(self._handlers)

        async def subscribe() -> None:
            await pubsub.subscribe(*channels)
            confirmed = 0
            while confirmed < len(channels):
                message = await pubsub.get_message(timeout=5.0)
                confirmed += message is not None and message["type"] == "subscribe"

        await self._bridge.run(subscribe)
        assert self._nursery is not None
        self._nursery.start_soon(self._bridge.run, self._read)

    async def _read(self) -> None:
        # Runs inside the asyncio loop: no bridge crossing per message.
        handlers, pubsub = self._handlers, self._pubsub
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                handlers[message["channel"].decode()](message["data"])

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        import redis.asyncio

        bridge = self._bridge

        async def connect() -> tuple[Any, Any]:
            client = redis.asyncio.Redis.from_url(self._url)
            await client.ping()
            return client, client.pubsub()

        client, self._pubsub = await bridge.run(connect)

        async def send(batch: list[tuple[str, bytes]]) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()

        async def publisher() -> None:
            while True:
                await self._ready.wait()
                self._ready = trio.Event()
                batch, self._outbox = self._outbox, []
                await bridge.run(send, batch)

        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(publisher)
                task_status.started()
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await bridge.run(self._pubsub.aclose)
                await bridge.run(client.aclose)


async def open_redis_py(nursery: trio.Nursery, url: str) -> tuple[Endpoint, Endpoint]:
    # ONE asyncio loop for both clients, as in a process that hosts asyncio
    # once (storage.sql.asyncio_bridge); it closes after them.
    async def host(*, task_status: trio.TaskStatus[tuple[Endpoint, Endpoint]]) -> None:
        from storage.sql.asyncio_bridge import open_asyncio_bridge

        async with open_asyncio_bridge() as bridge, trio.open_nursery() as clients:
            pub, sub = RedisPyEndpoint(url, bridge), RedisPyEndpoint(url, bridge)
            await clients.start(pub.serve)
            await clients.start(sub.serve)
            task_status.started((pub, sub))

    endpoints: tuple[Endpoint, Endpoint] = await nursery.start(host)
    return endpoints


async def measure(opener: Opener, url: str, count: int, size: int) -> Sample:
    channel = f"bench:{secrets.token_hex(4)}:x"
    body = b"x" * max(0, size - _STAMP.size)
    received = 0
    done = trio.Event()
    target = 0
    latencies: list[float] = []
    timing = False

    def handler(payload: bytes) -> None:
        nonlocal received
        received += 1
        if timing:
            latencies.append(time.perf_counter() - _STAMP.unpack_from(payload)[0])
        if received >= target:
            done.set()

    async def flood(n: int) -> None:
        nonlocal target, done
        target, done = received + n, trio.Event()
        stamp = _STAMP.pack(0.0) + body
        for i in range(n):
            pub.publish(channel, stamp)
            if i % BURST == BURST - 1:
                await trio.lowlevel.checkpoint()
        await done.wait()

    async with trio.open_nursery() as nursery:
        pub, sub = await opener(nursery, url)
        sub.subscribe(channel, handler)
        await sub.wait_subscribed()
        with trio.fail_after(120):
            await flood(min(count, 2_000))  # warm up: connections, caches, allocator
            cpu, wall = time.process_time(), time.perf_counter()
            await flood(count)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            # Latency at a moderate rate: one message a millisecond.
            timing = True
            n = 2_000
            target, done = received + n, trio.Event()
            start = trio.current_time()
            for i in range(n):
                await trio.sleep_until(start + i / 1_000)
                pub.publish(channel, _STAMP.pack(time.perf_counter()) + body)
            await done.wait()
        nursery.cancel_scope.cancel()
    latencies.sort()
    return Sample(
        msgs_per_s=count / wall,
        cpu_us_per_msg=cpu / count * 1e6,
        p50_ms=latencies[len(latencies) // 2] * 1e3,
        p99_ms=latencies[math.ceil(len(latencies) * 0.99) - 1] * 1e3,
    )


CLIENTS: dict[str, tuple[str, Opener]] = {
    "coredis": ("coredis {v} (RedisBus, native trio)", open_coredis),
    "redis-py": ("redis-py {v} asyncio via trio-asyncio", open_redis_py),
}


def _label(name: str) -> str | None:
    from importlib import metadata

    package = "coredis" if name == "coredis" else "redis"
    try:
        return CLIENTS[name][0].format(v=metadata.version(package))
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis URL")
    parser.add_argument("--count", type=int, default=50_000, help="messages in the throughput run")
    parser.add_argument("--size", type=int, default=200, help="payload bytes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args()
    labels = {name: _label(name) for name in CLIENTS}
    for name, label in labels.items():
        if label is None:
            print(f"{name}: not installed (pip install -e '.[dev]'), skipped")
    samples: dict[str, list[Sample]] = {name: [] for name, label in labels.items() if label}
    for _ in range(args.rounds):
        for name in samples:
            opener = CLIENTS[name][1]
            samples[name].append(trio.run(measure, opener, args.redis, args.count, args.size))
    print(f"{args.count} messages of {args.size} bytes; median of {args.rounds} rounds")
    print(f"{'client':<42}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/msg':>12}")
    for name, runs in samples.items():
        print(
            f"{labels[name]:<42}"
            f"{statistics.median(s.msgs_per_s for s in runs):>10,.0f}"
            f"{statistics.median(s.p50_ms for s in runs):>9.2f}"
            f"{statistics.median(s.p99_ms for s in runs):>9.2f}"
            f"{statistics.median(s.cpu_us_per_msg for s in runs):>12.1f}"
        )


if __name__ == "__main__":
    main()
