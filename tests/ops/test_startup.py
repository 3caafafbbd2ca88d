"""A node starts without loading what it does not use (issue 17: ready in under 1 s).

Measured with `python -X importtime` and process start -> first /health
answer (README, Operations). What is pinned here is the cause: a default node
(no Stripe, Konnect, Google, Twilio, SendGrid or AI provider configured) never
imports those SDKs, Pillow, phonenumbers or the load harness while starting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NOT_AT_START = (
    "stripe",
    "requests",
    "openai",
    "pydantic",
    "PIL",
    "phonenumbers",
    "httpx",
    "twilio",
    "sendgrid",
    "aiortc",
    "asyncpg",
    "protocol.harness",
    "trio_websocket",
    "coredis",  # the Redis bus: only with REDIS_URL (issue 13)
)

_SCRIPT = """
import json, os, sys, tempfile
wanted = json.loads(sys.argv[1])
import realtime_server.cli  # what the console script imports first
# The CLI's own path (argument parsing included), on a command that needs no harness.
os.environ["DATABASE_URL"] = "sqlite:///cli.db"
assert realtime_server.cli.main(["migrate"]) == 0
import trio
from realtime_server.node import open_node
from realtime_server.base.settings import Settings

async def main():
    with tempfile.TemporaryDirectory() as d:
        settings = Settings(port=0, database_url=f"sqlite:///{d}/x.db", data_dir=d)
        async with open_node(settings) as node:
            stream = await trio.open_tcp_stream("127.0.0.1", node.port)
            await stream.send_all(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            head = await stream.receive_some(64)
            await stream.aclose()
    loaded = [m for m in wanted if m in sys.modules]
    print(json.dumps({"status": head.split(b" ")[1].decode(), "loaded": loaded}))

trio.run(main)
"""


def test_a_default_node_serves_health_without_importing_unused_sdks(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(NOT_AT_START)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result == {"status": "200", "loaded": []}
