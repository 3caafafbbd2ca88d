"""``ContactsStore`` on SQLite, through the main ``SqliteStore``'s connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .contacts import (
    CARD_COLUMNS,
    ContactEntry,
    UserCard,
    card_from_row,
    direct_key,
    like_escape,
)
from .schema import chunks
from .sqlite import SqliteStore, _transaction

_CHUNK = 400

# Whether the listed user (u) has the viewer (?) in their contacts.
_KNOWS_VIEWER = "EXISTS (SELECT 1 FROM contacts k WHERE k.owner_id = u.id AND k.contact_id = ?)"
_CONTACT_SELECT = (
    f"{CARD_COLUMNS}, {_KNOWS_VIEWER}, o.name, o.created_at"
    " FROM contacts o JOIN users u ON u.id = o.contact_id"
)
_NOT_BLOCKING_VIEWER = (
    "NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = ?)"
)


# Whether user u refuses to be added to a group by the adder (?, three times).
_REFUSES_ADDER = (
    "(u.groups_privacy = 'nobody'"
    " OR (u.groups_privacy = 'contacts' AND NOT EXISTS"
    "  (SELECT 1 FROM contacts k WHERE k.owner_id = u.id AND k.contact_id = ?))"
    " OR EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = u.id AND b.blocked_id = ?)"
    "  OR (b.blocked_id = u.id AND b.blocker_id = ?)))"
)


class SqliteContacts:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def add_contact(self, owner_id: str, contact_id: str, name: str, at: int) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                existed = c.execute(
                    "SELECT 1 FROM contacts WHERE owner_id = ? AND contact_id = ?",
                    (owner_id, contact_id),
                ).fetchone()
                if existed:
                    c.execute(
                        "UPDATE contacts SET name = ? WHERE owner_id = ? AND contact_id = ?",
                        (name, owner_id, contact_id),
                    )
                else:
                    c.execute(
                        "INSERT INTO contacts (owner_id, contact_id, name, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (owner_id, contact_id, name, at),
                    )
            return existed is None

        return await self._store._write(run)

    async def remove_contact(self, owner_id: str, contact_id: str) -> bool:
        count = await self._store._write(
            lambda c: (
                c.execute(
                    "DELETE FROM contacts WHERE owner_id = ? AND contact_id = ?",
                    (owner_id, contact_id),
                ).rowcount
            )
        )
        return bool(count)

    async def get_contact(self, owner_id: str, contact_id: str) -> ContactEntry | None:
        row = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_CONTACT_SELECT} WHERE o.owner_id = ? AND o.contact_id = ?",
                (owner_id, owner_id, contact_id),
            ).fetchone()
        )
        return None if row is None else ContactEntry(card_from_row(row), row[6], row[7])

    async def list_contacts(self, owner_id: str, *, limit: int, offset: int) -> list[ContactEntry]:
        if limit <= 0:
            return []
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {_CONTACT_SELECT}"
                " WHERE o.owner_id = ?"
                " ORDER BY lower(CASE WHEN o.name <> '' THEN o.name ELSE u.display_name END), u.id"
                " LIMIT ? OFFSET ?",
                (owner_id, owner_id, limit, max(offset, 0)),
            ).fetchall()
        )
        return [ContactEntry(card_from_row(r), r[6], r[7]) for r in rows]

    async def is_contact(self, owner_id: str, other_id: str) -> bool:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT 1 FROM contacts WHERE owner_id = ? AND contact_id = ?", (owner_id, other_id)
            ).fetchone()
        )
        return row is not None

    async def contact_ids(self, owner_id: str) -> list[str]:
        rows = await self._store._read(
            lambda c: c.execute(
                "SELECT contact_id FROM contacts WHERE owner_id = ?", (owner_id,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    async def block(self, blocker_id: str, blocked_id: str, at: int) -> bool:
        count = await self._store._write(
            lambda c: (
                c.execute(
                    "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
                    (blocker_id, blocked_id, at),
                ).rowcount
            )
        )
        return bool(count)

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        count = await self._store._write(
            lambda c: (
                c.execute(
                    "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
                    (blocker_id, blocked_id),
                ).rowcount
            )
        )
        return bool(count)

    async def list_blocked(self, blocker_id: str, *, limit: int, offset: int) -> list[UserCard]:
        if limit <= 0:
            return []
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER}"
                " FROM blocks b JOIN users u ON u.id = b.blocked_id"
                " WHERE b.blocker_id = ? ORDER BY b.created_at, u.id LIMIT ? OFFSET ?",
                (blocker_id, blocker_id, limit, max(offset, 0)),
            ).fetchall()
        )
        return [card_from_row(r) for r in rows]

    async def is_blocked(self, blocker_id: str, blocked_id: str) -> bool:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT 1 FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
                (blocker_id, blocked_id),
            ).fetchone()
        )
        return row is not None

    async def blocked_either_way(self, a: str, b: str) -> bool:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT 1 FROM blocks WHERE (blocker_id = ? AND blocked_id = ?)"
                " OR (blocker_id = ? AND blocked_id = ?) LIMIT 1",
                (a, b, b, a),
            ).fetchone()
        )
        return row is not None

    async def blocked_among(self, user_id: str, others: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(others))

        def run(c: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for part in chunks(wanted, _CHUNK):
                marks = ", ".join("?" * len(part))
                for (other,) in c.execute(
                    f"SELECT blocked_id FROM blocks"
                    f" WHERE blocker_id = ? AND blocked_id IN ({marks})"
                    f" UNION SELECT blocker_id FROM blocks"
                    f" WHERE blocked_id = ? AND blocker_id IN ({marks})",
                    (user_id, *part, user_id, *part),
                ):
                    found.add(other)
            return found

        return await self._store._read(run) if wanted else set()

    async def direct_room_id(self, a: str, b: str) -> str | None:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT id FROM rooms WHERE direct_key = ?", (direct_key(a, b),)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def group_add_refusals(self, adder_id: str, user_ids: Sequence[str]) -> list[str]:
        wanted = [u for u in dict.fromkeys(user_ids) if u != adder_id]

        def run(c: sqlite3.Connection) -> list[str]:
            refused: list[str] = []
            for part in chunks(wanted, _CHUNK):
                marks = ", ".join("?" * len(part))
                refused += [
                    r[0]
                    for r in c.execute(
                        f"SELECT u.id FROM users u WHERE u.id IN ({marks}) AND {_REFUSES_ADDER}",
                        (*part, adder_id, adder_id, adder_id),
                    )
                ]
            return refused

        return await self._store._read(run) if wanted else []

    async def match_phone_hashes(
        self, viewer_id: str, hashes: Sequence[str]
    ) -> dict[str, UserCard]:
        wanted = list(dict.fromkeys(hashes))

        def run(c: sqlite3.Connection) -> dict[str, UserCard]:
            found: dict[str, UserCard] = {}
            for part in chunks(wanted, _CHUNK):
                marks = ", ".join("?" * len(part))
                for row in c.execute(
                    f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER}, u.phone_hash FROM users u"
                    f" WHERE u.phone_hash IN ({marks}) AND u.id <> ?"
                    f" AND u.username_lc IS NOT NULL AND {_NOT_BLOCKING_VIEWER}",
                    (viewer_id, *part, viewer_id, viewer_id),
                ):
                    found[row[6]] = card_from_row(row)
            return found

        return await self._store._read(run) if wanted else {}

    async def search_users(
        self, viewer_id: str, query: str, *, limit: int, offset: int
    ) -> list[UserCard]:
        if limit <= 0 or not query:
            return []
        literal = like_escape(query)
        prefix, contains = literal + "%", "%" + literal + "%"
        # SQLite's LIKE already ignores ASCII case; lower() keeps the query
        # text identical to the PostgreSQL twin's.
        rows = await self._store._read(
            lambda c: c.execute(
                f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER} FROM users u"
                " WHERE u.username_lc IS NOT NULL AND u.id <> ?"
                " AND (u.username_lc LIKE ? ESCAPE '\\'"
                " OR lower(u.display_name) LIKE ? ESCAPE '\\')"
                f" AND {_NOT_BLOCKING_VIEWER}"
                " ORDER BY u.username_lc = ? DESC, u.username_lc LIKE ? ESCAPE '\\' DESC,"
                " u.username_lc, u.id LIMIT ? OFFSET ?",
                (
                    viewer_id,
                    viewer_id,
                    prefix,
                    contains,
                    viewer_id,
                    query,
                    prefix,
                    limit,
                    max(offset, 0),
                ),
            ).fetchall()
        )
        return [card_from_row(r) for r in rows]
