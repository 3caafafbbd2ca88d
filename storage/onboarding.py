"""Accounts beyond email and password: phone and Google sign-ups, profiles,
avatars, privacy settings, and the device sessions of a user.

``onboarding_store(store)`` picks the backend twin (``onboarding_sqlite`` or
``onboarding_postgres``), which runs on the main store's own connections.

Rules:
- A phone or Google sign-up creates a user with no username (and, for phone,
  no email and no password). ``Profile.complete`` is False until the user
  picks a username; such users cannot be found by search or discovery.
- Emails and usernames are unique case-insensitively through the ``*_lc``
  columns of 0001 (folded in Python, ``storage.schema.fold``). Phone numbers
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
- A device session is a refresh-token family (``bridge.tokens``). It is active
  while its newest token is unused, unrevoked and unexpired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .base import Store
from .errors import Conflict

PRIVACY_LEVELS = ("everyone", "contacts", "nobody")

PROFILE_COLUMNS = (
    "id, email, username, display_name, phone, bio, avatar_etag, email_verified_at,"
    " password_hash IS NOT NULL, photo_privacy, groups_privacy, created_at"
)

# Unique constraints of 0003, as SQLite ("table.column") and PostgreSQL
# (constraint name) report them, -> the field a client sees in a 409.
_CONFLICT_FIELDS = {
    "users.phone": "phone",
    "users_phone_key": "phone",
    "user_identities.provider, user_identities.subject": "identity",
    "user_identities_pkey": "identity",
}


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


class OnboardingStore(Protocol):
    # accounts
    async def get_profile(self, user_id: str) -> Profile | None: ...
    async def profile_by_phone(self, phone: str) -> Profile | None: ...
    async def profile_by_email(self, email: str) -> Profile | None: ...
    async def create_phone_user(
        self, user_id: str, phone: str, phone_hash: str, at: int
    ) -> Profile:
        """Raises Conflict("phone") when the number has an account already."""

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

    async def identity_user(self, provider: str, subject: str) -> str | None: ...
    async def link_identity(
        self, provider: str, subject: str, user_id: str, email: str | None, at: int
    ) -> None: ...

    async def complete_profile(
        self, user_id: str, *, display_name: str, username: str, email: str | None
    ) -> Profile | None:
        """Only while the profile has no username; None otherwise. Conflict on a taken name."""

    async def update_profile(self, user_id: str, changes: ProfileChanges) -> Profile | None: ...
    async def set_password_hash(self, user_id: str, password_hash: str) -> bool: ...
    async def mark_email_verified(self, user_id: str, email: str, at: int) -> bool:
        """Only while the account's email is still ``email`` (case-insensitively)."""

    # avatars
    async def set_avatar(self, user_id: str, avatar: Avatar) -> bool:
        """False when the user does not exist."""

    async def get_avatar(self, user_id: str) -> Avatar | None: ...
    async def delete_avatar(self, user_id: str) -> bool: ...

    # device sessions (refresh-token families)
    async def list_sessions(self, user_id: str, now: int) -> list[DeviceSession]:
        """Active sessions, most recently active first."""

    async def revoke_sessions(
        self, user_id: str, at: int, *, only: str | None = None, keep: str | None = None
    ) -> list[str]:
        """Revoke the user's active sessions (just ``only``, or all but ``keep``);
        returns the session ids that were active and now are not."""

    # signed-out sessions whose access tokens must stay refused (0008)
    async def add_signed_out(
        self, user_id: str, session_ids: Sequence[str], at: int, until: int
    ) -> None:
        """Record the sessions as signed out until ``until`` (ms); a later
        ``until`` for a session already there wins."""

    async def signed_out_sessions(self, now: int) -> dict[str, int]:
        """Session id -> until when, for the sessions still to be refused at ``now``."""

    async def purge_signed_out(self, now: int) -> None: ...

    # unverified emails yield (issue 12)
    async def release_unverified_email(self, email: str, keep_user_id: str | None) -> list[str]:
        """Take ``email`` off every account but ``keep_user_id`` that holds it
        unverified; returns those accounts."""


def onboarding_store(store: Store) -> OnboardingStore:
    if store.backend == "sqlite":
        from .onboarding_sqlite import SqliteOnboarding

        return SqliteOnboarding(store)  # type: ignore[arg-type]
    if store.backend == "postgres":
        from .onboarding_postgres import PostgresOnboarding

        return PostgresOnboarding(store)  # type: ignore[arg-type]
    raise ValueError(f"no onboarding store for backend {store.backend!r}")


def named_conflict(exc: Conflict) -> Conflict:
    """The same conflict with the field name a client understands."""
    field = _CONFLICT_FIELDS.get(exc.field)
    return Conflict(field) if field is not None else exc


__all__ = [
    "PRIVACY_LEVELS",
    "Avatar",
    "DeviceSession",
    "OnboardingStore",
    "Profile",
    "ProfileChanges",
    "onboarding_store",
]
