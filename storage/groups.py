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

from storage.sql.database import Database

from .base import Store

ROLES = ("owner", "admin", "member")


@dataclass(frozen=True, slots=True)
class GroupProfile:
    room_id: str
    description: str = ""
    avatar_media_id: str | None = None


class GroupStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_members(self, room_id: str, user_ids: Sequence[str], at: int) -> list[str]:
        """Add as plain members; returns those newly added (existing members are skipped)."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        d = self._db.dialect
        # One statement for the whole list. SQLite needs the WHERE: without
        # it, ON CONFLICT after a SELECT would parse as a join's ON.
        rows = await self._db.fetch(
            "INSERT INTO room_members (room_id, user_id, role, read_seq, joined_at)"
            f" SELECT ?, value, 'member', 0, ? FROM {d.unnest()} WHERE TRUE"
            " ON CONFLICT DO NOTHING RETURNING user_id",
            (room_id, at, d.array(ids)),
            write=True,
        )
        added = {r[0] for r in rows}
        return [u for u in ids if u in added]

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        """Delete a non-owner member row; False if absent or the owner."""
        removed = await self._db.execute(
            "DELETE FROM room_members WHERE room_id = ? AND user_id = ? AND role <> 'owner'",
            (room_id, user_id),
        )
        return removed > 0

    async def set_role(self, room_id: str, user_id: str, role: str, *, was: str) -> bool:
        """Change a non-owner's role from ``was`` to ``role``; False if it was not ``was``."""
        changed = await self._db.execute(
            "UPDATE room_members SET role = ?"
            " WHERE room_id = ? AND user_id = ? AND role = ? AND role <> 'owner'",
            (role, room_id, user_id, was),
        )
        return changed > 0

    async def rename(self, room_id: str, name: str) -> None:
        await self._db.execute("UPDATE rooms SET name = ? WHERE id = ?", (name, room_id))

    async def get_profile(self, room_id: str) -> GroupProfile:
        row = await self._db.fetchone(
            "SELECT description, avatar_media_id FROM group_profiles WHERE room_id = ?",
            (room_id,),
        )
        return GroupProfile(room_id) if row is None else GroupProfile(room_id, *row)

    async def set_profile(
        self, room_id: str, *, description: str | None = None, avatar_media_id: str | None = None
    ) -> GroupProfile:
        """Change the given fields (None leaves a field as is); returns the stored profile."""
        row = await self._db.fetchone(
            "INSERT INTO group_profiles AS g (room_id, description, avatar_media_id)"
            " VALUES (?, COALESCE(?, ''), ?)"
            " ON CONFLICT (room_id) DO UPDATE SET"
            " description = COALESCE(?, g.description),"
            " avatar_media_id = COALESCE(?, g.avatar_media_id)"
            " RETURNING description, avatar_media_id",
            (room_id, description, avatar_media_id, description, avatar_media_id),
            write=True,
        )
        assert row is not None  # an upsert with RETURNING always yields its row
        return GroupProfile(room_id, *row)


def group_store(store: Store) -> GroupStore:
    return GroupStore(store.db)
