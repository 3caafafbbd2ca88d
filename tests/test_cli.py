"""README's run command: the installed `realtime-server` serves with zero set-up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

EXE = Path(sys.executable).parent / "realtime-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_migrate_applies_the_migrations_once(tmp_path: Path):
    env = {**os.environ, "DATABASE_URL": "sqlite:///db/x.db"}
    first = subprocess.run(
        [EXE, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = subprocess.run(
        [EXE, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0
    assert second.stdout.startswith("0 applied")


def test_serve_starts_on_an_empty_directory_and_stops_cleanly_on_sigterm(tmp_path: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "JWT_SECRET"}}
    env.update(PORT=str(port), ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="1024")
    proc = subprocess.Popen(
        [EXE, "serve"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        r = httpx.post(
            f"{base}/auth/register",
            json={"email": "ada@example.com", "username": "ada", "password": "correct horse"},
        )
        assert r.status_code == 201, r.text
        assert (tmp_path / "data" / "realtime.db").exists()
        assert (tmp_path / "data" / "jwt.secret").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
