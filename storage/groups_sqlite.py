"""``GroupStore`` on SQLite, through the main store's connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .groups import GroupProfile
from .sqlite import SqliteStore, _transaction


class SqliteGroupStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def add_members(self, room_id: str, user_ids: Sequence[str], at: int) -> list[str]:
        def run(c: sqlite3.Connection) -> list[str]:
            added = []
            with _transaction(c):
                for user_id in user_ids:
                    cur = c.execute(
                        "INSERT INTO room_members (room_id, user_id, role, read_seq, joined_at)"
                        " VALUES (?, ?, 'member', 0, ?) ON CONFLICT DO NOTHING",
                        (room_id, user_id, at),
                    )
                    if cur.rowcount:
                        added.append(user_id)
            return added

        return await self._store._write(run)

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        cur = await self._store._write(
            lambda c: c.execute(
                "DELETE FROM room_members WHERE room_id = ? AND user_id = ? AND role <> 'owner'",
                (room_id, user_id),
            )
        )
        return bool(cur.rowcount)

    async def set_role(self, room_id: str, user_id: str, role: str, *, was: str) -> bool:
        cur = await self._store._write(
            lambda c: c.execute(
                "UPDATE room_members SET role = ?"
                " WHERE room_id = ? AND user_id = ? AND role = ? AND role <> 'owner'",
                (role, room_id, user_id, was),
            )
        )
        return bool(cur.rowcount)

    async def rename(self, room_id: str, name: str) -> None:
        await self._store._write(
            lambda c: c.execute("UPDATE rooms SET name = ? WHERE id = ?", (name, room_id))
        )

    async def get_profile(self, room_id: str) -> GroupProfile:
        def run(c: sqlite3.Connection) -> GroupProfile:
            row = c.execute(
                "SELECT description, avatar_media_id FROM group_profiles WHERE room_id = ?",
                (room_id,),
            ).fetchone()
            return GroupProfile(room_id) if row is None else GroupProfile(room_id, *row)

        return await self._store._read(run)

    async def set_profile(
        self, room_id: str, *, description: str | None = None, avatar_media_id: str | None = None
    ) -> GroupProfile:
        def run(c: sqlite3.Connection) -> GroupProfile:
            row = c.execute(
                "INSERT INTO group_profiles (room_id, description, avatar_media_id)"
                " VALUES (?, COALESCE(?, ''), ?)"
                " ON CONFLICT (room_id) DO UPDATE SET"
                " description = COALESCE(?, description),"
                " avatar_media_id = COALESCE(?, avatar_media_id)"
                " RETURNING description, avatar_media_id",
                (room_id, description, avatar_media_id, description, avatar_media_id),
            ).fetchone()
            return GroupProfile(room_id, *row)

        return await self._store._write(run)
