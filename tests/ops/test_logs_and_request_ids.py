"""Request ids round trip; ``LOG_FORMAT=json`` logs one parsable object per line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.http.access import HEADER
from tests.e2e.helpers import auth, register

EXE = Path(sys.executable).parent / "realtime-server"
GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_a_sane_incoming_request_id_is_answered_back(http: httpx.AsyncClient) -> None:
    r = await http.get("/health", headers={HEADER: "edge-7f3a:42.b_c"})
    assert r.status_code == 200
    assert r.headers[HEADER] == "edge-7f3a:42.b_c"


@pytest.mark.parametrize(
    "given",
    ["", "x" * 65, "has space", "new\\nline", "<script>", "caf\u00e9"],
    ids=["empty", "too-long", "space", "backslash", "markup", "non-ascii"],
)
async def test_an_absent_or_odd_request_id_is_replaced_by_a_fresh_one(
    http: httpx.AsyncClient, given: str
) -> None:
    headers = {HEADER: given.encode()} if given else {}
    first = await http.get("/health", headers=headers)
    second = await http.get("/health", headers=headers)
    assert GENERATED.fullmatch(first.headers[HEADER])
    assert GENERATED.fullmatch(second.headers[HEADER])
    assert first.headers[HEADER] != second.headers[HEADER]


async def test_error_bodies_carry_the_request_id_of_their_header(http: httpx.AsyncClient) -> None:
    mine = await http.get("/rooms", headers={HEADER: "req-123"})  # no token: 401
    assert mine.status_code == 401
    assert mine.json()["error"]["request_id"] == "req-123" == mine.headers[HEADER]
    # Quart's own errors (unknown path, wrong method) too.
    for r in (await http.get("/nowhere"), await http.delete("/health")):
        assert r.status_code in (404, 405)
        assert r.json()["error"]["request_id"] == r.headers[HEADER]
    account = await register(http)
    ok = await http.get("/rooms", headers={**auth(account), HEADER: "req-456"})
    assert ok.status_code == 200 and ok.headers[HEADER] == "req-456"


# ----- the CLI, as an operator runs it ------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "JWT_SECRET"}}
    environ.update(PORT=str(port), ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="1024", **env)
    proc = subprocess.Popen(
        [EXE, "serve"], cwd=tmp_path, env=environ, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    text = proc.stderr.read()
    proc.stderr.close()
    return text


def test_json_logs_are_one_object_per_line_with_access_lines_and_request_ids(
    tmp_path: Path,
) -> None:
    proc, base = _serve(tmp_path, LOG_FORMAT="json")
    try:
        assert httpx.get(f"{base}/ready", headers={HEADER: "probe-1"}).status_code == 200
        # Google sign-in, Stripe and Konnect are not configured here: 503s we chose.
        r = httpx.get(f"{base}/auth/google/start", headers={HEADER: "probe-2"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_configured"
        account = {"email": "ada@example.com", "username": "ada", "password": "correct horse"}
        token = httpx.post(f"{base}/auth/register", json=account).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        for rid, path in (("probe-stripe", "stripe"), ("probe-konnect", "konnect")):
            r = httpx.post(
                f"{base}/billing/{path}/checkout",
                json={"plan": "basic"},
                headers={**bearer, HEADER: rid},
            )
            assert r.status_code == 503, r.text
    finally:
        stderr = _stop(proc)
    lines = [line for line in stderr.splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line parses
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    access = {r["request_id"]: r for r in records if r["logger"] == "bridge.access"}
    assert access["probe-1"]["method"] == "GET"
    assert access["probe-1"]["route"] == "/ready"
    assert access["probe-1"]["status"] == 200
    assert access["probe-1"]["duration_ms"] >= 0
    assert access["probe-2"]["status"] == 503
    # The not_configured answer: one WARNING line with its request id, no traceback.
    warned = [r for r in records if r.get("request_id") == "probe-2" and r["level"] != "INFO"]
    assert len(warned) == 1, warned
    assert warned[0]["level"] == "WARNING"
    assert "not_configured" in warned[0]["msg"]
    assert "exc" not in warned[0]
    for rid in ("probe-stripe", "probe-konnect"):
        mine = [r for r in records if r.get("request_id") == rid and r["level"] != "INFO"]
        assert [(r["level"], "exc" in r) for r in mine] == [("WARNING", False)], mine
        assert "not configured" in mine[0]["msg"]
    assert not any("Traceback" in line for line in lines)
    assert any(r["msg"].startswith("serving REST on") for r in records)


def test_text_logs_stay_readable_and_carry_the_access_line(tmp_path: Path) -> None:
    proc, base = _serve(tmp_path)
    try:
        httpx.get(f"{base}/health", headers={HEADER: "probe-3"})
    finally:
        stderr = _stop(proc)
    assert re.search(r" INFO bridge\.access: GET /health 200 [0-9.]+ms", stderr)


def test_a_bad_log_format_is_refused_at_start(tmp_path: Path) -> None:
    r = subprocess.run(
        [EXE, "serve"],
        cwd=tmp_path,
        env={**os.environ, "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "LOG_FORMAT must be text or json" in r.stderr


def test_version_prints_the_installed_version() -> None:
    from importlib import metadata

    r = subprocess.run([EXE, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"realtime-server {metadata.version('realtime-server')}"


async def test_the_docs_page_is_served_by_the_node_itself(http: httpx.AsyncClient) -> None:
    r = await http.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    # Everything it needs is inline or this server's own: no CDN, no other host.
    assert 'fetch("openapi.json")' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "https://" not in page and "http://" not in page
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    spec = await http.get("/openapi.json")
    assert "/docs" in spec.json()["paths"] and "/metrics" in spec.json()["paths"]
