"""``--nodes N``: the harness runs N node processes as one service (issue 13).

``spawn_nodes`` starts N ``realtime-server serve`` processes on loopback,
each on its own port, on one fresh PostgreSQL schema and one Redis (under a
prefix unique to the run), with one JWT secret, so a token issued by one node
is good on every other, as behind a load balancer. Each node runs one process
(WORKERS=1): the point is to measure what N nodes give, with the CPU of each.

One node is today's single-node server (``spawn_server``, no Redis): the
baseline a second node is compared with.

``parse_counts`` reads ``--nodes``: ``2`` runs once, ``1,2`` runs once per
count and ``compare`` prints the ratio of the scenario's rate.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from protocol.harness.server import (
    ProcessGroup,
    ServerProcess,
    Target,
    bench_env,
    fresh_database,
    serve_command,
    spawn_server,
    wait_ready,
)
from protocol.harness.workers import raise_open_files_limit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def parse_counts(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; raises ValueError on anything but positive integers."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--nodes takes a count or a comma list of counts, got {text!r}") from None
    if not counts or any(n < 1 for n in counts):
        raise ValueError(f"--nodes counts must be positive, got {text!r}")
    return counts


def _distinct_free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def spawn_nodes(
    count: int,
    database: str,
    redis_url: str = DEFAULT_REDIS_URL,
    extra_env: dict[str, str] | None = None,
    *,
    quiet: bool = False,
) -> Iterator[Target]:
    """Run ``count`` nodes until the block ends; the Target lists each in ``nodes``."""
    if count == 1:
        with spawn_server(database, extra_env, quiet=quiet) as target:
            yield target
        return
    if database != "postgres":
        raise SystemExit(
            f"--nodes {count} needs --database postgres: nodes share their rooms through "
            "PostgreSQL (the embedded SQLite file belongs to one process)"
        )
    raise_open_files_limit()
    prefix = f"bench{secrets.token_hex(4)}:"
    secret = secrets.token_urlsafe(48)
    with (
        tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp,
        fresh_database(database, tmp) as database_url,
        ExitStack() as running,
    ):
        procs: list[tuple[int, subprocess.Popen[bytes]]] = []
        for i, port in enumerate(_distinct_free_ports(count)):
            env = bench_env(port, Path(tmp) / f"node{i}", database_url)
            env.update(
                JWT_SECRET=secret,
                REDIS_URL=redis_url,
                REDIS_PREFIX=prefix,
                NODE_ID=f"bench{i}",
                WORKERS="1",
            )
            env.update(extra_env or {})
            out = subprocess.DEVNULL if quiet else None
            proc = subprocess.Popen(serve_command(), env=env, cwd=tmp, stdout=out, stderr=out)
            running.callback(_stop, proc)
            procs.append((port, proc))
        nodes = []
        for port, proc in procs:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, proc)
            nodes.append(Target(url, ServerProcess(proc.pid), database))
        group = ProcessGroup(procs[0][1].pid, tuple(n.process for n in nodes if n.process))
        yield Target(nodes[0].url, group, f"{database}, {count} nodes", tuple(nodes))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def spread(items: list[Any], target: Target, procs: int) -> list[tuple[Target, list[Any]]]:
    """Deal ``items`` round-robin over the nodes (item i to node i % N), then each
    node's share over ``procs / N`` worker processes (at least one per node)."""
    nodes = target.node_targets
    per_node = max(1, procs // len(nodes))
    jobs: list[tuple[Target, list[Any]]] = []
    for i, node in enumerate(nodes):
        share = items[i :: len(nodes)]
        if not share:
            continue
        parts = max(1, min(per_node, len(share)))
        jobs.extend((node, share[p::parts]) for p in range(parts))
    return jobs


def compare(results: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The rate ``key`` of each run against the first one's (``--nodes 1,2``)."""
    base = results[0]
    out: dict[str, Any] = {"compared": key, "base_nodes": base["nodes"]}
    for r in results[1:]:
        ratio = r[key] / base[key] if base[key] else None
        out[f"ratio_{r['nodes']}_vs_{base['nodes']}"] = None if ratio is None else round(ratio, 3)
    return out
