"""Quick runs of every bench scenario against a real node: the counts must be exact.

Speed is not asserted (the suite runs on any machine). What is: every message
reached every member once and gap-free, every send was acknowledged, every
connection was held, every backlog was replayed. The harness's workers are
real processes talking to the node over loopback, as in a full bench run.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import trio

from protocol.harness import ai, connections, fanout, plain, resume, rooms
from protocol.harness.__main__ import add_arguments
from protocol.harness.server import ServerProcess, Target
from tests.conftest import NodeFactory
from tests.harness.broadcaster import serve_raw_broadcaster


def bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([*argv, "--timeout", "30"])


async def run_against(node_factory: NodeFactory, module: Any, *argv: str) -> dict[str, Any]:
    # One harness client stands in for many people: no per-connection rate limit
    # and no per-address sign-up limit, as on the server the CLI spawns.
    unlimited = 10**8
    async with node_factory(
        rate_limit_frames_per_second=0,
        register_per_ip=unlimited,
        login_per_ip=unlimited,
        refresh_per_ip=unlimited,
    ) as node:
        # The node runs in this process: its memory and CPU are the test's.
        target = Target(node.http_url, ServerProcess(os.getpid()), "test")
        with trio.fail_after(50):
            return await module.run(bench_args(module.NAME, *argv), target)  # type: ignore[no-any-return]


async def test_fanout_delivers_every_message_to_every_member_exactly_once(node_factory):
    r = await run_against(
        node_factory, fanout, "--members", "6", "--messages", "20", "--warmup", "2"
    )
    assert (r["deliveries"], r["expected"], r["acks"]) == (120, 120, 20)
    assert (r["duplicates"], r["gaps"], r["first_error"]) == (0, 0, "")
    assert r["complete"] is True
    assert r["latency_ms"]["n"] == 120 and r["read_latency_ms"]["n"] == 120
    assert r["procs"] == 2 and r["harness_cpu_s"] >= 0


async def test_fanout_at_a_paced_rate_measures_each_delivery(node_factory):
    r = await run_against(
        node_factory, fanout, "--members", "3", "--messages", "10", "--rate", "100", "--procs", "1"
    )
    assert (r["deliveries"], r["acks"], r["complete"]) == (30, 10, True)
    assert r["latency_ms"]["n"] == 30
    # Ten messages at 100/s take about a tenth of a second to publish.
    assert r["seconds"] >= 0.08


async def test_rooms_acknowledge_every_send_and_each_member_holds_a_gap_free_room(node_factory):
    r = await run_against(
        node_factory, rooms, "--rooms", "3", "--members", "3", "--messages", "5", "--window", "2"
    )
    assert (r["sent"], r["acked"], r["errors"]) == (45, 45, 0)
    # Each member gets what the two others sent: 3 rooms x 3 members x 2 x 5.
    assert (r["deliveries"], r["expected_deliveries"]) == (90, 90)
    assert (r["duplicates"], r["gaps"], r["complete"]) == (0, 0, True)
    assert r["ack_latency_ms"]["n"] == 45


async def test_connections_are_all_welcomed_and_held_while_idle(node_factory):
    r = await run_against(node_factory, connections, "--connections", "20", "--hold", "0.2")
    assert (r["connected"], r["failed"], r["still_open_after_hold"]) == (20, 0, 20)
    assert r["complete"] is True
    assert r["connect_latency_ms"]["n"] == 20
    assert r["server_rss_before_mb"] > 0 and r["server_kb_per_connection"] is not None


async def test_resume_replays_the_whole_backlog_to_every_client_before_live(node_factory):
    r = await run_against(node_factory, resume, "--clients", "6", "--rooms", "2", "--backlog", "30")
    assert (r["caught_up"], r["failed"]) == (6, 0)
    assert (r["replayed"], r["expected"]) == (180, 180)
    assert (r["duplicates"], r["gaps"], r["complete"]) == (0, 0, True)
    assert r["catch_up_ms"]["n"] == 6


async def test_ai_relays_every_delta_in_order_and_stores_every_answer(node_factory):
    args = bench_args(
        "ai", "--levels", "2", "--chunks", "5", "--interval", "0.01", "--procs", "1", "--json"
    )
    # The provider runs in its own process, as in a full bench run; the node in this one.
    with ai.server_env(args) as env:
        async with node_factory(
            rate_limit_frames_per_second=0,
            register_per_ip=10**8,
            **{k.lower(): int(v) if v.isdigit() else v for k, v in env.items()},
        ) as node:
            target = Target(node.http_url, ServerProcess(os.getpid()), "test")
            with trio.fail_after(50):
                r = await ai.run(args, target)
    level = r["n2"]
    assert level["openai"]["complete"] == level["wire"]["complete"] == "2/2"
    assert level["project"]["complete"] == "2/2"
    assert (level["project"]["stored"], level["project"]["in_order"]) == (2, 2)
    assert level["project"]["delta_ms"]["n"] == level["wire"]["delta_ms"]["n"] == 10
    assert level["project"]["server_us_per_delta"] is not None
    assert set(level["added_ms"]) == {"p50", "p99", "first_delta_p50"}


async def test_plain_clients_time_every_nth_subscriber_and_get_every_message(node_factory):
    r = await run_against(
        node_factory,
        plain,
        "--subscribers", "6", "--every", "3", "--messages", "20", "--warmup", "2",
        "--rate", "200", "--procs", "2",
    )  # fmt: skip
    project = r["project"]
    assert (project["deliveries"], project["expected"]) == (6 * 22, 6 * 22)
    assert project["complete"] is True and project["first_error"] == ""
    # Subscribers 0 and 3 are timed, on the measured messages only.
    assert project["latency_ms"]["n"] == 2 * 20


async def test_plain_with_lean_clients_times_every_delivery_twice(node_factory):
    r = await run_against(
        node_factory,
        plain,
        "--subscribers", "4", "--messages", "10", "--warmup", "2", "--rate", "200",
        "--client", "lean",
    )  # fmt: skip
    project = r["project"]
    assert project["complete"] is True
    assert project["latency_ms"]["n"] == project["read_latency_ms"]["n"] == 4 * 10


async def test_plain_drives_a_bare_broadcaster_with_either_client(nursery):
    port = await nursery.start(serve_raw_broadcaster)
    args = bench_args(
        plain.NAME, "--subscribers", "4", "--messages", "10", "--warmup", "2", "--rate", "200"
    )
    peer = plain.Endpoint("raw", "raw", f"ws://127.0.0.1:{port}", None)
    for client in ("websockets", "lean"):
        args.client = client
        with trio.fail_after(50):
            got = await plain._measure(peer, args)
        assert got["complete"] is True and got["deliveries"] == 4 * 12, (client, got)
        assert got["latency_ms"]["n"] > 0
