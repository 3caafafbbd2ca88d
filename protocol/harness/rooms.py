"""Scenario *rooms*: many small rooms chatting at once; acknowledged messages/s.

R rooms of K members each; every member is online (a lean connection) and
sends M messages to its room, keeping ``--window`` unacknowledged. An ``ok``
means the server stored the message durably (``ok`` is sent only after the
group commit), so acknowledged messages per second is the storage path's
throughput under a realistic spread: many actors, each batching its own room.

Correct means: every send was acknowledged, and every member holds the
gap-free seq range 1..K*M of its room (its own acked sends plus what was
fanned out to it), each seen once.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from protocol.harness.lean import LeanConn, Loop
from protocol.harness.nodes import spread
from protocol.harness.report import Meter, add_up, first_error, ns_to_ms, rate
from protocol.harness.server import Target, profile
from protocol.harness.users import create_groups, create_users, note
from protocol.harness.workers import Control, Workers

NAME = "rooms"
RATE = "acked_per_s"  # what ``--nodes 1,2`` compares
HELP = "many small rooms chatting at once: acknowledged (stored) messages/s"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rooms", type=int, default=500, help="rooms (default 500)")
    p.add_argument("--members", type=int, default=4, help="members per room (default 4)")
    p.add_argument(
        "--messages", type=int, default=50, help="messages each member sends (default 50)"
    )
    p.add_argument(
        "--window", type=int, default=8, help="unacknowledged sends per member (default 8)"
    )
    p.add_argument(
        "--payload", type=int, default=32, help="text bytes after the stamp (default 32)"
    )


def _members_worker(
    control: Control,
    host: str,
    port: int,
    members: list[tuple[str, str]],
    messages: int,
    others: int,
    window: int,
    payload: int,
    timeout: float,
) -> None:
    loop = Loop(host, port)
    conns = [LeanConn(token) for token, _ in members]
    loop.connect_all(conns, concurrency=200, timeout=timeout)
    if loop.live != len(conns):
        raise RuntimeError(f"{loop.live}/{len(conns)} connected: {loop.summary()['first_error']}")
    control.reply(connected=loop.live)
    control.wait(loop)  # "go": every worker starts together
    started = time.time_ns()
    pad = "x" * payload
    for conn, (_, room) in zip(conns, members, strict=True):
        loop.post(conn, room, messages, window=window, pad=pad)
    sends = messages * len(conns)
    # Done when every send is answered and every member has what the others sent.
    deliveries = others * messages * len(conns)
    loop.run_until(
        lambda: (loop.acks + loop.errors >= sends and loop.msgs >= deliveries) or loop.ended > 0,
        timeout,
    )
    control.reply(
        **loop.summary(),
        started_ns=started,
        last_ack_ns=max(c.last_ack_ns for c in conns),
        ack=loop.ack_ns,
    )
    control.finish(loop)


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    rooms, k, m = args.rooms, args.members, args.messages
    if k < 2:
        raise SystemExit("--members must be at least 2")
    async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
        users = await create_users(http, rooms * k, progress=True)
        groups = [users[i * k : (i + 1) * k] for i in range(rooms)]
        room_ids = await create_groups(http, groups)
    note(f"{rooms} rooms of {k} members ready")
    members = [(u.token, room_ids[i]) for i, group in enumerate(groups) for u in group]
    # Member i connects to node i % N: each room's members are spread over the nodes.
    jobs = [
        (node.host, node.port, part, m, k - 1, args.window, args.payload, args.timeout)
        for node, part in spread(members, target, args.procs)
    ]
    async with Workers(_members_worker, jobs) as workers:
        await workers.gather_async(args.timeout)
        meter = Meter(target.process, lambda: workers.pids)
        with profile(target.process, args.profile):
            meter.start()
            workers.send("go")
            replies = await workers.gather_async(args.timeout)
            usage = meter.stop()

    totals = add_up(replies, "acks", "errors", "msgs", "dups", "gaps")
    started = min(r["started_ns"] for r in replies)
    last = max(r["last_ack_ns"] for r in replies)
    seconds = (last - started) / 1e9 if last > started else 0.0
    sends = rooms * k * m
    expected_deliveries = rooms * k * (k - 1) * m
    return {
        "rooms": rooms,
        "members": k,
        "messages_per_member": m,
        "window": args.window,
        "procs": len(jobs),
        "sent": sends,
        "acked": totals["acks"],
        "errors": totals["errors"],
        "deliveries": totals["msgs"],
        "expected_deliveries": expected_deliveries,
        "duplicates": totals["dups"],
        "gaps": totals["gaps"],
        "complete": totals["acks"] == sends
        and totals["msgs"] == expected_deliveries
        and totals["gaps"] == 0,
        "first_error": first_error(replies),
        "seconds": round(seconds, 3),
        "acked_per_s": rate(totals["acks"], seconds),
        "deliveries_per_s": rate(totals["msgs"], seconds),
        "ack_latency_ms": ns_to_ms([x for r in replies for x in r["ack"]]),
        **usage.as_dict(),
    }
