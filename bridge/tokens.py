"""Access tokens (stateless JWTs) and refresh tokens (stored, rotated, one family per device).

Access token: HS256 JWT with ``sub`` (user id), ``sid`` (the device session,
which is the refresh-token family id), ``typ`` = "access", ``iat``, ``exp`` and
a random ``jti``. Checking one touches no storage, so the WebSocket gateway can
do it synchronously in its hello handshake. A signed-out session's access
tokens stay valid until they expire (``access_token_ttl``, minutes): keep that
TTL short. Sessions ended by remote sign-out, a password change or a reset
are the exception on the node that ended them: ``forget_sessions`` refuses
their access tokens at once, still without touching storage.

Refresh token: 32 random bytes, URL-safe text, handed out once; only its
SHA-256 is stored. Each use rotates it: the old token is marked used and a new
one is issued in the same family. Rules:

- presenting a used or revoked token means two parties hold it (one of them
  stole it), so the whole family is revoked and ``TokenReused`` is raised;
  the legitimate device signs in again;
- marking used is atomic in storage (``use_refresh_token``), so two concurrent
  rotations of one token cannot both win: the loser is treated as a reuse,
  and its revocation reaches the winner's successor too (see ``rotate``);
- an expired token raises ``TokenExpired``; an unknown one ``TokenInvalid``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from bridge.errors import AuthError, TokenExpired, TokenInvalid, TokenReused
from storage.base import RefreshToken, Store, User, new_id

__all__ = [
    "AccessClaims",
    "AuthError",
    "TokenExpired",
    "TokenInvalid",
    "TokenPair",
    "TokenReused",
    "TokenService",
    "hash_refresh_token",
]

ALGORITHM = "HS256"
# RFC 7518 3.2: an HMAC key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
_REQUIRED_CLAIMS = ["sub", "sid", "typ", "iat", "exp", "jti"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: int  # milliseconds since the Unix epoch, like every time in this codebase


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    session_id: str
    token_type: str = "Bearer"


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(
        self,
        secret: str,
        access_ttl: int,
        refresh_ttl: int,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ):
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._store = store
        self._clock = clock
        # Sessions signed out on this node -> until when their access tokens
        # would live: refused from now on instead of at expiry (see forget_sessions).
        self._signed_out: dict[str, float] = {}

    # ----- access tokens ---------------------------------------------------

    def issue_access(self, user_id: str, session_id: str) -> str:
        now = int(self._clock())
        claims = {
            "sub": user_id,
            "sid": session_id,
            "typ": "access",
            "iat": now,
            "exp": now + self.access_ttl,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify_access(self, token: str) -> AccessClaims:
        """Check signature, type and expiry. Synchronous and storage-free on purpose."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # Expiry is checked below against our clock, so tests can move time.
                options={"verify_exp": False, "verify_iat": False, "require": _REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid() from exc
        user_id, session_id, exp = claims["sub"], claims["sid"], claims["exp"]
        if (
            claims["typ"] != "access"
            or not isinstance(user_id, str)
            or not isinstance(session_id, str)
            or not isinstance(exp, int)
            or isinstance(exp, bool)
        ):
            raise TokenInvalid()
        if exp <= self._clock():
            raise TokenExpired()
        if session_id in self._signed_out:
            raise TokenInvalid("This session was signed out; sign in again.")
        return AccessClaims(user_id=user_id, session_id=session_id, expires_at=exp * 1000)

    def forget_sessions(self, session_ids: list[str]) -> None:
        """Refuse the access tokens of these (revoked) sessions from now on.

        Held in memory for one access-token lifetime, after which the tokens
        expire anyway. Per node: another node learns of it when the session
        fails to refresh (the bus is where this would travel between nodes).
        """
        now = self._clock()
        if len(self._signed_out) > 10_000:
            self._signed_out = {s: t for s, t in self._signed_out.items() if t > now}
        until = now + self.access_ttl
        for session_id in session_ids:
            self._signed_out[session_id] = until

    # ----- refresh tokens --------------------------------------------------

    async def issue_pair(self, user: User, device: str) -> TokenPair:
        """Sign ``user`` in on ``device``: a new session (refresh family)."""
        return await self._issue(user.id, new_id("s_"), device)

    async def sign_in(self, user_id: str, device: str) -> TokenPair:
        """``issue_pair`` for callers that hold a user id rather than a ``User``."""
        return await self._issue(user_id, new_id("s_"), device)

    async def rotate(self, refresh_token: str) -> TokenPair:
        token_hash = hash_refresh_token(refresh_token)
        record = await self._store.get_refresh_token(token_hash)
        if record is None:
            raise TokenInvalid("Unknown refresh token; sign in again.")
        now = self._now_ms()
        if record.used_at is not None or record.revoked_at is not None:
            await self._store.revoke_token_family(record.family_id, now)
            raise TokenReused()
        if record.expires_at <= now:
            raise TokenExpired("The refresh token has expired; sign in again.")
        # The successor is stored BEFORE the old token is marked used. A
        # revocation reaches only tokens already stored, and whoever revokes
        # for reuse has first seen our mark (it read used_at, or its own mark
        # failed), so it sees our successor too. The other order leaves the
        # successor alive when a reuse lands between mark and store (seen on
        # PostgreSQL). A successor orphaned by a crash here is harmless: its
        # secret was never handed out.
        pair = await self._issue(record.user_id, record.family_id, record.device)
        if not await self._store.use_refresh_token(token_hash, now):
            # Someone used or revoked it after our read: a reuse, or a logout.
            await self._store.revoke_token_family(record.family_id, now)
            raise TokenReused()
        return pair

    async def revoke(self, refresh_token: str) -> None:
        """Sign the token's session out. Unknown tokens are ignored: logout is idempotent."""
        record = await self._store.get_refresh_token(hash_refresh_token(refresh_token))
        if record is not None:
            await self._store.revoke_token_family(record.family_id, self._now_ms())

    async def _issue(self, user_id: str, family_id: str, device: str) -> TokenPair:
        refresh_token = secrets.token_urlsafe(32)
        now = self._now_ms()
        await self._store.add_refresh_token(
            RefreshToken(
                token_hash=hash_refresh_token(refresh_token),
                user_id=user_id,
                family_id=family_id,
                device=device,
                created_at=now,
                expires_at=now + self.refresh_ttl * 1000,
            )
        )
        return TokenPair(
            access_token=self.issue_access(user_id, family_id),
            refresh_token=refresh_token,
            expires_in=self.access_ttl,
            session_id=family_id,
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
