"""``OnboardingStore`` on PostgreSQL, through the main ``PostgresStore``'s pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

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
from .postgres import PostgresStore
from .schema import fold

_ACTIVE_FAMILIES = """
SELECT family_id, min(device), min(created_at), max(created_at), max(expires_at)
FROM refresh_tokens WHERE user_id = $1
GROUP BY family_id
HAVING count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $2) > 0
ORDER BY max(created_at) DESC, family_id COLLATE "C"
"""


def _changes_sql(changes: ProfileChanges) -> tuple[list[str], list[Any]]:
    sets: list[str] = []
    params: list[Any] = []

    def mark(value: Any) -> str:
        params.append(value)
        return f"${len(params) + 1}"  # $1 is the user id

    if changes.display_name is not None:
        sets.append(f"display_name = {mark(changes.display_name)}")
    if changes.username is not None:
        sets.append(f"username = {mark(changes.username)}")
        sets.append(f"username_lc = {mark(fold(changes.username))}")
    if changes.bio is not None:
        sets.append(f"bio = {mark(changes.bio)}")
    if changes.email is not None:
        # A new address is not proven until its owner answers a code sent to it.
        folded = mark(fold(changes.email))
        sets.append(f"email_verified_at = CASE WHEN email_lc = {folded} THEN email_verified_at END")
        sets.append(f"email = {mark(changes.email)}")
        sets.append(f"email_lc = {folded}")
    for name in ("photo_privacy", "groups_privacy"):
        value = getattr(changes, name)
        if value is not None:
            sets.append(f"{name} = {mark(value)}")
    return sets, params


class PostgresOnboarding:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool = store._pool

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._store._run(fn, *args)
        except Conflict as exc:
            raise named_conflict(exc) from exc

    async def _in_transaction(self, fn: Any) -> Any:
        try:
            return await self._store._in_transaction(fn)
        except Conflict as exc:
            raise named_conflict(exc) from exc

    async def _profile(self, where: str, value: str) -> Profile | None:
        row = await self._run(
            self._pool.fetchrow, f"SELECT {PROFILE_COLUMNS} FROM users WHERE {where}", value
        )
        return None if row is None else profile_from_row(row)

    # accounts

    async def get_profile(self, user_id: str) -> Profile | None:
        return await self._profile("id = $1", user_id)

    async def profile_by_phone(self, phone: str) -> Profile | None:
        return await self._profile("phone = $1", phone)

    async def profile_by_email(self, email: str) -> Profile | None:
        return await self._profile("email_lc = $1", fold(email))

    async def create_phone_user(
        self, user_id: str, phone: str, phone_hash: str, at: int
    ) -> Profile:
        row = await self._run(
            self._pool.fetchrow,
            "INSERT INTO users (id, display_name, phone, phone_hash, created_at)"
            f" VALUES ($1, '', $2, $3, $4) RETURNING {PROFILE_COLUMNS}",
            user_id,
            phone,
            phone_hash,
            at,
        )
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
        async def run(c: asyncpg.Connection) -> Profile:
            if email:
                await c.fetch(RELEASE_EMAIL, fold(email), None)
            row = await c.fetchrow(
                "INSERT INTO users (id, email, email_lc, display_name, email_verified_at,"
                f" created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {PROFILE_COLUMNS}",
                user_id,
                email,
                fold(email) if email else None,
                display_name,
                at if email else None,
                at,
            )
            await c.execute(
                "INSERT INTO user_identities (provider, subject, user_id, email, created_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                provider,
                subject,
                user_id,
                email,
                at,
            )
            return profile_from_row(row)

        return await self._in_transaction(run)  # type: ignore[no-any-return]

    async def identity_user(self, provider: str, subject: str) -> str | None:
        found = await self._run(
            self._pool.fetchval,
            "SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2",
            provider,
            subject,
        )
        return None if found is None else str(found)

    async def link_identity(
        self, provider: str, subject: str, user_id: str, email: str | None, at: int
    ) -> None:
        await self._run(
            self._pool.execute,
            "INSERT INTO user_identities (provider, subject, user_id, email, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            provider,
            subject,
            user_id,
            email,
            at,
        )

    async def complete_profile(
        self, user_id: str, *, display_name: str, username: str, email: str | None
    ) -> Profile | None:
        async def run(c: asyncpg.Connection) -> Profile | None:
            if email and await c.fetchval(
                "SELECT 1 FROM users WHERE id = $1 AND username_lc IS NULL", user_id
            ):
                await c.fetch(RELEASE_EMAIL, fold(email), user_id)
            row = await c.fetchrow(
                "UPDATE users SET display_name = $2, username = $3, username_lc = $4,"
                " email = COALESCE($5, email), email_lc = COALESCE($6, email_lc),"
                " email_verified_at = CASE WHEN $6::text IS NULL OR $6 = email_lc"
                "   THEN email_verified_at END"
                f" WHERE id = $1 AND username_lc IS NULL RETURNING {PROFILE_COLUMNS}",
                user_id,
                display_name,
                username,
                fold(username),
                email,
                fold(email) if email else None,
            )
            return None if row is None else profile_from_row(row)

        return await self._in_transaction(run)  # type: ignore[no-any-return]

    async def update_profile(self, user_id: str, changes: ProfileChanges) -> Profile | None:
        sets, params = _changes_sql(changes)
        if not sets:
            return await self.get_profile(user_id)

        async def run(c: asyncpg.Connection) -> Profile | None:
            if changes.email is not None:
                await c.fetch(RELEASE_EMAIL, fold(changes.email), user_id)
            row = await c.fetchrow(
                f"UPDATE users SET {', '.join(sets)} WHERE id = $1 RETURNING {PROFILE_COLUMNS}",
                user_id,
                *params,
            )
            return None if row is None else profile_from_row(row)

        return await self._in_transaction(run)  # type: ignore[no-any-return]

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        status = await self._run(
            self._pool.execute,
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            user_id,
            password_hash,
        )
        return bool(status == "UPDATE 1")

    async def mark_email_verified(self, user_id: str, email: str, at: int) -> bool:
        status = await self._run(
            self._pool.execute,
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $3)"
            " WHERE id = $1 AND email_lc = $2",
            user_id,
            fold(email),
            at,
        )
        return bool(status == "UPDATE 1")

    # avatars

    async def set_avatar(self, user_id: str, avatar: Avatar) -> bool:
        async def run(c: asyncpg.Connection) -> bool:
            status = await c.execute(
                "UPDATE users SET avatar_etag = $2 WHERE id = $1", user_id, avatar.etag
            )
            if status != "UPDATE 1":
                return False
            await c.execute(
                "INSERT INTO avatars (user_id, etag, content_type, data, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET"
                " etag = excluded.etag, content_type = excluded.content_type,"
                " data = excluded.data, updated_at = excluded.updated_at",
                user_id,
                avatar.etag,
                avatar.content_type,
                avatar.data,
                avatar.updated_at,
            )
            return True

        return await self._in_transaction(run)  # type: ignore[no-any-return]

    async def get_avatar(self, user_id: str) -> Avatar | None:
        row = await self._run(
            self._pool.fetchrow,
            "SELECT etag, content_type, data, updated_at FROM avatars WHERE user_id = $1",
            user_id,
        )
        return None if row is None else Avatar(row[0], row[1], bytes(row[2]), row[3])

    async def delete_avatar(self, user_id: str) -> bool:
        async def run(c: asyncpg.Connection) -> bool:
            await c.execute("UPDATE users SET avatar_etag = NULL WHERE id = $1", user_id)
            status = await c.execute("DELETE FROM avatars WHERE user_id = $1", user_id)
            return bool(status == "DELETE 1")

        return await self._in_transaction(run)  # type: ignore[no-any-return]

    # device sessions

    async def list_sessions(self, user_id: str, now: int) -> list[DeviceSession]:
        rows = await self._run(self._pool.fetch, _ACTIVE_FAMILIES, user_id, now)
        return [DeviceSession(*r) for r in rows]

    async def revoke_sessions(
        self, user_id: str, at: int, *, only: str | None = None, keep: str | None = None
    ) -> list[str]:
        async def run(c: asyncpg.Connection) -> list[str]:
            active = [r[0] for r in await c.fetch(_ACTIVE_FAMILIES, user_id, at)]
            chosen = [f for f in active if (only is None or f == only) and f != keep]
            if chosen:
                await c.execute(
                    "UPDATE refresh_tokens SET revoked_at = $1"
                    " WHERE user_id = $2 AND family_id = ANY($3::text[]) AND revoked_at IS NULL",
                    at,
                    user_id,
                    chosen,
                )
            return chosen

        return await self._in_transaction(run)  # type: ignore[no-any-return]

    # signed-out sessions

    async def add_signed_out(
        self, user_id: str, session_ids: Sequence[str], at: int, until: int
    ) -> None:
        if not session_ids:
            return
        await self._run(
            self._pool.execute,
            "INSERT INTO signed_out_sessions (session_id, user_id, signed_out_at, expires_at)"
            " SELECT s, $2, $3, $4 FROM unnest($1::text[]) AS s"
            " ON CONFLICT (session_id) DO UPDATE SET"
            " expires_at = greatest(signed_out_sessions.expires_at, excluded.expires_at)",
            list(session_ids),
            user_id,
            at,
            until,
        )

    async def signed_out_sessions(self, now: int) -> dict[str, int]:
        rows = await self._run(
            self._pool.fetch,
            "SELECT session_id, expires_at FROM signed_out_sessions WHERE expires_at > $1",
            now,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def purge_signed_out(self, now: int) -> None:
        await self._run(
            self._pool.execute, "DELETE FROM signed_out_sessions WHERE expires_at <= $1", now
        )

    # unverified emails yield

    async def release_unverified_email(self, email: str, keep_user_id: str | None) -> list[str]:
        rows = await self._run(self._pool.fetch, RELEASE_EMAIL, fold(email), keep_user_id)
        return [str(r[0]) for r in rows]


# An unverified address is no claim: the accounts holding it lose it.
RELEASE_EMAIL = (
    "UPDATE users SET email = NULL, email_lc = NULL"
    " WHERE email_lc = $1 AND email_verified_at IS NULL AND id IS DISTINCT FROM $2::text"
    " RETURNING id"
)
