"""``realtime-server bench`` as README runs it: a spawned server, a table, a JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXE = Path(sys.executable).parent / "realtime-server"


def bench(*argv: str, env: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    done = subprocess.run(
        [str(EXE), "bench", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return done.stdout, json.loads(lines[-1])


def test_every_scenario_is_a_documented_subcommand():
    done = subprocess.run([str(EXE), "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for name in ("fanout", "rooms", "connections", "resume"):
        assert name in done.stdout


def test_fanout_spawns_its_own_server_and_prints_a_table_and_json():
    out, data = bench("fanout", "--members", "4", "--messages", "10", "--warmup", "1")
    assert out.startswith("scenario ")
    assert "deliveries_per_s" in out and "latency_ms.p99" in out
    assert (data["scenario"], data["database"], data["complete"]) == ("fanout", "sqlite", True)
    assert (data["deliveries"], data["acks"]) == (40, 10)
    # The spawned server is known, so its CPU is reported beside the harness's.
    assert data["server_cpu_s"] is not None and data["harness_cpu_s"] is not None
    assert data["cpus"] == os.cpu_count()


def _bench_schemas(dsn: str) -> set[str]:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> set[str]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT schema_name FROM information_schema.schemata"
                " WHERE schema_name LIKE 'bench\\_%'"
            )
            return {r[0] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(run())


# It compares the server's bench_ schemas before and after: under pytest-xdist it
# runs on the worker of the other tests that make some (README's --dist loadgroup).
@pytest.mark.xdist_group("bench_schemas")
def test_rooms_runs_on_a_fresh_postgres_schema_and_drops_it(postgres_dsn: str):
    before = _bench_schemas(postgres_dsn)
    _, data = bench(
        "rooms",
        "--database",
        "postgres",
        "--rooms",
        "2",
        "--members",
        "2",
        "--messages",
        "3",
        "--json",
        env={"BENCH_POSTGRES_DSN": postgres_dsn},
    )
    assert (data["database"], data["acked"], data["deliveries"]) == ("postgres", 12, 12)
    assert data["complete"] is True
    assert _bench_schemas(postgres_dsn) == before
