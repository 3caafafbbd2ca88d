"""Scenario *fanout*: one room, N online members, one publisher, M messages.

Members are lean connections spread over ``procs`` worker processes; the
publisher is the reference client (``protocol.client``) in the harness's main
process. Every message text starts with the publisher's ``time.time_ns()``,
so each delivery's send-to-delivery latency is exact (see ``lean``: *arrival*
is when the bytes reached the member's socket, *read* when the harness got to
them).

Two modes: ``--rate 0`` sends as fast as acks allow (``--window`` messages in
flight, as a client pipelining its sends) and measures deliveries per second
at saturation; ``--rate R`` paces the publisher at R messages per second and
measures latency under that load.

Correct means: every member got every message exactly once, in a gap-free
seq range, and the publisher got an ``ok`` for each.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx
import trio

from protocol.client import Client, open_client
from protocol.harness.lean import LeanConn, Loop
from protocol.harness.nodes import spread
from protocol.harness.report import Meter, add_up, first_error, ns_to_ms, rate
from protocol.harness.server import Target, profile
from protocol.harness.users import create_group, create_users
from protocol.harness.workers import Control, Workers

NAME = "fanout"
RATE = "deliveries_per_s"  # what ``--nodes 1,2`` compares
HELP = "one room, N online members, M messages: deliveries/s and send-to-delivery latency"
# Latency samples kept per run (every k-th delivery beyond this).
MAX_SAMPLES = 400_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=int, default=200, help="online members (default 200)")
    p.add_argument("--messages", type=int, default=1000, help="messages to publish (default 1000)")
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages/s; 0 = as fast as acks allow (default)"
    )
    p.add_argument(
        "--window", type=int, default=64, help="publisher messages in flight (default 64)"
    )
    p.add_argument(
        "--payload", type=int, default=32, help="text bytes after the stamp (default 32)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="messages sent and delivered before measuring (default 10); the first one's "
        "ack time is reported as cold_first_ack_ms (the room actor starting from storage)",
    )


def _members_worker(
    control: Control,
    host: str,
    port: int,
    tokens: list[str],
    messages: int,
    sample_every: int,
    timeout: float,
) -> None:
    loop = Loop(host, port, sample_every=sample_every)
    conns = [LeanConn(t) for t in tokens]
    loop.connect_all(conns, concurrency=100, timeout=timeout)
    summary = loop.summary()
    if loop.live != len(conns):
        raise RuntimeError(f"{loop.live}/{len(conns)} members connected: {summary['first_error']}")
    control.reply(connected=loop.live)
    warmup = control.wait(loop)
    loop.run_until(lambda: loop.msgs >= warmup * len(conns) or loop.ended > 0, timeout)
    control.reply(warm=loop.msgs)
    loop.reset_counters()
    expected = messages * len(conns)
    loop.run_until(lambda: loop.msgs >= expected or loop.ended > 0, timeout)
    control.reply(**loop.summary(), arrival=loop.arrival_ns, read=loop.read_ns)
    control.finish(loop)


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    members, messages = args.members, args.messages
    async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
        users = await create_users(http, members + 1)
        publisher, others = users[0], users[1:]
        room = await create_group(http, publisher, others)

    sample_every = max(1, members * messages // MAX_SAMPLES)
    # Member i connects to node i % N; the publisher to node 0.
    jobs = [
        (node.host, node.port, [u.token for u in part], messages, sample_every, args.timeout)
        for node, part in spread(others, target, args.procs)
    ]
    async with Workers(_members_worker, jobs) as workers:
        await workers.gather_async(args.timeout)
        async with open_client(target.ws_url, publisher.token, device="bench-publisher") as client:
            cold = await _warm_up(client, room, args.warmup)
            workers.send(args.warmup)
            await workers.gather_async(args.timeout)
            meter = Meter(target.process, lambda: workers.pids)
            with profile(target.process, args.profile):
                meter.start()
                t0 = time.time_ns()
                acks = await _publish(client, room, args)
                replies = await workers.gather_async(args.timeout)
                usage = meter.stop()

    totals = add_up(replies, "msgs", "dups", "gaps", "errors", "ended")
    last = max(r["last_msg_ns"] for r in replies)
    seconds = (last - t0) / 1e9 if last else 0.0
    expected = members * messages
    return {
        "members": members,
        "messages": messages,
        "rate": args.rate,
        "window": args.window,
        "procs": len(jobs),
        "deliveries": totals["msgs"],
        "expected": expected,
        "acks": acks,
        "duplicates": totals["dups"],
        "gaps": totals["gaps"],
        "complete": totals["msgs"] == expected and acks == messages and totals["gaps"] == 0,
        "first_error": first_error(replies),
        "seconds": round(seconds, 3),
        "deliveries_per_s": rate(totals["msgs"], seconds),
        "cold_first_ack_ms": cold,
        "latency_ms": ns_to_ms([x for r in replies for x in r["arrival"]]),
        "read_latency_ms": ns_to_ms([x for r in replies for x in r["read"]]),
        **usage.as_dict(),
    }


async def _warm_up(client: Client, room: str, count: int) -> float | None:
    """Send ``count`` unmeasured messages; returns the first one's ack time in ms."""
    cold = None
    for i in range(count):
        t = time.perf_counter()
        await client.send_message(room, f"warm-up {i}", cid=f"w{i}")
        if cold is None:
            cold = round((time.perf_counter() - t) * 1000, 3)
    return cold


async def _publish(client: Client, room: str, args: argparse.Namespace) -> int:
    """Publish ``args.messages`` stamped messages; returns how many were acked."""
    pad = "x" * args.payload
    acked = 0
    window = trio.Semaphore(max(1, args.window))
    start = trio.current_time()

    async def send(i: int) -> None:
        nonlocal acked
        try:
            await client.send_message(room, f"{time.time_ns()} {pad}", cid=f"m{i}")
            acked += 1
        finally:
            window.release()

    async with trio.open_nursery() as nursery:
        for i in range(args.messages):
            if args.rate > 0:
                await trio.sleep_until(start + i / args.rate)
            await window.acquire()
            nursery.start_soon(send, i)
    return acked
