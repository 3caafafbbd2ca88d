"""``realtime-server bench SCENARIO`` (also ``python -m protocol.harness``).

A scenario is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``async run(args, target) -> dict``; adding one (the *ai* scenario, when AI
streaming lands) is one import and one entry in ``SCENARIOS``. Options every
scenario shares (where the server is, how many processes, output) are added
here, once.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import ModuleType
from typing import Any

import trio

from protocol.harness import ai, connections, fanout, plain, resume, rooms
from protocol.harness.nodes import DEFAULT_REDIS_URL, compare, parse_counts, spawn_nodes
from protocol.harness.report import profile_summary, table
from protocol.harness.server import ServerProcess, Target

SCENARIOS: dict[str, ModuleType] = {
    m.NAME: m for m in (fanout, rooms, connections, resume, ai, plain)
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for name, module in SCENARIOS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        _add_common(p)


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server and output")
    g.add_argument(
        "--url",
        help="server to drive, e.g. http://127.0.0.1:8000 (default: spawn a fresh one)",
    )
    g.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="database of the spawned server: a temporary SQLite file (default) or a fresh "
        "schema in BENCH_POSTGRES_DSN / TEST_POSTGRES_DSN "
        "(default postgresql://postgres@127.0.0.1:5432/test)",
    )
    g.add_argument(
        "--server-src",
        metavar="DIR",
        help="run the spawned server from this source tree (put first on its PYTHONPATH), "
        "e.g. a worktree of main: old and new code side by side with the same harness",
    )
    g.add_argument(
        "--server-pid",
        type=int,
        help="with --url: the server's pid on this host, to report its CPU and memory",
    )
    g.add_argument(
        "--nodes",
        default="1",
        metavar="N[,M...]",
        help="node processes to spawn (default 1); above one they share a fresh PostgreSQL "
        "schema (--database postgres) and Redis, and clients are spread over them "
        "round-robin. A comma list (1,2) runs the scenario once per count and prints the "
        "ratio of its rate (rooms, fanout)",
    )
    g.add_argument(
        "--redis",
        default=DEFAULT_REDIS_URL,
        metavar="URL",
        help=f"Redis of the spawned nodes when --nodes is above 1 (default {DEFAULT_REDIS_URL})",
    )
    g.add_argument("--procs", type=int, default=2, help="harness worker processes (default 2)")
    g.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds per phase"
    )
    g.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the spawned server with py-spy during the measured phase: "
        "FILE.svg flame graph, FILE.json speedscope, FILE.txt collapsed stacks "
        "(then the hottest functions are printed too)",
    )
    g.add_argument("--json", action="store_true", help="print only the JSON line")


@contextmanager
def open_target(args: argparse.Namespace, nodes: int = 1) -> Iterator[Target]:
    if args.url:
        process = ServerProcess(args.server_pid) if args.server_pid else None
        yield Target(args.url.rstrip("/"), process, "external")
        return
    # A scenario may need processes beside the server, and server settings to
    # reach them (ai: its local provider): ``server_env(args)`` provides both.
    server_env = getattr(SCENARIOS[args.scenario], "server_env", None)
    with server_env(args) if server_env else nullcontext({}) as env:
        if args.server_src:
            path = [os.path.abspath(args.server_src), os.environ.get("PYTHONPATH", "")]
            env = {**env, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
        with spawn_nodes(nodes, args.database, args.redis, env) as target:
            yield target


def run(args: argparse.Namespace) -> dict[str, Any]:
    scenario = SCENARIOS[args.scenario]
    try:
        counts = parse_counts(args.nodes)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if counts != [1]:
        if not hasattr(scenario, "RATE"):
            raise SystemExit(
                f"--nodes above 1 is for the rooms and fanout scenarios, not {args.scenario}"
            )
        if args.url:
            raise SystemExit("--nodes spawns the nodes: it cannot be used with --url")
    if len(counts) == 1:
        return _run_once(args, counts[0])
    results = [_run_once(args, n) for n in counts]
    ratio = compare(results, scenario.RATE)
    if not args.json:
        print(
            "  ".join(
                f"{r['nodes']} node(s): {r[scenario.RATE]} {scenario.RATE}"
                f" (server cores {r.get('server_cores')})"
                for r in results
            )
        )
        print(table(ratio))
    print(json.dumps({"scenario": args.scenario, "runs": len(results), **ratio}))
    return {"runs": results, **ratio}


def _run_once(args: argparse.Namespace, nodes: int) -> dict[str, Any]:
    scenario = SCENARIOS[args.scenario]
    # Other work on the host skews every figure: say how busy it was.
    load_before = round(os.getloadavg()[0], 2)
    with open_target(args, nodes) as target:
        result = trio.run(scenario.run, args, target)
    data: dict[str, Any] = {
        "scenario": args.scenario,
        "database": target.database,
        "nodes": nodes,
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
        **result,
    }
    if args.profile and args.profile.endswith(".txt") and os.path.exists(args.profile):
        data["profile"] = profile_summary(args.profile)
    if not args.json:
        print(table({k: v for k, v in data.items() if k != "profile"}))
        for kind, lines in data.get("profile", {}).items():
            if kind != "samples":
                print(f"--- server profile, {kind} time")
                print("\n".join(lines))
    print(json.dumps(data))
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="realtime-server bench")
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
