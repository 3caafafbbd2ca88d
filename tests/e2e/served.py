"""`realtime-server serve` as a real child process, for tests of process-level behaviour
(signals, descriptor limits) that an in-process node cannot show."""

from __future__ import annotations

import os
import resource
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

SERVE = [sys.executable, "-m", "realtime_server.cli", "serve"]


@dataclass
class Served:
    process: trio.Process
    port: int
    log: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _limit_descriptors(n: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    return apply


@asynccontextmanager
async def serve_process(
    database_url: str, data_dir: Path, *, max_fds: int | None = None, **settings: object
) -> AsyncIterator[Served]:
    """Start the server, wait until /health answers, yield; kill it if still running."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "JWT_SECRET": "test-secret-" + "x" * 32,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "SQLITE_SYNCHRONOUS": "NORMAL",
        "LOG_LEVEL": "INFO",
        **{k.upper(): str(v) for k, v in settings.items()},
    }
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the child starts
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            SERVE,
            env=env,
            stdout=out,
            stderr=out,
            cwd=str(data_dir),
            preexec_fn=_limit_descriptors(max_fds) if max_fds else None,
        )
    served = Served(process, port, log)
    try:
        with trio.fail_after(30):
            async with httpx.AsyncClient(base_url=served.http_url, timeout=2) as http:
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"serve exited early:\n{served.output()}")
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
