"""Scenario *resume*: N clients reconnect at once, each with a backlog to catch up.

N members spread over R rooms (plus a publisher in every room). While they
are offline the publisher posts B messages to each room; then all N connect
together, each saying in ``hello`` that it has seen nothing after seq 0, and
the server replays the backlog (from the room's recent-message cache or from
storage) before ``resume.done``. Measured: the time from the first connect to
the last ``resume.done``, each client's own catch-up time, and replayed
messages per second.

Correct means: every client got exactly the B messages of its room, gap-free
and before ``resume.done``.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import trio

from protocol.client import open_client
from protocol.harness.lean import LeanConn, Loop
from protocol.harness.report import Meter, add_up, first_error, ns_to_ms, rate
from protocol.harness.server import Target, profile
from protocol.harness.users import create_groups, create_users, note
from protocol.harness.workers import Control, Workers, split

NAME = "resume"
HELP = "N clients reconnecting with a backlog: time until all caught up"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=200, help="reconnecting clients (default 200)")
    p.add_argument("--rooms", type=int, default=1, help="rooms they are spread over (default 1)")
    p.add_argument(
        "--backlog", type=int, default=1000, help="messages missed per room (default 1000)"
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=1000,
        help="reconnects in flight per harness process (default 1000: all at once)",
    )


def _clients_worker(
    control: Control,
    host: str,
    port: int,
    clients: list[tuple[str, str]],
    concurrency: int,
    timeout: float,
) -> None:
    loop = Loop(host, port, timestamps=False)
    conns = [LeanConn(token, cursors={room: 0}) for token, room in clients]
    control.reply(ready=True)
    control.wait(loop)  # "go"
    loop.connect_all(conns, concurrency=concurrency, timeout=timeout)
    live = [c for c in conns if c.live_ns]
    control.reply(
        **loop.summary(),
        first_open_ns=min(c.opened_ns for c in conns),
        last_live_ns=max((c.live_ns for c in live), default=0),
        catch_up_ns=[c.live_ns - c.opened_ns for c in live],
    )
    control.finish(loop)


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    n, r, backlog = args.clients, max(1, args.rooms), args.backlog
    async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
        users = await create_users(http, n + 1, progress=True)
        publisher, clients = users[0], users[1:]
        groups = [[publisher, *clients[i::r]] for i in range(r)]
        room_ids = await create_groups(http, groups)
    note(f"publishing a backlog of {backlog} messages to each of {r} rooms")
    await _publish_backlog(target.ws_url, publisher.token, room_ids, backlog)
    plan = [(u.token, room_ids[i]) for i in range(r) for u in clients[i::r]]
    jobs = [
        (target.host, target.port, part, args.concurrency, args.timeout)
        for part in split(plan, args.procs)
    ]
    async with Workers(_clients_worker, jobs) as workers:
        await workers.gather_async(args.timeout)
        meter = Meter(target.process, lambda: workers.pids)
        with profile(target.process, args.profile):
            meter.start()
            workers.send("go")
            replies = await workers.gather_async(args.timeout)
            usage = meter.stop()

    totals = add_up(replies, "live", "failed", "msgs", "replayed", "dups", "gaps")
    first = min(x["first_open_ns"] for x in replies)
    last = max(x["last_live_ns"] for x in replies)
    seconds = (last - first) / 1e9 if last > first else 0.0
    expected = n * backlog
    return {
        "clients": n,
        "rooms": r,
        "backlog": backlog,
        "procs": len(jobs),
        "caught_up": totals["live"],
        "failed": totals["failed"],
        "replayed": totals["replayed"],
        "expected": expected,
        "duplicates": totals["dups"],
        "gaps": totals["gaps"],
        "complete": totals["live"] == n
        and totals["replayed"] == expected
        and totals["msgs"] == expected
        and totals["gaps"] == 0,
        "first_error": first_error(replies),
        "seconds": round(seconds, 3),
        "replayed_per_s": rate(totals["replayed"], seconds),
        "catch_up_ms": ns_to_ms([x for rep in replies for x in rep["catch_up_ns"]]),
        **usage.as_dict(),
    }


async def _publish_backlog(ws_url: str, token: str, rooms: list[str], count: int) -> None:
    async with open_client(ws_url, token, device="bench-publisher") as client:
        window = trio.Semaphore(64)

        async def send(room: str, i: int) -> None:
            try:
                await client.send_message(room, f"backlog {i}", cid=f"{room}-{i}")
            finally:
                window.release()

        async with trio.open_nursery() as nursery:
            for i in range(count):
                for room in rooms:
                    await window.acquire()
                    nursery.start_soon(send, room, i)
