"""``--nodes``: how the harness reads the counts and spreads clients over nodes.

The runs over real node processes are in ``tests/cluster/test_bench_nodes.py``
(they need Redis).
"""

from __future__ import annotations

import pytest

from protocol.harness.nodes import compare, parse_counts, spread
from protocol.harness.server import Target


def test_counts_are_one_or_a_comma_list_of_positive_integers() -> None:
    assert parse_counts("1") == [1]
    assert parse_counts("1,2") == [1, 2]
    assert parse_counts(" 2 , 3 ") == [2, 3]
    for bad in ("", "0", "1,-2", "two", "1;2"):
        with pytest.raises(ValueError, match="--nodes"):
            parse_counts(bad)


def test_clients_are_dealt_round_robin_over_the_nodes_then_over_workers() -> None:
    nodes = tuple(Target(f"http://127.0.0.1:{9000 + i}") for i in range(2))
    group = Target(nodes[0].url, nodes=nodes)
    jobs = spread(list(range(10)), group, procs=4)
    assert [(node.port, part) for node, part in jobs] == [
        (9000, [0, 4, 8]),
        (9000, [2, 6]),
        (9001, [1, 5, 9]),
        (9001, [3, 7]),
    ]
    # Fewer workers than nodes: still one per node, every client placed once.
    jobs = spread(list(range(5)), group, procs=1)
    assert [(node.port, part) for node, part in jobs] == [(9000, [0, 2, 4]), (9001, [1, 3])]


def test_one_node_keeps_the_single_server_split() -> None:
    alone = Target("http://127.0.0.1:9000")
    jobs = spread(list(range(5)), alone, procs=2)
    assert [(node.port, part) for node, part in jobs] == [(9000, [0, 2, 4]), (9000, [1, 3])]


def test_the_comparison_is_each_run_against_the_first() -> None:
    runs = [{"nodes": 1, "acked_per_s": 1000.0}, {"nodes": 2, "acked_per_s": 1700.0}]
    assert compare(runs, "acked_per_s") == {
        "compared": "acked_per_s",
        "base_nodes": 1,
        "ratio_2_vs_1": 1.7,
    }
