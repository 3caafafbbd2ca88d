"""Group management storage: members and roles, name, description and avatar.

Rooms and their member rows are created by ``Store.create_room``; this module
changes them afterwards. Rules the SQL itself enforces, so two admins racing
cannot break them:
- the owner's row is never deleted or re-roled here (``remove_member`` and
  ``set_role`` skip it and report that nothing changed);
- a role changes only from the role the caller saw (``set_role(..., was=)``),
  so a promote racing a demote cannot undo the other silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .base import Store

ROLES = ("owner", "admin", "member")


@dataclass(frozen=True, slots=True)
class GroupProfile:
    room_id: str
    description: str = ""
    avatar_media_id: str | None = None


class GroupStore(Protocol):
    async def add_members(self, room_id: str, user_ids: Sequence[str], at: int) -> list[str]:
        """Add as plain members; returns those newly added (existing members are skipped)."""

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        """Delete a non-owner member row; False if absent or the owner."""

    async def set_role(self, room_id: str, user_id: str, role: str, *, was: str) -> bool:
        """Change a non-owner's role from ``was`` to ``role``; False if it was not ``was``."""

    async def rename(self, room_id: str, name: str) -> None: ...
    async def get_profile(self, room_id: str) -> GroupProfile: ...

    async def set_profile(
        self, room_id: str, *, description: str | None = None, avatar_media_id: str | None = None
    ) -> GroupProfile:
        """Change the given fields (None leaves a field as is); returns the stored profile."""


def group_store(store: Store) -> GroupStore:
    if store.backend == "sqlite":
        from .groups_sqlite import SqliteGroupStore

        return SqliteGroupStore(store)  # type: ignore[arg-type]
    from .groups_postgres import PostgresGroupStore

    return PostgresGroupStore(store)  # type: ignore[arg-type]
