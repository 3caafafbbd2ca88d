"""Fixtures for the web-client tests (CORS, the /app bundle, the browser).

None of these tests is about storage, and the browser tests are the slowest
in the suite: they run on SQLite only (``database_url`` below overrides the
two-backend fixture of tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import IN_CI
from tests.web.live import LiveNode


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


# ----- the browser ------------------------------------------------------------------
# Debian's Chromium, driven by Playwright's Python API; nothing downloads a
# browser. Without /usr/bin/chromium these tests skip, except under CI=true,
# where they fail: CI must never go green by skipping the browser.

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    # A call needs a microphone: fake devices, and no permission prompt.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Two contexts on one host: plain host candidates instead of mDNS names.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message + " (CI=true: the browser tests must run, not skip)")
        pytest.skip(message)
    # Playwright's sync API runs a private asyncio loop. trio-asyncio (the
    # PostgreSQL store's bridge) installs its own loop policy process-wide once
    # used, and its loops refuse to be driven the way Playwright drives one:
    # use asyncio's default policy while the browser lives.
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield launched
            finally:
                launched.close()
    finally:
        asyncio.set_event_loop_policy(policy)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveNode]:
    with LiveNode(tmp_path) as node:
        yield node
