"""``OnboardingStore`` on SQLite, through the main ``SqliteStore``'s connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .errors import Conflict
from .onboarding import (
    PROFILE_COLUMNS,
    Avatar,
    DeviceSession,
    Profile,
    ProfileChanges,
    named_conflict,
    profile_from_row,
)
from .schema import fold
from .sqlite import SqliteStore, _transaction

_ACTIVE_FAMILIES = """
SELECT family_id, MIN(device), MIN(created_at), MAX(created_at), MAX(expires_at)
FROM refresh_tokens WHERE user_id = ?
GROUP BY family_id
HAVING SUM(used_at IS NULL AND revoked_at IS NULL AND expires_at > ?) > 0
ORDER BY MAX(created_at) DESC, family_id
"""


def _profile(c: sqlite3.Connection, where: str, *params: Any) -> Profile | None:
    row = c.execute(f"SELECT {PROFILE_COLUMNS} FROM users WHERE {where}", params).fetchone()
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


class SqliteOnboarding:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def _write(self, fn: Any) -> Any:
        try:
            return await self._store._write(fn)
        except Conflict as exc:
            raise named_conflict(exc) from exc

    # accounts

    async def get_profile(self, user_id: str) -> Profile | None:
        return await self._store._read(lambda c: _profile(c, "id = ?", user_id))

    async def profile_by_phone(self, phone: str) -> Profile | None:
        return await self._store._read(lambda c: _profile(c, "phone = ?", phone))

    async def profile_by_email(self, email: str) -> Profile | None:
        return await self._store._read(lambda c: _profile(c, "email_lc = ?", fold(email)))

    async def create_phone_user(
        self, user_id: str, phone: str, phone_hash: str, at: int
    ) -> Profile:
        def run(c: sqlite3.Connection) -> Profile:
            rows = c.execute(
                "INSERT INTO users (id, display_name, phone, phone_hash, created_at)"
                f" VALUES (?, '', ?, ?, ?) RETURNING {PROFILE_COLUMNS}",
                (user_id, phone, phone_hash, at),
            ).fetchall()
            return profile_from_row(rows[0])

        return await self._write(run)  # type: ignore[no-any-return]

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
        def run(c: sqlite3.Connection) -> Profile:
            with _transaction(c):
                if email:
                    _release_email(c, fold(email), None)
                c.execute(
                    "INSERT INTO users (id, email, email_lc, display_name, email_verified_at,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        user_id,
                        email,
                        fold(email) if email else None,
                        display_name,
                        at if email else None,
                        at,
                    ),
                )
                c.execute(
                    "INSERT INTO user_identities (provider, subject, user_id, email, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (provider, subject, user_id, email, at),
                )
                profile = _profile(c, "id = ?", user_id)
            assert profile is not None  # read inside the transaction that wrote it
            return profile

        return await self._write(run)  # type: ignore[no-any-return]

    async def identity_user(self, provider: str, subject: str) -> str | None:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?",
                (provider, subject),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def link_identity(
        self, provider: str, subject: str, user_id: str, email: str | None, at: int
    ) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO user_identities (provider, subject, user_id, email, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (provider, subject, user_id, email, at),
            )
        )

    async def complete_profile(
        self, user_id: str, *, display_name: str, username: str, email: str | None
    ) -> Profile | None:
        def run(c: sqlite3.Connection) -> Profile | None:
            with _transaction(c):
                if (
                    email
                    and c.execute(
                        "SELECT 1 FROM users WHERE id = ? AND username_lc IS NULL", (user_id,)
                    ).fetchone()
                ):
                    _release_email(c, fold(email), user_id)
                return _complete(c)

        def _complete(c: sqlite3.Connection) -> Profile | None:
            rows = c.execute(
                "UPDATE users SET display_name = ?, username = ?, username_lc = ?,"
                " email = COALESCE(?, email), email_lc = COALESCE(?, email_lc),"
                " email_verified_at = CASE WHEN ? IS NULL OR ? = email_lc"
                "   THEN email_verified_at END"
                f" WHERE id = ? AND username_lc IS NULL RETURNING {PROFILE_COLUMNS}",
                (
                    display_name,
                    username,
                    fold(username),
                    email,
                    fold(email) if email else None,
                    email,
                    fold(email) if email else None,
                    user_id,
                ),
            ).fetchall()
            return profile_from_row(rows[0]) if rows else None

        return await self._write(run)  # type: ignore[no-any-return]

    async def update_profile(self, user_id: str, changes: ProfileChanges) -> Profile | None:
        sets, params = _changes_sql(changes)
        if not sets:
            return await self.get_profile(user_id)

        def run(c: sqlite3.Connection) -> Profile | None:
            with _transaction(c):
                if changes.email is not None:
                    _release_email(c, fold(changes.email), user_id)
                rows = c.execute(
                    f"UPDATE users SET {', '.join(sets)} WHERE id = ? RETURNING {PROFILE_COLUMNS}",
                    (*params, user_id),
                ).fetchall()
            return profile_from_row(rows[0]) if rows else None

        return await self._write(run)  # type: ignore[no-any-return]

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        count = await self._write(
            lambda c: (
                c.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
                ).rowcount
            )
        )
        return bool(count)

    async def mark_email_verified(self, user_id: str, email: str, at: int) -> bool:
        count = await self._write(
            lambda c: (
                c.execute(
                    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?)"
                    " WHERE id = ? AND email_lc = ?",
                    (at, user_id, fold(email)),
                ).rowcount
            )
        )
        return bool(count)

    # avatars

    async def set_avatar(self, user_id: str, avatar: Avatar) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                count = c.execute(
                    "UPDATE users SET avatar_etag = ? WHERE id = ?", (avatar.etag, user_id)
                ).rowcount
                if count:
                    c.execute(
                        "INSERT INTO avatars (user_id, etag, content_type, data, updated_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                        " etag = excluded.etag, content_type = excluded.content_type,"
                        " data = excluded.data, updated_at = excluded.updated_at",
                        (user_id, avatar.etag, avatar.content_type, avatar.data, avatar.updated_at),
                    )
            return bool(count)

        return await self._write(run)  # type: ignore[no-any-return]

    async def get_avatar(self, user_id: str) -> Avatar | None:
        row = await self._store._read(
            lambda c: c.execute(
                "SELECT etag, content_type, data, updated_at FROM avatars WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        )
        return None if row is None else Avatar(row[0], row[1], bytes(row[2]), row[3])

    async def delete_avatar(self, user_id: str) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                c.execute("UPDATE users SET avatar_etag = NULL WHERE id = ?", (user_id,))
                return bool(c.execute("DELETE FROM avatars WHERE user_id = ?", (user_id,)).rowcount)

        return await self._write(run)  # type: ignore[no-any-return]

    # device sessions

    async def list_sessions(self, user_id: str, now: int) -> list[DeviceSession]:
        rows = await self._store._read(
            lambda c: c.execute(_ACTIVE_FAMILIES, (user_id, now)).fetchall()
        )
        return [DeviceSession(*r) for r in rows]

    async def revoke_sessions(
        self, user_id: str, at: int, *, only: str | None = None, keep: str | None = None
    ) -> list[str]:
        def run(c: sqlite3.Connection) -> list[str]:
            with _transaction(c):
                active = [r[0] for r in c.execute(_ACTIVE_FAMILIES, (user_id, at))]
                chosen = [f for f in active if (only is None or f == only) and f != keep]
                c.executemany(
                    "UPDATE refresh_tokens SET revoked_at = ?"
                    " WHERE user_id = ? AND family_id = ? AND revoked_at IS NULL",
                    [(at, user_id, family) for family in chosen],
                )
            return chosen

        return await self._write(run)  # type: ignore[no-any-return]

    # signed-out sessions

    async def add_signed_out(
        self, user_id: str, session_ids: Sequence[str], at: int, until: int
    ) -> None:
        await self._write(
            lambda c: c.executemany(
                "INSERT INTO signed_out_sessions (session_id, user_id, signed_out_at, expires_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
                " expires_at = max(expires_at, excluded.expires_at)",
                [(session_id, user_id, at, until) for session_id in session_ids],
            )
        )

    async def signed_out_sessions(self, now: int) -> dict[str, int]:
        rows = await self._store._read(
            lambda c: c.execute(
                "SELECT session_id, expires_at FROM signed_out_sessions WHERE expires_at > ?",
                (now,),
            ).fetchall()
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def purge_signed_out(self, now: int) -> None:
        await self._write(
            lambda c: c.execute("DELETE FROM signed_out_sessions WHERE expires_at <= ?", (now,))
        )

    # unverified emails yield

    async def release_unverified_email(self, email: str, keep_user_id: str | None) -> list[str]:
        return await self._write(  # type: ignore[no-any-return]
            lambda c: _release_email(c, fold(email), keep_user_id)
        )


def _release_email(c: sqlite3.Connection, email_lc: str, keep_user_id: str | None) -> list[str]:
    """Inside the caller's transaction: an unverified address is no claim."""
    rows = c.execute(
        "UPDATE users SET email = NULL, email_lc = NULL"
        " WHERE email_lc = ? AND email_verified_at IS NULL AND id IS NOT ?"
        " RETURNING id",
        (email_lc, keep_user_id),
    ).fetchall()
    return [str(r[0]) for r in rows]
