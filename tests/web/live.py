"""A whole node (and a local OpenAI-compatible server) in a thread of its own.

The browser tests drive Playwright's synchronous API from the test's thread,
so the node cannot share a trio loop with them: it gets its own ``trio.run``
in a background thread, started and stopped from the test.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import trio

from protocol.harness.openai_local import open_fake_openai, providers_setting
from realtime_server.node import open_node
from tests.conftest import test_settings

# Long enough to watch it stream and to stop it halfway: 40 words, 0.1 s apart.
AI_REPLY = " ".join(f"word{i}" for i in range(1, 41))
AI_DELAY = 0.1


class LiveNode:
    """``with LiveNode(tmp_path) as node: node.url``: REST, /ws and /app on one port."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self._tmp = tmp_path
        self._overrides = overrides
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-node", daemon=True)
        self.url = ""

    def __enter__(self) -> LiveNode:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the node did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("the node failed to start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the test's thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with open_fake_openai(reply=AI_REPLY, delay=AI_DELAY) as fake:
            settings = test_settings(
                f"sqlite:///{self._tmp}/web.db",
                self._tmp / "data",
                ai_providers=providers_setting(fake),
                ai_default_model="test-model",
                plan_free_ai_monthly=100,
                plan_free_models="*",
                # A quick presence change, and quick detection of a dead socket.
                presence_grace=0.5,
                presence_throttle=0.2,
                heartbeat_interval=1.0,
                heartbeat_timeout=1.0,
                **self._overrides,
            )
            async with open_node(settings) as node:
                self.url = node.http_url
                self._ready.set()
                await self._stop.wait()
