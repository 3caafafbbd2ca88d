"""Start a throwaway server for a benchmark run, and read its CPU time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class SpawnedServer:
    url: str
    pid: int
    data_dir: str

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def spawn_server(extra_env: dict[str, str] | None = None) -> Iterator[SpawnedServer]:
    """Run ``realtime-server serve`` on a fresh SQLite file until the block ends."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "JWT_SECRET"}}
        env.update(
            PORT=str(port),
            HOST="127.0.0.1",
            DATA_DIR=str(Path(tmp) / "data"),
            DATABASE_URL=f"sqlite:///{tmp}/bench.db",
            # Benchmark users are throwaway: do not spend seconds hashing their passwords.
            ARGON2_TIME_COST="1",
            ARGON2_MEMORY_KIB="1024",
            LOG_LEVEL="WARNING",
            # A load generator is, by design, a flood: lift the per-connection limit.
            RATE_LIMIT_FRAMES_PER_SECOND="0",
        )
        env.update(extra_env or {})
        exe = Path(sys.executable).parent / "realtime-server"
        cmd = (
            [str(exe), "serve"]
            if exe.exists()
            else [sys.executable, "-m", "realtime_server.cli", "serve"]
        )
        proc = subprocess.Popen(cmd, env=env, cwd=tmp)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("benchmark server did not start")
                time.sleep(0.1)
            yield SpawnedServer(url, proc.pid, str(Path(tmp) / "data"))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
