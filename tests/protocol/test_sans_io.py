"""The frame types, codec, errors, version and schema modules do no I/O.

Checked in a fresh interpreter, since this test process has long imported trio.
"""

from __future__ import annotations

import json
import subprocess
import sys

SANS_IO_MODULES = [
    "protocol",
    "protocol.frames",
    "protocol.codec",
    "protocol.errors",
    "protocol.version",
    "protocol.schema",
]
# Top-level packages these modules must not pull in, even indirectly.
FORBIDDEN = {
    "trio",
    "trio_websocket",
    "trio_asyncio",
    "wsproto",
    "asyncpg",
    "storage",
    "actors",
    "realtime_server",
    "bridge",
}

_PROBE = f"""
import importlib, json, sys
for name in {SANS_IO_MODULES!r}:
    importlib.import_module(name)
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_sans_io_modules_import_no_io_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "protocol" in loaded
    assert loaded & FORBIDDEN == set()
