"""Accounts beyond email and password: phone and Google sign-ups, profiles,
avatars, privacy settings, and the device sessions of a user.

``onboarding_store(store)`` gives the ``OnboardingStore`` on the store's database.

Rules:
- A phone or Google sign-up creates a user with no username (and, for phone,
  no email and no password). ``Profile.complete`` is False until the user
  picks a username; such users cannot be found by search or discovery.
- Emails and usernames are unique case-insensitively through the ``*_lc``
  columns of 0001 (folded in Python, ``storage.sql.schema.fold``). Phone numbers
  are unique as E.164 text; the caller normalises them.
- An email is trusted (``email_verified_at``) only once its owner proved it:
  a code sent to it, or a Google ID token with ``email_verified``. Changing
  the email clears the mark.
- An unverified email is no claim (issue 12): it must not let whoever typed
  someone's address first block its owner. Setting an address (sign-up,
  profile, Google sign-in) takes it, in the same transaction, from any other
  account that holds it unverified (``release_unverified_email``); only a
  verified address is unique against everyone (Conflict "email"). Addresses
  stay unique at every moment, so a login by email names one account.
- Who sees last seen and online is presence's setting (``storage.presence``),
  not a column here: one source of truth.
- A device session is a refresh-token family (``bridge.accounts.tokens``). It is active
  while its newest token is unused, unrevoked and unexpired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.sql.database import Database
from storage.sql.dialect import Dialect, register_unique
from storage.sql.schema import fold
from storage.sql.statements import Execute, Fetch, FetchOne, Op

from .base import Store

PRIVACY_LEVELS = ("everyone", "contacts", "nobody")

PROFILE_COLUMNS = (
    "id, email, username, display_name, phone, bio, avatar_etag, email_verified_at,"
    " password_hash IS NOT NULL, photo_privacy, groups_privacy, created_at"
)

# Unique constraints of 0003, as SQLite ("table.column") and PostgreSQL
# (constraint name) report them, -> the field a client sees in a 409.
register_unique(
    sqlite={
        "users.phone": "phone",
        "user_identities.provider, user_identities.subject": "identity",
    },
    postgres={"users_phone_key": "phone", "user_identities_pkey": "identity"},
)


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    email: str | None
    username: str | None
    display_name: str
    phone: str | None
    bio: str
    avatar_etag: str | None
    email_verified_at: int | None
    has_password: bool
    photo_privacy: str
    groups_privacy: str
    created_at: int

    @property
    def complete(self) -> bool:
        return self.username is not None


def profile_from_row(row: Sequence[object]) -> Profile:
    values = list(row)
    values[8] = bool(values[8])
    return Profile(*values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """Fields to change; None leaves a field as it is."""

    display_name: str | None = None
    username: str | None = None
    bio: str | None = None
    email: str | None = None
    photo_privacy: str | None = None
    groups_privacy: str | None = None


@dataclass(frozen=True, slots=True)
class Avatar:
    etag: str
    content_type: str
    data: bytes
    updated_at: int


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """One signed-in device: a refresh-token family."""

    session_id: str  # the family id; access tokens carry it as ``sid``
    device: str
    signed_in_at: int
    last_active_at: int  # when its newest refresh token was issued
    expires_at: int


class OnboardingStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._active_families = _ACTIVE_FAMILIES.format(
            family_order=db.dialect.bytewise("family_id")
        )

    # accounts

    async def get_profile(self, user_id: str) -> Profile | None:
        return await self._profile("id = ?", user_id)

    async def profile_by_phone(self, phone: str) -> Profile | None:
        return await self._profile("phone = ?", phone)

    async def profile_by_email(self, email: str) -> Profile | None:
        return await self._profile("email_lc = ?", fold(email))

    async def _profile(self, where: str, value: str) -> Profile | None:
        row = await self._db.fetchone(
            f"SELECT {PROFILE_COLUMNS} FROM users WHERE {where}", (value,)
        )
        return None if row is None else profile_from_row(row)

    async def create_phone_user(
        self, user_id: str, phone: str, phone_hash: str, at: int
    ) -> Profile:
        """Raises Conflict("phone") when the number has an account already."""
        row = await self._db.fetchone(
            "INSERT INTO users (id, display_name, phone, phone_hash, created_at)"
            f" VALUES (?, '', ?, ?, ?) RETURNING {PROFILE_COLUMNS}",
            (user_id, phone, phone_hash, at),
            write=True,
        )
        assert row is not None  # an INSERT that did not raise returns its row
        return profile_from_row(row)

    async def create_oidc_user(
        self,
        user_id: str,
        *,
        email: str | None,
        display_name: str,
        provider: str,
        subject: str,
        at: int,
    ) -> Profile:
        """The user and their identity in one transaction; the email counts as verified."""
        return await self._db.write(
            _create_oidc_user(user_id, email, display_name, provider, subject, at)
        )

    async def identity_user(self, provider: str, subject: str) -> str | None:
        found = await self._db.fetchval(
            "SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?",
            (provider, subject),
        )
        return None if found is None else str(found)

    async def link_identity(
        self, provider: str, subject: str, user_id: str, email: str | None, at: int
    ) -> None:
        await self._db.execute(_INSERT_IDENTITY, (provider, subject, user_id, email, at))

    async def complete_profile(
        self, user_id: str, *, display_name: str, username: str, email: str | None
    ) -> Profile | None:
        """Only while the profile has no username; None otherwise. Conflict on a taken name."""
        return await self._db.write(_complete_profile(user_id, display_name, username, email))

    async def update_profile(self, user_id: str, changes: ProfileChanges) -> Profile | None:
        sets, params = _changes_sql(changes)
        if not sets:
            return await self.get_profile(user_id)
        return await self._db.write(_update_profile(user_id, changes.email, sets, params))

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        count = await self._db.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )
        return bool(count)

    async def mark_email_verified(self, user_id: str, email: str, at: int) -> bool:
        """Only while the account's email is still ``email`` (case-insensitively)."""
        count = await self._db.execute(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?)"
            " WHERE id = ? AND email_lc = ?",
            (at, user_id, fold(email)),
        )
        return bool(count)

    # avatars

    async def set_avatar(self, user_id: str, avatar: Avatar) -> bool:
        """False when the user does not exist."""
        return await self._db.write(_set_avatar(user_id, avatar))

    async def get_avatar(self, user_id: str) -> Avatar | None:
        row = await self._db.fetchone(
            "SELECT etag, content_type, data, updated_at FROM avatars WHERE user_id = ?",
            (user_id,),
        )
        return None if row is None else Avatar(row[0], row[1], bytes(row[2]), row[3])

    async def delete_avatar(self, user_id: str) -> bool:
        return await self._db.write(_delete_avatar(user_id))

    # device sessions (refresh-token families)

    async def list_sessions(self, user_id: str, now: int) -> list[DeviceSession]:
        """Active sessions, most recently active first."""
        rows = await self._db.fetch(self._active_families, (user_id, now))
        return [DeviceSession(*r) for r in rows]

    async def revoke_sessions(
        self, user_id: str, at: int, *, only: str | None = None, keep: str | None = None
    ) -> list[str]:
        """Revoke the user's active sessions (just ``only``, or all but ``keep``);
        returns the session ids that were active and now are not."""
        return await self._db.write(
            _revoke_sessions(self._db.dialect, self._active_families, user_id, at, only, keep)
        )

    # signed-out sessions whose access tokens must stay refused (0008)

    async def add_signed_out(
        self, user_id: str, session_ids: Sequence[str], at: int, until: int
    ) -> None:
        """Record the sessions as signed out until ``until`` (ms); a later
        ``until`` for a session already there wins."""
        later = self._db.dialect.greatest("signed_out_sessions.expires_at", "excluded.expires_at")
        await self._db.executemany(
            "INSERT INTO signed_out_sessions (session_id, user_id, signed_out_at, expires_at)"
            f" VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET expires_at = {later}",
            [(session_id, user_id, at, until) for session_id in session_ids],
        )

    async def signed_out_sessions(self, now: int) -> dict[str, int]:
        """Session id -> until when, for the sessions still to be refused at ``now``."""
        rows = await self._db.fetch(
            "SELECT session_id, expires_at FROM signed_out_sessions WHERE expires_at > ?", (now,)
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def purge_signed_out(self, now: int) -> None:
        await self._db.execute("DELETE FROM signed_out_sessions WHERE expires_at <= ?", (now,))

    # unverified emails yield (issue 12)

    async def release_unverified_email(self, email: str, keep_user_id: str | None) -> list[str]:
        """Take ``email`` off every account but ``keep_user_id`` that holds it
        unverified; returns those accounts."""
        return await self._db.write(_release_email(fold(email), keep_user_id))


def onboarding_store(store: Store) -> OnboardingStore:
    return OnboardingStore(store.db)


_INSERT_IDENTITY = (
    "INSERT INTO user_identities (provider, subject, user_id, email, created_at)"
    " VALUES (?, ?, ?, ?, ?)"
)

_ACTIVE_FAMILIES = """
SELECT family_id, MIN(device), MIN(created_at), MAX(created_at), MAX(expires_at)
FROM refresh_tokens WHERE user_id = ?
GROUP BY family_id
HAVING COUNT(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?) > 0
ORDER BY MAX(created_at) DESC, {family_order}
"""


def _release_email(email_lc: str, keep_user_id: str | None) -> Op[list[str]]:
    """An unverified address is no claim: the accounts holding it lose it.
    Run it inside the transaction that sets the address."""
    rows = yield Fetch(
        "UPDATE users SET email = NULL, email_lc = NULL"
        " WHERE email_lc = ? AND email_verified_at IS NULL"
        " AND (CAST(? AS TEXT) IS NULL OR id <> ?) RETURNING id",
        (email_lc, keep_user_id, keep_user_id),
    )
    return [str(r[0]) for r in rows]


def _create_oidc_user(
    user_id: str, email: str | None, display_name: str, provider: str, subject: str, at: int
) -> Op[Profile]:
    if email:
        yield from _release_email(fold(email), None)
    row = yield FetchOne(
        "INSERT INTO users (id, email, email_lc, display_name, email_verified_at, created_at)"
        f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {PROFILE_COLUMNS}",
        (user_id, email, fold(email) if email else None, display_name, at if email else None, at),
    )
    yield Execute(_INSERT_IDENTITY, (provider, subject, user_id, email, at))
    return profile_from_row(row)


def _complete_profile(
    user_id: str, display_name: str, username: str, email: str | None
) -> Op[Profile | None]:
    email_lc = fold(email) if email else None
    if email_lc is not None:
        incomplete = yield FetchOne(
            "SELECT 1 FROM users WHERE id = ? AND username_lc IS NULL", (user_id,)
        )
        if incomplete is not None:
            yield from _release_email(email_lc, user_id)
    row = yield FetchOne(
        "UPDATE users SET display_name = ?, username = ?, username_lc = ?,"
        " email = COALESCE(?, email), email_lc = COALESCE(?, email_lc),"
        " email_verified_at = CASE WHEN CAST(? AS TEXT) IS NULL OR ? = email_lc"
        "   THEN email_verified_at END"
        f" WHERE id = ? AND username_lc IS NULL RETURNING {PROFILE_COLUMNS}",
        (display_name, username, fold(username), email, email_lc, email_lc, email_lc, user_id),
    )
    return None if row is None else profile_from_row(row)


def _changes_sql(changes: ProfileChanges) -> tuple[list[str], list[Any]]:
    sets: list[str] = []
    params: list[Any] = []
    if changes.display_name is not None:
        sets.append("display_name = ?")
        params.append(changes.display_name)
    if changes.username is not None:
        sets += ["username = ?", "username_lc = ?"]
        params += [changes.username, fold(changes.username)]
    if changes.bio is not None:
        sets.append("bio = ?")
        params.append(changes.bio)
    if changes.email is not None:
        # A new address is not proven until its owner answers a code sent to it;
        # the same address (in another case) keeps its mark.
        sets += [
            "email_verified_at = CASE WHEN email_lc = ? THEN email_verified_at END",
            "email = ?",
            "email_lc = ?",
        ]
        params += [fold(changes.email), changes.email, fold(changes.email)]
    for name in ("photo_privacy", "groups_privacy"):
        value = getattr(changes, name)
        if value is not None:
            sets.append(f"{name} = ?")
            params.append(value)
    return sets, params


def _update_profile(
    user_id: str, email: str | None, sets: list[str], params: list[Any]
) -> Op[Profile | None]:
    if email is not None:
        yield from _release_email(fold(email), user_id)
    row = yield FetchOne(
        f"UPDATE users SET {', '.join(sets)} WHERE id = ? RETURNING {PROFILE_COLUMNS}",
        (*params, user_id),
    )
    return None if row is None else profile_from_row(row)


def _set_avatar(user_id: str, avatar: Avatar) -> Op[bool]:
    count = yield Execute("UPDATE users SET avatar_etag = ? WHERE id = ?", (avatar.etag, user_id))
    if not count:
        return False
    yield Execute(
        "INSERT INTO avatars (user_id, etag, content_type, data, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " etag = excluded.etag, content_type = excluded.content_type,"
        " data = excluded.data, updated_at = excluded.updated_at",
        (user_id, avatar.etag, avatar.content_type, avatar.data, avatar.updated_at),
    )
    return True


def _delete_avatar(user_id: str) -> Op[bool]:
    yield Execute("UPDATE users SET avatar_etag = NULL WHERE id = ?", (user_id,))
    count = yield Execute("DELETE FROM avatars WHERE user_id = ?", (user_id,))
    return bool(count)


def _revoke_sessions(
    d: Dialect,
    active_families: str,
    user_id: str,
    at: int,
    only: str | None,
    keep: str | None,
) -> Op[list[str]]:
    active = yield Fetch(active_families, (user_id, at))
    chosen = [f for (f, *_) in active if (only is None or f == only) and f != keep]
    if chosen:
        yield Execute(
            "UPDATE refresh_tokens SET revoked_at = ?"
            f" WHERE user_id = ? AND {d.in_list('family_id')} AND revoked_at IS NULL",
            (at, user_id, d.array(chosen)),
        )
    return chosen


__all__ = [
    "PRIVACY_LEVELS",
    "Avatar",
    "DeviceSession",
    "OnboardingStore",
    "Profile",
    "ProfileChanges",
    "onboarding_store",
]
