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


class Fenced(Conflict):
    """The writer no longer holds the lease of these rooms (issue 13): nothing
    was stored. A refusal about this write, not an outage."""

    def __init__(self, rooms: list[str]):
        self.rooms = rooms
        super().__init__("lease", f"this node no longer holds the lease of {', '.join(rooms)}")


class MigrationError(StoreError):
    pass
