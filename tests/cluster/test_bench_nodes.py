"""``bench rooms|fanout --nodes 1,2``: the harness spawns the nodes, spreads the
clients over them and reports each run with each node's CPU, then the ratio.

Small runs: speed is not asserted, the counts are (every send acknowledged,
every member got every message once, gap-free), on one node and on two.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import trio

from protocol.harness.__main__ import add_arguments, run

# They make bench_ schemas, which tests/harness/test_cli.py counts: one worker.
pytestmark = pytest.mark.xdist_group("bench_schemas")


def _bench(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([*argv, "--database", "postgres", "--timeout", "30"])


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    # The CLI path itself: spawning nodes blocks, and it runs its own trio.run.
    with trio.fail_after(120):
        return await trio.to_thread.run_sync(run, args)


def _check_nodes(result: dict[str, Any], rate: str) -> None:
    one, two = result["runs"]
    assert (one["nodes"], two["nodes"]) == (1, 2)
    for r in (one, two):
        assert r["complete"] is True, r
        assert r[rate] > 0
    assert "node_cpu_s" not in one
    # Each node's CPU (clock ticks: a tiny run may spend less than one), adding up to the server's.
    assert len(two["node_cpu_s"]) == 2 and min(two["node_cpu_s"]) >= 0
    assert abs(sum(two["node_cpu_s"]) - two["server_cpu_s"]) <= 0.03
    assert result["compared"] == rate and result["ratio_2_vs_1"] > 0


async def test_bench_rooms_over_one_node_then_two(redis_url: str, postgres_dsn: str) -> None:
    args = _bench(
        "rooms", "--rooms", "6", "--members", "3", "--messages", "10", "--nodes", "1,2",
        "--redis", redis_url,
    )  # fmt: skip
    result = await _run(args)
    _check_nodes(result, "acked_per_s")
    assert result["runs"][1]["acked"] == 6 * 3 * 10


async def test_bench_fanout_over_one_node_then_two(redis_url: str, postgres_dsn: str) -> None:
    args = _bench(
        "fanout", "--members", "6", "--messages", "20", "--warmup", "2", "--nodes", "1,2",
        "--redis", redis_url,
    )  # fmt: skip
    result = await _run(args)
    _check_nodes(result, "deliveries_per_s")
    assert result["runs"][1]["deliveries"] == 6 * 20
