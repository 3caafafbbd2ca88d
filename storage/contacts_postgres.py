"""``ContactsStore`` on PostgreSQL, through the main ``PostgresStore``'s pool."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg  # type: ignore[import-untyped]

from .contacts import (
    CARD_COLUMNS,
    ContactEntry,
    UserCard,
    card_from_row,
    direct_key,
    like_escape,
)
from .postgres import PostgresStore

# Whether the listed user (u) has the viewer ($1) in their contacts.
_KNOWS_VIEWER = "EXISTS (SELECT 1 FROM contacts k WHERE k.owner_id = u.id AND k.contact_id = $1)"
_CONTACT_SELECT = (
    f"{CARD_COLUMNS}, {_KNOWS_VIEWER}, o.name, o.created_at"
    " FROM contacts o JOIN users u ON u.id = o.contact_id"
)
_NOT_BLOCKING_VIEWER = (
    "NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $1)"
)
# ASCII-only folding, exactly like SQLite's lower() (see storage.contacts).
_FOLDED_NAME = 'lower(u.display_name COLLATE "C")'


class PostgresContacts:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def add_contact(self, owner_id: str, contact_id: str, name: str, at: int) -> bool:
        # xmax = 0 only on a freshly inserted row: tells insert from update in one statement.
        created = await self._store._run(
            self._pool.fetchval,
            "INSERT INTO contacts (owner_id, contact_id, name, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (owner_id, contact_id) DO UPDATE SET name = excluded.name"
            " RETURNING (xmax = 0)",
            owner_id,
            contact_id,
            name,
            at,
        )
        return bool(created)

    async def remove_contact(self, owner_id: str, contact_id: str) -> bool:
        status = await self._store._run(
            self._pool.execute,
            "DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2",
            owner_id,
            contact_id,
        )
        return bool(status == "DELETE 1")

    async def get_contact(self, owner_id: str, contact_id: str) -> ContactEntry | None:
        row = await self._store._run(
            self._pool.fetchrow,
            f"SELECT {_CONTACT_SELECT} WHERE o.owner_id = $1 AND o.contact_id = $2",
            owner_id,
            contact_id,
        )
        return None if row is None else ContactEntry(card_from_row(row), row[6], row[7])

    async def list_contacts(self, owner_id: str, *, limit: int, offset: int) -> list[ContactEntry]:
        if limit <= 0:
            return []
        rows = await self._store._run(
            self._pool.fetch,
            f"SELECT {_CONTACT_SELECT}"
            " WHERE o.owner_id = $1"
            " ORDER BY lower((CASE WHEN o.name <> '' THEN o.name ELSE u.display_name END)"
            ' COLLATE "C"), u.id COLLATE "C"'
            " LIMIT $2 OFFSET $3",
            owner_id,
            limit,
            max(offset, 0),
        )
        return [ContactEntry(card_from_row(r), r[6], r[7]) for r in rows]

    async def is_contact(self, owner_id: str, other_id: str) -> bool:
        found = await self._store._run(
            self._pool.fetchval,
            "SELECT 1 FROM contacts WHERE owner_id = $1 AND contact_id = $2",
            owner_id,
            other_id,
        )
        return found is not None

    async def contact_ids(self, owner_id: str) -> list[str]:
        rows = await self._store._run(
            self._pool.fetch, "SELECT contact_id FROM contacts WHERE owner_id = $1", owner_id
        )
        return [r[0] for r in rows]

    async def block(self, blocker_id: str, blocked_id: str, at: int) -> bool:
        status = await self._store._run(
            self._pool.execute,
            "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
            blocker_id,
            blocked_id,
            at,
        )
        return bool(status == "INSERT 0 1")

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        status = await self._store._run(
            self._pool.execute,
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
            blocker_id,
            blocked_id,
        )
        return bool(status == "DELETE 1")

    async def list_blocked(self, blocker_id: str, *, limit: int, offset: int) -> list[UserCard]:
        if limit <= 0:
            return []
        rows = await self._store._run(
            self._pool.fetch,
            f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER}"
            " FROM blocks b JOIN users u ON u.id = b.blocked_id"
            ' WHERE b.blocker_id = $1 ORDER BY b.created_at, u.id COLLATE "C" LIMIT $2 OFFSET $3',
            blocker_id,
            limit,
            max(offset, 0),
        )
        return [card_from_row(r) for r in rows]

    async def is_blocked(self, blocker_id: str, blocked_id: str) -> bool:
        found = await self._store._run(
            self._pool.fetchval,
            "SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
            blocker_id,
            blocked_id,
        )
        return found is not None

    async def blocked_either_way(self, a: str, b: str) -> bool:
        found = await self._store._run(
            self._pool.fetchval,
            "SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2)"
            " OR (blocker_id = $2 AND blocked_id = $1) LIMIT 1",
            a,
            b,
        )
        return found is not None

    async def blocked_among(self, user_id: str, others: Sequence[str]) -> set[str]:
        if not others:
            return set()
        rows = await self._store._run(
            self._pool.fetch,
            "SELECT blocked_id FROM blocks WHERE blocker_id = $1 AND blocked_id = ANY($2::text[])"
            " UNION SELECT blocker_id FROM blocks"
            " WHERE blocked_id = $1 AND blocker_id = ANY($2::text[])",
            user_id,
            list(others),
        )
        return {r[0] for r in rows}

    async def direct_room_id(self, a: str, b: str) -> str | None:
        found = await self._store._run(
            self._pool.fetchval, "SELECT id FROM rooms WHERE direct_key = $1", direct_key(a, b)
        )
        return None if found is None else str(found)

    async def group_add_refusals(self, adder_id: str, user_ids: Sequence[str]) -> list[str]:
        wanted = [u for u in dict.fromkeys(user_ids) if u != adder_id]
        if not wanted:
            return []
        rows = await self._store._run(
            self._pool.fetch,
            "SELECT u.id FROM users u WHERE u.id = ANY($2::text[]) AND"
            " (u.groups_privacy = 'nobody'"
            " OR (u.groups_privacy = 'contacts' AND NOT EXISTS"
            "  (SELECT 1 FROM contacts k WHERE k.owner_id = u.id AND k.contact_id = $1))"
            " OR EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = u.id AND b.blocked_id = $1)"
            "  OR (b.blocked_id = u.id AND b.blocker_id = $1)))",
            adder_id,
            wanted,
        )
        return [r[0] for r in rows]

    async def match_phone_hashes(
        self, viewer_id: str, hashes: Sequence[str]
    ) -> dict[str, UserCard]:
        if not hashes:
            return {}
        rows: list[asyncpg.Record] = await self._store._run(
            self._pool.fetch,
            f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER}, u.phone_hash FROM users u"
            " WHERE u.phone_hash = ANY($2::text[]) AND u.id <> $1"
            f" AND u.username_lc IS NOT NULL AND {_NOT_BLOCKING_VIEWER}",
            viewer_id,
            list(dict.fromkeys(hashes)),
        )
        return {r[6]: card_from_row(r) for r in rows}

    async def search_users(
        self, viewer_id: str, query: str, *, limit: int, offset: int
    ) -> list[UserCard]:
        if limit <= 0 or not query:
            return []
        literal = like_escape(query)
        rows = await self._store._run(
            self._pool.fetch,
            f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER} FROM users u"
            " WHERE u.username_lc IS NOT NULL AND u.id <> $1"
            f" AND (u.username_lc LIKE $2 ESCAPE '\\' OR {_FOLDED_NAME} LIKE $3 ESCAPE '\\')"
            f" AND {_NOT_BLOCKING_VIEWER}"
            " ORDER BY u.username_lc = $4 DESC, u.username_lc LIKE $2 ESCAPE '\\' DESC,"
            ' u.username_lc COLLATE "C", u.id COLLATE "C" LIMIT $5 OFFSET $6',
            viewer_id,
            literal + "%",
            "%" + literal + "%",
            query,
            limit,
            max(offset, 0),
        )
        return [card_from_row(r) for r in rows]
