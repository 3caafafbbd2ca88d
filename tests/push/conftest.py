"""Fixtures of the push tests (issue 15, part 3): ``make_user`` from tests/storage."""

from __future__ import annotations

from tests.storage.conftest import make_user

__all__ = ["make_user"]
