"""``realtime-server bench SCENARIO`` (also ``python -m protocol.harness``)."""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from typing import Any

import trio

from protocol.harness.fanout import FanoutConfig, as_dict, run_fanout
from protocol.harness.report import table
from protocol.harness.server import spawn_server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="scenario", required=True)
    fan = sub.add_parser("fanout", help="one room, N members, M messages")
    fan.add_argument("--url", help="server to test (default: start one on a temporary SQLite file)")
    fan.add_argument("--members", type=int, default=200)
    fan.add_argument("--messages", type=int, default=1000)
    fan.add_argument(
        "--rate", type=float, default=0.0, help="messages/s; 0 = as fast as acks allow"
    )
    fan.add_argument("--procs", type=int, default=2, help="subscriber processes")
    fan.add_argument("--window", type=int, default=64, help="publisher messages in flight")
    fan.add_argument("--json", action="store_true", help="print only the JSON line")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.scenario != "fanout":
        raise SystemExit(f"unknown scenario {args.scenario}")
    spawned = spawn_server() if not args.url else nullcontext(None)
    with spawned as server:
        url = args.url or server.url
        config = FanoutConfig(
            url=url,
            members=args.members,
            messages=args.messages,
            rate=args.rate,
            procs=args.procs,
            window=args.window,
        )
        result = trio.run(run_fanout, config, server.cpu_seconds if server else None)
    data = {"scenario": "fanout", **as_dict(result)}
    if not args.json:
        print(table({k: v for k, v in data.items()}))
    print(json.dumps(data))
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="realtime-server bench")
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
