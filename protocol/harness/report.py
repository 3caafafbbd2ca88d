"""Summaries a reader can trust: percentiles, CPU shares, a plain table.

Every scenario reports the CPU the server and the harness (parent plus worker
processes) spent during the measured phase, and the cores that is (CPU
seconds / wall seconds): on a 2-core machine shared by both, a harness using
most of a core is part of the result, and the reader should see it.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.harness.server import ProcessGroup, ServerProcess
from protocol.harness.workers import process_cpu_seconds


def percentiles(samples: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """p50/p95/p99/max of ``samples`` divided by ``scale`` (1e6: ns -> ms)."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / scale, 3)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1] / scale, 3),
        "n": len(ordered),
    }


def ns_to_ms(samples: Sequence[float]) -> dict[str, float]:
    return percentiles(samples, 1e6)


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def add_up(replies: Iterable[dict[str, Any]], *keys: str) -> dict[str, int]:
    replies = list(replies)
    return {k: sum(int(r[k]) for r in replies) for k in keys}


def first_error(replies: Iterable[dict[str, Any]]) -> str:
    return next((r["first_error"] for r in replies if r.get("first_error")), "")


@dataclass
class Usage:
    wall_s: float
    server_cpu_s: float | None
    harness_cpu_s: float
    node_cpu_s: list[float] | None = None  # each node's share (--nodes N > 1)

    def as_dict(self) -> dict[str, Any]:
        def cores(cpu: float | None) -> float | None:
            return None if cpu is None or self.wall_s <= 0 else round(cpu / self.wall_s, 2)

        each = {}
        if self.node_cpu_s is not None:
            each = {
                "node_cpu_s": [round(c, 2) for c in self.node_cpu_s],
                "node_cores": [cores(c) for c in self.node_cpu_s],
            }
        return {
            "wall_s": round(self.wall_s, 3),
            "server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 2),
            "server_cores": cores(self.server_cpu_s),
            **each,
            "harness_cpu_s": round(self.harness_cpu_s, 2),
            "harness_cores": cores(self.harness_cpu_s),
        }


class Meter:
    """CPU of the server and of the harness over one measured phase."""

    def __init__(self, server: ServerProcess | None, harness_pids: Callable[[], list[int]]) -> None:
        self._server = server
        self._pids = harness_pids
        self._t0 = 0.0
        self._server0: float | None = None
        self._each0: list[float] | None = None
        self._harness0 = 0.0

    def _harness(self) -> float:
        total = 0.0
        for pid in [os.getpid(), *self._pids()]:
            try:
                total += process_cpu_seconds(pid)
            except OSError:
                pass
        return total

    def start(self) -> None:
        self._server0 = self._server.cpu_seconds() if self._server else None
        if isinstance(self._server, ProcessGroup):
            self._each0 = self._server.each_cpu_seconds()
        self._harness0 = self._harness()
        self._t0 = time.monotonic()

    def stop(self) -> Usage:
        wall = time.monotonic() - self._t0
        server = (
            self._server.cpu_seconds() - self._server0
            if self._server and self._server0 is not None
            else None
        )
        each = None
        if isinstance(self._server, ProcessGroup) and self._each0 is not None:
            now = self._server.each_cpu_seconds()
            each = [b - a for a, b in zip(self._each0, now, strict=True)]
        return Usage(wall, server, self._harness() - self._harness0, each)


def table(rows: dict[str, Any]) -> str:
    """One ``name  value`` line per entry; nested dicts become ``name.key`` lines."""
    flat: dict[str, Any] = {}
    for key, value in rows.items():
        if isinstance(value, dict) and value:
            for sub, inner in value.items():
                flat[f"{key}.{sub}"] = inner
        else:
            flat[key] = value
    width = max(len(k) for k in flat)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in flat.items())


def profile_summary(path: str, top: int = 15) -> dict[str, list[str]]:
    """The hottest functions of a py-spy ``raw`` (collapsed stacks) file.

    ``self`` is where samples were taken; ``inclusive`` counts a function
    once per sample it is anywhere on the stack.
    """
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            names = stack.split(";")
            own[names[-1]] += n
            for name in set(names):
                inclusive[name] += n
    if not total:
        return {"self": [], "inclusive": []}

    def lines(counter: collections.Counter[str]) -> list[str]:
        return [f"{100 * n / total:5.1f}% {name}" for name, n in counter.most_common(top)]

    return {"samples": [str(total)], "self": lines(own), "inclusive": lines(inclusive)}
