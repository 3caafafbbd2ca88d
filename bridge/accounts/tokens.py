"""Access tokens (stateless JWTs) and refresh tokens (stored, rotated, one family per device).

Access token: HS256 JWT with ``sub`` (user id), ``sid`` (the device session,
which is the refresh-token family id), ``typ`` = "access", ``iat``, ``exp`` and
a random ``jti``. Checking one touches no storage, so the WebSocket gateway can
do it synchronously in its hello handshake.

Signing a session out (``sign_out``: remote sign-out, password change or
reset, logout, refresh-token reuse) refuses its access tokens at once. The
session is written to ``signed_out_sessions`` (migration 0008) first, then
added to the set in memory that ``verify_access`` checks; ``load_signed_out``
reads the live rows back when a node starts (the app does it before it
serves), so a restart does not bring the tokens back. A row is kept until the
last access token the session could hold has expired (``access_token_ttl``
after the sign-out, plus a margin), then purged. Other nodes (issue 13) hear
of a sign-out on the user's bus channel with the order to close its sockets,
and refuse its tokens from then on (``signed_out_elsewhere``); a node that
was away from the bus then reads them when it next starts.

Refresh token: 32 random bytes, URL-safe text, handed out once; only its
SHA-256 is stored. Each use rotates it: the old token is marked used and a new
one is issued in the same family. Rules:

- presenting a used or revoked token means two parties hold it (one of them
  stole it), so the whole device session is signed out (``sign_out``: its
  refresh tokens revoked, its access tokens refused, its sockets closed) and
  ``TokenReused`` is raised; the legitimate device signs in again;
- marking used is atomic in storage (``use_refresh_token``), so two concurrent
  rotations of one token cannot both win: the loser is treated as a reuse,
  and its revocation reaches the winner's successor too (see ``rotate``);
- an expired token raises ``TokenExpired``; an unknown one ``TokenInvalid``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from bridge.errors import AuthError, TokenExpired, TokenInvalid, TokenReused
from storage.base import RefreshToken, Store, User, new_id
from storage.errors import StoreError
from storage.onboarding import onboarding_store
from storage.push_tokens import push_token_store

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

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# RFC 7518 3.2: an HMAC key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
_REQUIRED_CLAIMS = ["sub", "sid", "typ", "iat", "exp", "jti"]
# A signed-out session is refused this long past one access-token lifetime: a
# rotation racing the sign-out may have signed a token a moment after it.
SIGN_OUT_MARGIN = 60
PURGE_EVERY = 600  # seconds between sweeps of expired sign-outs


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
        # Signed-out sessions -> until when (seconds) their access tokens could
        # live: refused from now on instead of at expiry (see sign_out).
        self._signed_out: dict[str, float] = {}
        self._accounts = onboarding_store(store)
        self._push_tokens = push_token_store(store)
        self._next_purge = 0.0
        # How a signed-out session's open sockets get closed at once:
        # on_signed_out(user_id, session_ids), set by the app from the node's hub.
        self.on_signed_out: Callable[[str, Sequence[str]], None] | None = None

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

    async def sign_out(self, user_id: str, session_ids: Sequence[str]) -> None:
        """Refuse the access tokens of these (revoked) sessions from now on, on
        this node and after any restart, and close their open sockets.

        Durable first: if the write fails nothing is promised. Their refresh
        tokens are the caller's to revoke (before this).
        """
        if not session_ids:
            return
        now = self._clock()
        until = now + self.access_ttl + SIGN_OUT_MARGIN
        await self._accounts.add_signed_out(
            user_id, session_ids, int(now * 1000), int(until * 1000)
        )
        # Push tokens (issue 15, part 3): a signed-out phone hears nothing more.
        await self._push_tokens.remove_sessions(session_ids)
        if now >= self._next_purge:  # expired entries go, here and in storage
            self._next_purge = now + PURGE_EVERY
            self._signed_out = {s: t for s, t in self._signed_out.items() if t > now}
            purge = True
        else:
            purge = False
        for session_id in session_ids:
            self._signed_out[session_id] = max(until, self._signed_out.get(session_id, 0.0))
        if self.on_signed_out is not None:
            self.on_signed_out(user_id, session_ids)
        if purge:
            try:
                await self._accounts.purge_signed_out(int(now * 1000))
            except StoreError:  # housekeeping: the next sweep retries
                log.warning("could not purge expired sign-outs", exc_info=True)

    def signed_out_elsewhere(self, session_ids: Sequence[str]) -> None:
        """Another node signed these sessions out (and stored it): refuse their
        access tokens here too, for as long as that node does."""
        until = self._clock() + self.access_ttl + SIGN_OUT_MARGIN
        for session_id in session_ids:
            self._signed_out[session_id] = max(until, self._signed_out.get(session_id, 0.0))

    async def load_signed_out(self) -> int:
        """Read the sessions still to be refused from storage (at start-up);
        returns how many. Expired rows are purged on the way."""
        now_ms = self._now_ms()
        await self._accounts.purge_signed_out(now_ms)
        found = await self._accounts.signed_out_sessions(now_ms)
        for session_id, until_ms in found.items():
            until = until_ms / 1000
            self._signed_out[session_id] = max(until, self._signed_out.get(session_id, 0.0))
        return len(found)

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
            await self._reused(record)
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
            await self._reused(record)
            raise TokenReused()
        return pair

    async def _reused(self, record: RefreshToken) -> None:
        """Two parties hold this session's refresh token: sign the whole session out."""
        await self._store.revoke_token_family(record.family_id, self._now_ms())
        await self.sign_out(record.user_id, [record.family_id])

    async def revoke(self, refresh_token: str) -> None:
        """Sign the token's session out: refresh tokens, access tokens and sockets.
        Unknown tokens are ignored: logout is idempotent."""
        record = await self._store.get_refresh_token(hash_refresh_token(refresh_token))
        if record is not None:
            await self._store.revoke_token_family(record.family_id, self._now_ms())
            await self.sign_out(record.user_id, [record.family_id])

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
