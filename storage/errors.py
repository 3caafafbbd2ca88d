"""Storage errors (hierarchy in storage.base's docstring)."""

from __future__ import annotations


class StoreError(Exception):
    """The database failed or refused; the caller should answer 'unavailable'."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """A uniqueness rule was broken; ``field`` names which (email, username, seq, cid)."""

    def __init__(self, field: str, message: str | None = None):
        self.field = field
        super().__init__(message or f"{field} already exists")


class MigrationError(StoreError):
    pass
