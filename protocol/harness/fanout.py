"""Scenario *fanout*: one room, N online members, one publisher, M messages.

Subscribers are spread over ``procs`` worker processes (lean clients); the
publisher uses the reference client from the main process. Every message text
starts with the publisher's ``time.monotonic_ns()`` (one clock for every
process on a Linux host), so each delivery's send-to-receive latency is exact.

Two modes: ``rate=0`` sends as fast as acks allow (with ``window`` messages in
flight) and measures deliveries per second at saturation; ``rate=R`` paces the
publisher at R messages per second and measures latency under that load.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from protocol.client import open_client
from protocol.harness.lean import LeanSubscriber
from protocol.harness.report import percentiles
from protocol.harness.users import create_group, create_users


@dataclass(frozen=True)
class FanoutConfig:
    url: str
    members: int = 200
    messages: int = 1000
    rate: float = 0.0
    procs: int = 2
    window: int = 64
    payload: int = 32
    timeout: float = 120.0


@dataclass
class FanoutResult:
    members: int
    messages: int
    rate: float
    deliveries: int
    expected: int
    seconds: float
    deliveries_per_s: float
    latency_ms: dict[str, float]
    harness_cpu_s: float
    server_cpu_s: float | None = None


def _worker(
    host: str,
    port: int,
    tokens: list[str],
    expected: int,
    sample_every: int,
    ready: Any,
    results: Any,
) -> None:
    async def main() -> dict[str, Any]:
        subs = [LeanSubscriber(host, port, t, sample_every) for t in tokens]
        limiter = trio.CapacityLimiter(50)

        async def connect(s: LeanSubscriber) -> None:
            async with limiter:
                await s.connect()

        async with trio.open_nursery() as n:
            for s in subs:
                n.start_soon(connect, s)
        ready.put(len(subs))
        async with trio.open_nursery() as n:
            for s in subs:
                n.start_soon(s.receive, expected)
        for s in subs:
            await s.aclose()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "received": sum(s.stats.received for s in subs),
            "first_ns": min(s.stats.first_ns for s in subs),
            "last_ns": max(s.stats.last_ns for s in subs),
            "latencies": [x for s in subs for x in s.stats.latencies],
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }

    try:
        results.put(trio.run(main))
    except BaseException as exc:  # report, never hang the parent
        ready.put(-1)
        results.put({"error": repr(exc)})


async def run_fanout(config: FanoutConfig, server_cpu: Any = None) -> FanoutResult:
    parts = urlsplit(config.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ws_url = f"ws://{host}:{port}/ws"
    async with httpx.AsyncClient(base_url=config.url, timeout=30) as http:
        users = await create_users(http, config.members + 1)
        publisher, members = users[0], users[1:]
        room = await create_group(http, publisher, members)

    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    procs = max(1, min(config.procs, config.members))
    sample_every = max(1, (config.members * config.messages) // 200_000)
    workers = []
    for i in range(procs):
        tokens = [m.token for m in members[i::procs]]
        p = ctx.Process(
            target=_worker,
            args=(host, port, tokens, config.messages, sample_every, ready, results),
            daemon=True,
        )
        p.start()
        workers.append(p)
    try:
        with trio.fail_after(config.timeout):
            for _ in range(procs):
                if await trio.to_thread.run_sync(ready.get) < 0:
                    raise RuntimeError(f"a worker failed: {results.get()}")
            cpu_before = server_cpu() if server_cpu else None
            t0 = time.monotonic_ns()
            await _publish(ws_url, publisher.token, room, config)
            outcomes = [await trio.to_thread.run_sync(results.get) for _ in range(procs)]
            cpu_after = server_cpu() if server_cpu else None
    finally:
        for p in workers:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    errors = [o["error"] for o in outcomes if "error" in o]
    if errors:
        raise RuntimeError(f"worker failed: {errors[0]}")
    deliveries = sum(o["received"] for o in outcomes)
    last = max(o["last_ns"] for o in outcomes)
    seconds = (last - t0) / 1e9
    latencies = [x / 1e6 for o in outcomes for x in o["latencies"]]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return FanoutResult(
        members=config.members,
        messages=config.messages,
        rate=config.rate,
        deliveries=deliveries,
        expected=config.members * config.messages,
        seconds=round(seconds, 3),
        deliveries_per_s=round(deliveries / seconds, 1) if seconds > 0 else 0.0,
        latency_ms=percentiles(latencies),
        harness_cpu_s=round(usage.ru_utime + usage.ru_stime + sum(o["cpu_s"] for o in outcomes), 2),
        server_cpu_s=None if cpu_before is None else round(cpu_after - cpu_before, 2),
    )


async def _publish(ws_url: str, token: str, room: str, config: FanoutConfig) -> None:
    pad = "x" * config.payload
    async with open_client(ws_url, token, device="bench-publisher") as client:
        window = trio.Semaphore(config.window)
        start = trio.current_time()

        async def send(i: int) -> None:
            try:
                await client.send_message(room, f"{time.monotonic_ns()} {pad}", cid=f"m{i}")
            finally:
                window.release()

        async with trio.open_nursery() as nursery:
            for i in range(config.messages):
                if config.rate > 0:
                    await trio.sleep_until(start + i / config.rate)
                await window.acquire()
                nursery.start_soon(send, i)


def as_dict(result: FanoutResult) -> dict[str, Any]:
    return asdict(result)
