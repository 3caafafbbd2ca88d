"""Argon2id password hashing off the event loop.

A hash costs tens of milliseconds of CPU and ``memory_kib`` of RAM by design.
The WebSocket gateway shares this trio loop, so every hash runs in a worker
thread, and a limiter caps how many run at once: a burst of logins then queues
instead of allocating ``memory_kib`` per request and starving the loop's
threads.
"""

from __future__ import annotations

import os
import secrets

import argon2
import trio
from argon2.exceptions import InvalidHashError, VerificationError


class PasswordHasher:
    def __init__(self, time_cost: int, memory_kib: int, *, max_concurrent: int | None = None):
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1
        )
        self._limiter = trio.CapacityLimiter(max_concurrent or max(2, os.cpu_count() or 2))
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, hash: str, password: str) -> bool:
        """True when ``password`` matches ``hash``; a malformed hash is a mismatch."""
        return await trio.to_thread.run_sync(self._verify, hash, password, limiter=self._limiter)

    async def verify_dummy(self, password: str) -> None:
        """Spend what a real verify costs, for logins of unknown users.

        Answering "no such user" faster than "wrong password" would tell an
        attacker which logins exist.
        """
        if self._dummy_hash is None:
            # Making the hash costs what verifying it would: the first call is
            # no slower than the others.
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        else:
            await self.verify(self._dummy_hash, password)

    def needs_rehash(self, hash: str) -> bool:
        """True when ``hash`` was made with other parameters than ours."""
        try:
            return self._hasher.check_needs_rehash(hash)
        except InvalidHashError:
            return True

    def _verify(self, hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(hash, password)
        except (VerificationError, InvalidHashError):
            return False
