"""The social graph: contacts, blocks, phone-number discovery and user search.

Public helpers other features call (calls, presence, rooms)::

    await is_blocked(store, blocker_id, blocked_id)   # blocker blocked blocked
    await blocked_either_way(store, a, b)             # either blocked the other
    await contact_ids(store, user_id)                 # ids in user_id's contacts
    await group_add_refusals(store, adder_id, ids)    # who may not be added to a group

Both are one indexed primary-key lookup; neither raises for unknown users.

``contacts_store(store)`` picks the backend twin (``contacts_sqlite`` or
``contacts_postgres``), which runs on the main store's own connections.

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
from typing import Protocol

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


class ContactsStore(Protocol):
    async def add_contact(self, owner_id: str, contact_id: str, name: str, at: int) -> bool:
        """Add or rename; True when it is new. Raises NotFound for an unknown user."""

    async def remove_contact(self, owner_id: str, contact_id: str) -> bool: ...
    async def list_contacts(
        self, owner_id: str, *, limit: int, offset: int
    ) -> list[ContactEntry]: ...
    async def get_contact(self, owner_id: str, contact_id: str) -> ContactEntry | None: ...
    async def is_contact(self, owner_id: str, other_id: str) -> bool: ...
    async def contact_ids(self, owner_id: str) -> list[str]: ...

    async def block(self, blocker_id: str, blocked_id: str, at: int) -> bool:
        """True when it is new. Raises NotFound for an unknown user."""

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool: ...
    async def list_blocked(self, blocker_id: str, *, limit: int, offset: int) -> list[UserCard]: ...
    async def is_blocked(self, blocker_id: str, blocked_id: str) -> bool: ...
    async def blocked_either_way(self, a: str, b: str) -> bool: ...
    async def blocked_among(self, user_id: str, others: Sequence[str]) -> set[str]:
        """Those of ``others`` who blocked ``user_id`` or whom ``user_id`` blocked."""

    async def direct_room_id(self, a: str, b: str) -> str | None:
        """The id of the direct room of ``a`` and ``b``, if they have one."""

    async def group_add_refusals(self, adder_id: str, user_ids: Sequence[str]) -> list[str]:
        """Those of ``user_ids`` whose "who can add me to groups" setting (or a
        block either way) does not let ``adder_id`` add them."""

    async def match_phone_hashes(
        self, viewer_id: str, hashes: Sequence[str]
    ) -> dict[str, UserCard]:
        """phone hash -> user, for the hashes that belong to findable users."""

    async def search_users(
        self, viewer_id: str, query: str, *, limit: int, offset: int
    ) -> list[UserCard]:
        """Username prefix or display-name substring (``query`` already folded)."""


def contacts_store(store: Store) -> ContactsStore:
    if store.backend == "sqlite":
        from .contacts_sqlite import SqliteContacts

        return SqliteContacts(store)  # type: ignore[arg-type]
    if store.backend == "postgres":
        from .contacts_postgres import PostgresContacts

        return PostgresContacts(store)  # type: ignore[arg-type]
    raise ValueError(f"no contacts store for backend {store.backend!r}")


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
    """How ``rooms.direct_key`` names a pair (see bridge.routes_rooms)."""
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
