"""The social graph: contacts, blocks, phone-number discovery and user search.

Public helpers other features call (calls, presence, rooms)::

    await is_blocked(store, blocker_id, blocked_id)   # blocker blocked blocked
    await blocked_either_way(store, a, b)             # either blocked the other
    await contact_ids(store, user_id)                 # ids in user_id's contacts
    await group_add_refusals(store, adder_id, ids)    # who may not be added to a group

Both are one indexed primary-key lookup; neither raises for unknown users.

``contacts_store(store)`` gives the ``ContactsStore`` on the store's database.

Rules:
- A contact is one-way: it is in the owner's address book, nothing more.
  Privacy setting "contacts" means "people in MY contacts".
- A block is one-way too, but its effects (no messages, calls or presence)
  hold in both directions: check ``blocked_either_way``.
- Search and discovery never return the viewer themself, people who blocked
  the viewer, or accounts without a username (a phone sign-up that has not
  completed its profile is not findable yet).
- Case-insensitive matching of display names folds ASCII letters only, on
  both backends alike (``ascii_fold``): SQLite's ``lower()`` knows nothing
  else, and PostgreSQL is told ``COLLATE "C"`` so it folds the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.sql.database import Database
from storage.sql.statements import Execute, FetchOne, Op

from .base import Store

# Columns of a UserCard, then whether the card's user has the viewer in
# their contacts (needed to apply "contacts" privacy to the photo).
CARD_COLUMNS = "u.id, u.username, u.display_name, u.avatar_etag, u.photo_privacy"

_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class UserCard:
    """A user as a list shows them. The photo is subject to privacy: callers filter."""

    id: str
    username: str | None
    display_name: str
    avatar_etag: str | None
    photo_privacy: str  # 'everyone' | 'contacts' | 'nobody'
    # Whether this user has the viewer in their contacts.
    knows_viewer: bool = False


@dataclass(frozen=True, slots=True)
class ContactEntry:
    user: UserCard
    name: str  # what the owner calls them; '' = their own display name
    created_at: int


class ContactsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_contact(self, owner_id: str, contact_id: str, name: str, at: int) -> bool:
        """Add or rename; True when it is new. Raises NotFound for an unknown user."""
        return await self._db.write(_add_contact(owner_id, contact_id, name, at))

    async def remove_contact(self, owner_id: str, contact_id: str) -> bool:
        count = await self._db.execute(
            "DELETE FROM contacts WHERE owner_id = ? AND contact_id = ?", (owner_id, contact_id)
        )
        return bool(count)

    async def list_contacts(self, owner_id: str, *, limit: int, offset: int) -> list[ContactEntry]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        d = self._db.dialect
        # lower() folds ASCII only on both (see the module rules).
        name = d.bytewise("(CASE WHEN o.name <> '' THEN o.name ELSE u.display_name END)")
        rows = await self._db.fetch(
            f"SELECT {_CONTACT_SELECT} WHERE o.owner_id = ?"
            f" ORDER BY lower({name}), {d.bytewise('u.id')} LIMIT ? OFFSET ?",
            (owner_id, owner_id, limit, max(offset, 0)),
        )
        return [ContactEntry(card_from_row(r), r[6], r[7]) for r in rows]

    async def get_contact(self, owner_id: str, contact_id: str) -> ContactEntry | None:
        row = await self._db.fetchone(
            f"SELECT {_CONTACT_SELECT} WHERE o.owner_id = ? AND o.contact_id = ?",
            (owner_id, owner_id, contact_id),
        )
        return None if row is None else ContactEntry(card_from_row(row), row[6], row[7])

    async def is_contact(self, owner_id: str, other_id: str) -> bool:
        found = await self._db.fetchval(
            "SELECT 1 FROM contacts WHERE owner_id = ? AND contact_id = ?", (owner_id, other_id)
        )
        return found is not None

    async def contact_ids(self, owner_id: str) -> list[str]:
        rows = await self._db.fetch(
            "SELECT contact_id FROM contacts WHERE owner_id = ?", (owner_id,)
        )
        return [r[0] for r in rows]

    async def block(self, blocker_id: str, blocked_id: str, at: int) -> bool:
        """True when it is new. Raises NotFound for an unknown user."""
        count = await self._db.execute(
            "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
            (blocker_id, blocked_id, at),
        )
        return bool(count)

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        count = await self._db.execute(
            "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?", (blocker_id, blocked_id)
        )
        return bool(count)

    async def list_blocked(self, blocker_id: str, *, limit: int, offset: int) -> list[UserCard]:
        if limit <= 0:
            return []
        rows = await self._db.fetch(
            f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER}"
            " FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.blocker_id = ?"
            f" ORDER BY b.created_at, {self._db.dialect.bytewise('u.id')} LIMIT ? OFFSET ?",
            (blocker_id, blocker_id, limit, max(offset, 0)),
        )
        return [card_from_row(r) for r in rows]

    async def is_blocked(self, blocker_id: str, blocked_id: str) -> bool:
        found = await self._db.fetchval(
            "SELECT 1 FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
            (blocker_id, blocked_id),
        )
        return found is not None

    async def blocked_either_way(self, a: str, b: str) -> bool:
        found = await self._db.fetchval(
            "SELECT 1 FROM blocks WHERE (blocker_id = ? AND blocked_id = ?)"
            " OR (blocker_id = ? AND blocked_id = ?) LIMIT 1",
            (a, b, b, a),
        )
        return found is not None

    async def blocked_among(self, user_id: str, others: Sequence[str]) -> set[str]:
        """Those of ``others`` who blocked ``user_id`` or whom ``user_id`` blocked."""
        if not others:
            return set()
        d = self._db.dialect
        wanted = d.array(dict.fromkeys(others))
        rows = await self._db.fetch(
            "SELECT blocked_id FROM blocks"
            f" WHERE blocker_id = ? AND {d.in_list('blocked_id')}"
            " UNION SELECT blocker_id FROM blocks"
            f" WHERE blocked_id = ? AND {d.in_list('blocker_id')}",
            (user_id, wanted, user_id, wanted),
        )
        return {r[0] for r in rows}

    async def direct_room_id(self, a: str, b: str) -> str | None:
        """The id of the direct room of ``a`` and ``b``, if they have one."""
        found = await self._db.fetchval(
            "SELECT id FROM rooms WHERE direct_key = ?", (direct_key(a, b),)
        )
        return None if found is None else str(found)

    async def group_add_refusals(self, adder_id: str, user_ids: Sequence[str]) -> list[str]:
        """Those of ``user_ids`` whose "who can add me to groups" setting (or a
        block either way) does not let ``adder_id`` add them."""
        wanted = [u for u in dict.fromkeys(user_ids) if u != adder_id]
        if not wanted:
            return []
        d = self._db.dialect
        rows = await self._db.fetch(
            f"SELECT u.id FROM users u WHERE {d.in_list('u.id')} AND {_REFUSES_ADDER}",
            (d.array(wanted), adder_id, adder_id, adder_id),
        )
        return [r[0] for r in rows]

    async def match_phone_hashes(
        self, viewer_id: str, hashes: Sequence[str]
    ) -> dict[str, UserCard]:
        """phone hash -> user, for the hashes that belong to findable users."""
        if not hashes:
            return {}
        d = self._db.dialect
        rows = await self._db.fetch(
            f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER}, u.phone_hash FROM users u"
            f" WHERE {d.in_list('u.phone_hash')} AND u.id <> ?"
            f" AND u.username_lc IS NOT NULL AND {_NOT_BLOCKING_VIEWER}",
            (viewer_id, d.array(dict.fromkeys(hashes)), viewer_id, viewer_id),
        )
        return {r[6]: card_from_row(r) for r in rows}

    async def search_users(
        self, viewer_id: str, query: str, *, limit: int, offset: int
    ) -> list[UserCard]:
        """Username prefix or display-name substring (``query`` already folded)."""
        if limit <= 0 or not query:
            return []
        d = self._db.dialect
        literal = like_escape(query)
        prefix, contains = literal + "%", "%" + literal + "%"
        # lower() folds ASCII only on both (see the module rules); SQLite's
        # LIKE would ignore ASCII case anyway, PostgreSQL's does not.
        rows = await self._db.fetch(
            f"SELECT {CARD_COLUMNS}, {_KNOWS_VIEWER} FROM users u"
            " WHERE u.username_lc IS NOT NULL AND u.id <> ?"
            " AND (u.username_lc LIKE ? ESCAPE '\\'"
            f" OR lower({d.bytewise('u.display_name')}) LIKE ? ESCAPE '\\')"
            f" AND {_NOT_BLOCKING_VIEWER}"
            " ORDER BY u.username_lc = ? DESC, u.username_lc LIKE ? ESCAPE '\\' DESC,"
            f" {d.bytewise('u.username_lc')}, {d.bytewise('u.id')} LIMIT ? OFFSET ?",
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
        )
        return [card_from_row(r) for r in rows]


def contacts_store(store: Store) -> ContactsStore:
    return ContactsStore(store.db)


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


def _add_contact(owner_id: str, contact_id: str, name: str, at: int) -> Op[bool]:
    # Insert-if-absent tells new from renamed in both databases; if the row
    # existed, the upsert renames it (and puts it back should a concurrent
    # remove have deleted it in between, so the call never fails on a race).
    inserted = yield FetchOne(
        "INSERT INTO contacts (owner_id, contact_id, name, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (owner_id, contact_id) DO NOTHING RETURNING 1",
        (owner_id, contact_id, name, at),
    )
    if inserted is None:
        yield Execute(
            "INSERT INTO contacts (owner_id, contact_id, name, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (owner_id, contact_id) DO UPDATE SET name = excluded.name",
            (owner_id, contact_id, name, at),
        )
    return inserted is not None


async def is_blocked(store: Store, blocker_id: str, blocked_id: str) -> bool:
    """Whether ``blocker_id`` has blocked ``blocked_id`` (one direction)."""
    return await contacts_store(store).is_blocked(blocker_id, blocked_id)


async def blocked_either_way(store: Store, a: str, b: str) -> bool:
    """Whether ``a`` blocked ``b`` or ``b`` blocked ``a``: no messages, calls or presence."""
    return await contacts_store(store).blocked_either_way(a, b)


async def group_add_refusals(store: Store, adder_id: str, user_ids: Sequence[str]) -> list[str]:
    """Who among ``user_ids`` may not be added to a group by ``adder_id``:
    their groups privacy is "nobody", or "contacts" without ``adder_id`` in
    their contacts, or one of the two blocked the other. Callers refuse the
    whole request (403) when this is not empty."""
    return await contacts_store(store).group_add_refusals(adder_id, user_ids)


async def contact_ids(store: Store, user_id: str) -> list[str]:
    """The ids in ``user_id``'s contacts (for "contacts" visibility rules)."""
    return await contacts_store(store).contact_ids(user_id)


def direct_key(a: str, b: str) -> str:
    """How ``rooms.direct_key`` names a pair (see bridge.routes.rooms)."""
    return ":".join(sorted((a, b)))


def ascii_fold(text: str) -> str:
    """Lowercase ASCII letters only: what both backends' SQL ``lower()`` does here."""
    return text.translate(_ASCII_UPPER)


def like_escape(text: str) -> str:
    """Make ``text`` literal inside a LIKE pattern (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def card_from_row(row: Sequence[object]) -> UserCard:
    """``row`` is CARD_COLUMNS followed by knows_viewer."""
    return UserCard(
        id=str(row[0]),
        username=row[1],  # type: ignore[arg-type]
        display_name=str(row[2]),
        avatar_etag=row[3],  # type: ignore[arg-type]
        photo_privacy=str(row[4]),
        knows_viewer=bool(row[5]),
    )


__all__ = [
    "ContactEntry",
    "ContactsStore",
    "UserCard",
    "ascii_fold",
    "blocked_either_way",
    "contact_ids",
    "contacts_store",
    "group_add_refusals",
    "is_blocked",
    "like_escape",
]
