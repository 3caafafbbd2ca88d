"""Scenario *connections*: N authenticated idle connections held on one node.

Every connection is a different user (registered over REST first), upgraded,
``hello``-ed and welcomed, then left idle while the harness answers the
server's heartbeat pings. Measured: the time from the first connect to the
last ``resume.done``, and the server's resident memory (VmRSS from /proc)
before any connection and after all of them have been held idle for
``--hold`` seconds; the difference divided by N is the memory per connection.
Kernel socket buffers are not in a process's RSS, so this is the server's
own cost: Python objects, task stacks, wsproto state.

Needs the server's pid (spawned here, or ``--server-pid`` with ``--url``) for
memory, and enough open files on both sides: the harness raises its soft
limit to the hard limit before spawning the server (the child inherits it)
and in every worker. 15,000 connections need a hard limit above 15,000.

Correct means: all N were welcomed and none was dropped while idle.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import trio

from protocol.harness.lean import LeanConn, Loop
from protocol.harness.report import Meter, add_up, first_error, ns_to_ms, rate
from protocol.harness.server import Target, profile
from protocol.harness.users import create_users, note
from protocol.harness.workers import Control, Workers, split

NAME = "connections"
HELP = "N authenticated idle connections: server memory per connection, time to connect"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--connections", type=int, default=15000, help="connections to hold (default 15000)"
    )
    p.add_argument("--hold", type=float, default=5.0, help="seconds to hold them idle (default 5)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=250,
        help="handshakes in flight per harness process (default 250)",
    )


def _holder_worker(
    control: Control, host: str, port: int, tokens: list[str], concurrency: int, timeout: float
) -> None:
    # Nothing is measured here but the server: latency timestamps are not needed.
    loop = Loop(host, port, timestamps=False)
    conns = [LeanConn(t) for t in tokens]
    control.reply(ready=True)
    control.wait(loop)  # "go": every worker starts connecting together
    loop.connect_all(conns, concurrency=concurrency, timeout=timeout)
    live = [c for c in conns if c.live_ns]
    control.reply(
        **loop.summary(),
        first_open_ns=min(c.opened_ns for c in conns),
        last_live_ns=max((c.live_ns for c in live), default=0),
        connect_ns=[c.live_ns - c.opened_ns for c in live],
    )
    control.wait(loop)  # "report", after the hold
    control.reply(**loop.summary())
    control.finish(loop)


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    n = args.connections
    async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
        note(f"registering {n} users")
        users = await create_users(http, n, progress=True)
    jobs = [
        (target.host, target.port, [u.token for u in part], args.concurrency, args.timeout)
        for part in split(users, args.procs)
    ]
    server = target.process
    async with Workers(_holder_worker, jobs) as workers:
        await workers.gather_async(args.timeout)
        # Let the server finish whatever the registrations left behind.
        await trio.sleep(1.0)
        rss_before = server.rss_bytes() if server else None
        meter = Meter(server, lambda: workers.pids)
        with profile(server, args.profile):
            meter.start()
            workers.send("go")
            connected = await workers.gather_async(args.timeout)
            usage = meter.stop()
        rss_connected = server.rss_bytes() if server else None
        note(f"{sum(r['live'] for r in connected)} connected; holding {args.hold:g}s")
        await trio.sleep(args.hold)
        rss_after = server.rss_bytes() if server else None
        workers.send("report")
        held = await workers.gather_async(args.timeout)

    totals = add_up(connected, "live", "failed")
    first = min(r["first_open_ns"] for r in connected)
    last = max(r["last_live_ns"] for r in connected)
    seconds = (last - first) / 1e9 if last > first else 0.0
    still = add_up(held, "live", "ended")
    per_conn = (
        (rss_after - rss_before) / totals["live"]
        if rss_before is not None and rss_after is not None and totals["live"]
        else None
    )
    return {
        "connections": n,
        "procs": len(jobs),
        "connected": totals["live"],
        "failed": totals["failed"],
        "still_open_after_hold": still["live"],
        "complete": totals["live"] == n and still["live"] == n,
        "first_error": first_error([*connected, *held]),
        "connect_seconds": round(seconds, 3),
        "connects_per_s": rate(totals["live"], seconds),
        "connect_latency_ms": ns_to_ms([x for r in connected for x in r["connect_ns"]]),
        "hold_s": args.hold,
        "server_rss_before_mb": _mb(rss_before),
        "server_rss_connected_mb": _mb(rss_connected),
        "server_rss_after_hold_mb": _mb(rss_after),
        "server_kb_per_connection": None if per_conn is None else round(per_conn / 1024, 2),
        **usage.as_dict(),
    }


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
