"""Fixtures for the web-client tests (CORS, the /app bundle, the browser).

None of these tests is about storage, and the browser tests are the slowest
in the suite: they run on SQLite only (``database_url`` below overrides the
two-backend fixture of tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"
