"""Summaries a reader can trust: percentiles and a plain table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 3)}


def table(rows: dict[str, Any]) -> str:
    width = max(len(k) for k in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows.items())
