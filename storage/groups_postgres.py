"""``GroupStore`` on PostgreSQL, through the main store's pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .groups import GroupProfile
from .postgres import PostgresStore


class PostgresGroupStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def add_members(self, room_id: str, user_ids: Sequence[str], at: int) -> list[str]:
        rows = await self._store._run(
            self._pool.fetch,
            "INSERT INTO room_members (room_id, user_id, role, read_seq, joined_at)"
            " SELECT $1, u, 'member', 0, $3 FROM unnest($2::text[]) AS u"
            " ON CONFLICT DO NOTHING RETURNING user_id",
            room_id,
            list(user_ids),
            at,
        )
        added = {r[0] for r in rows}
        return [u for u in user_ids if u in added]

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        status = await self._store._run(
            self._pool.execute,
            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 AND role <> 'owner'",
            room_id,
            user_id,
        )
        return _count(status) > 0

    async def set_role(self, room_id: str, user_id: str, role: str, *, was: str) -> bool:
        status = await self._store._run(
            self._pool.execute,
            "UPDATE room_members SET role = $1"
            " WHERE room_id = $2 AND user_id = $3 AND role = $4 AND role <> 'owner'",
            role,
            room_id,
            user_id,
            was,
        )
        return _count(status) > 0

    async def rename(self, room_id: str, name: str) -> None:
        await self._store._run(
            self._pool.execute, "UPDATE rooms SET name = $1 WHERE id = $2", name, room_id
        )

    async def get_profile(self, room_id: str) -> GroupProfile:
        row = await self._store._run(
            self._pool.fetchrow,
            "SELECT description, avatar_media_id FROM group_profiles WHERE room_id = $1",
            room_id,
        )
        return GroupProfile(room_id) if row is None else GroupProfile(room_id, *row)

    async def set_profile(
        self, room_id: str, *, description: str | None = None, avatar_media_id: str | None = None
    ) -> GroupProfile:
        row: Any = await self._store._run(
            self._pool.fetchrow,
            "INSERT INTO group_profiles AS g (room_id, description, avatar_media_id)"
            " VALUES ($1, COALESCE($2, ''), $3)"
            " ON CONFLICT (room_id) DO UPDATE SET"
            " description = COALESCE($2, g.description),"
            " avatar_media_id = COALESCE($3, g.avatar_media_id)"
            " RETURNING description, avatar_media_id",
            room_id,
            description,
            avatar_media_id,
        )
        return GroupProfile(room_id, *row)


def _count(status: str) -> int:
    # asyncpg answers a command tag such as "DELETE 1" / "UPDATE 0".
    return int(status.rsplit(" ", 1)[-1])
