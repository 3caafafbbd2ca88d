"""The server under test: a throwaway one spawned for the run, or one given by URL.

``spawn_server`` runs ``realtime-server serve`` in a child process on a fresh
database: a temporary SQLite file (the embedded default), or a new schema in
a PostgreSQL database (selected with ``?search_path=``, as the test-suite
does) that is dropped afterwards. Benchmark users are throwaway, so it hashes
their passwords with argon2's cheapest settings. Before spawning, the harness
raises its own open-files limit; the child inherits it, so the server can
hold as many connections as the host allows.

``ServerProcess`` reads what the reports need from /proc: CPU time and RSS.
``profile`` samples it with py-spy while a scenario's measured phase runs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from protocol.harness.workers import process_cpu_seconds, raise_open_files_limit

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    """The server-level DSN ``--database postgres`` uses.

    Env BENCH_POSTGRES_DSN, else TEST_POSTGRES_DSN (the test-suite's), else the local default.
    """
    return os.environ.get(
        "BENCH_POSTGRES_DSN", os.environ.get("TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)
    )


@dataclass(frozen=True)
class ServerProcess:
    """A server process on this host that the harness may watch."""

    pid: int

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


@dataclass(frozen=True)
class ProcessGroup(ServerProcess):
    """Several node processes measured as one server (``--nodes N``).

    CPU and RSS add up over the nodes; ``pid`` is node 0's (what ``--profile``
    samples); ``each_cpu_seconds`` gives the nodes one by one.
    """

    members: tuple[ServerProcess, ...] = ()

    def cpu_seconds(self) -> float:
        return sum(m.cpu_seconds() for m in self.members)

    def each_cpu_seconds(self) -> list[float]:
        return [m.cpu_seconds() for m in self.members]

    def rss_bytes(self) -> int:
        return sum(m.rss_bytes() for m in self.members)


@dataclass(frozen=True)
class Target:
    """Where the scenario connects, and the server process when it is known."""

    url: str  # http://host:port
    process: ServerProcess | None = None
    database: str = ""  # what the spawned server runs on, for the report
    # ``--nodes N`` with N > 1: one Target per node (``url`` is node 0's).
    nodes: tuple[Target, ...] = ()

    @property
    def node_targets(self) -> tuple[Target, ...]:
        """The nodes clients are spread over: this one alone unless several run."""
        return self.nodes or (self,)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_search_path(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def pg_execute(dsn: str, sql: str) -> None:
    # Runs outside any trio run (before and after a scenario, or in test set-up):
    # plain asyncio is enough. Shared with tests/conftest.py.
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def fresh_database(kind: str, tmp: str) -> Iterator[str]:
    """A ``DATABASE_URL`` on an empty database of ``kind`` (sqlite or postgres)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r} (sqlite or postgres)")
    dsn = postgres_dsn()
    schema = f"bench_{secrets.token_hex(6)}"
    pg_execute(dsn, f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(dsn, schema)
    finally:
        pg_execute(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def spawn_server(
    database: str = "sqlite", extra_env: dict[str, str] | None = None, *, quiet: bool = False
) -> Iterator[Target]:
    """Run ``realtime-server serve`` on a fresh ``database`` until the block ends."""
    raise_open_files_limit()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        with fresh_database(database, tmp) as database_url:
            env = bench_env(port, Path(tmp) / "data", database_url)
            env.update(extra_env or {})
            cmd = serve_command()
            out = subprocess.DEVNULL if quiet else None
            proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=out, stderr=out)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, proc)
                yield Target(url, ServerProcess(proc.pid), database)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def serve_command() -> list[str]:
    """``realtime-server serve`` of this interpreter's environment."""
    exe = Path(sys.executable).parent / "realtime-server"
    if exe.exists():
        return [str(exe), "serve"]
    return [sys.executable, "-m", "realtime_server.cli", "serve"]


def bench_env(port: int, data_dir: Path, database_url: str) -> dict[str, str]:
    """The environment of a benchmark server: this one's, minus what must not leak in."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "JWT_SECRET"}}
    env.update(
        PORT=str(port),
        HOST="127.0.0.1",
        DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        # Benchmark users are throwaway: do not spend CPU hashing their passwords.
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        # One harness client stands in for many people (a publisher
        # sends 1,000 messages as fast as acks allow): no per-connection limit.
        RATE_LIMIT_FRAMES_PER_SECOND="0",
        # Every harness user signs up and in from 127.0.0.1: the
        # per-address sign-in limits are not what is measured.
        REGISTER_PER_IP="100000000",
        LOGIN_PER_IP="100000000",
        REFRESH_PER_IP="100000000",
        LOG_LEVEL="WARNING",
    )
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the benchmark server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark server did not become ready in 60s")
        time.sleep(0.1)


@contextmanager
def profile(process: ServerProcess | None, path: str | None) -> Iterator[None]:
    """Sample ``process`` with py-spy into ``path`` while the block runs.

    ``.txt`` gives collapsed stacks (``report.profile_summary`` reads them),
    ``.json`` speedscope, anything else a flame graph SVG.
    """
    if not path or process is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    fmt = (
        "raw" if path.endswith(".txt") else "speedscope" if path.endswith(".json") else "flamegraph"
    )
    # --nonblocking: never pause the server to sample (pausing adds latency of its own).
    cmd = [spy, "record", "--nonblocking", "--pid", str(process.pid), "--rate", "250"]
    cmd += ["--format", fmt]
    proc = subprocess.Popen(
        [*cmd, "--output", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(0.5)  # attached before the measured phase starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode not in (0, -signal.SIGINT) and not Path(path).exists():
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
