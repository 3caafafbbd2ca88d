"""TokenService on its own: access-token checks, and refresh rotation against real storage."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest
import trio

from bridge.accounts.tokens import (
    AccessClaims,
    AuthError,
    TokenExpired,
    TokenInvalid,
    TokenReused,
    TokenService,
    hash_refresh_token,
)
from protocol.errors import ErrorCode
from storage.base import Store, User, new_id, now_ms

SECRET = secrets.token_urlsafe(48)


class Clock:
    """Wall time we can move by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def tokens_on(store: Store, clock: Clock | None = None, secret: str = SECRET) -> TokenService:
    return TokenService(secret, 900, 3600, store, clock=clock or time.time)


async def new_user(store: Store) -> User:
    name = f"u{secrets.token_hex(4)}"
    user = User(new_id("u_"), f"{name}@example.com", name, name, "x", now_ms())
    await store.create_user(user)
    return user


def test_token_errors_carry_the_codes_clients_see() -> None:
    assert TokenInvalid().code == ErrorCode.UNAUTHORIZED
    assert TokenExpired().code == ErrorCode.TOKEN_EXPIRED
    assert issubclass(TokenInvalid, AuthError) and issubclass(TokenExpired, AuthError)
    assert issubclass(TokenReused, AuthError)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenService("too-short", 900, 3600, store=None)  # type: ignore[arg-type]


async def test_an_access_token_carries_user_and_session(store: Store) -> None:
    clock = Clock()
    tokens = tokens_on(store, clock)
    claims = tokens.verify_access(tokens.issue_access("u_1", "s_1"))
    assert claims == AccessClaims("u_1", "s_1", expires_at=(int(clock.now) + 900) * 1000)


async def test_access_tokens_are_unique_even_within_one_second(store: Store) -> None:
    tokens = tokens_on(store, Clock())
    assert tokens.issue_access("u_1", "s_1") != tokens.issue_access("u_1", "s_1")


async def test_an_access_token_expires_after_its_ttl(store: Store) -> None:
    clock = Clock()
    tokens = tokens_on(store, clock)
    token = tokens.issue_access("u_1", "s_1")
    clock.now += 899
    tokens.verify_access(token)
    clock.now += 1
    with pytest.raises(TokenExpired):
        tokens.verify_access(token)


@pytest.mark.parametrize(
    "claims",
    [
        {"typ": "refresh"},
        {"sub": 42},
        {"sid": None},
        {"exp": "never"},
        {"exp": True},
    ],
)
async def test_wrongly_shaped_claims_are_invalid(store: Store, claims: dict[str, object]) -> None:
    now = int(time.time())
    base = {"sub": "u", "sid": "s", "typ": "access", "iat": now, "exp": now + 60, "jti": "j"}
    token = jwt.encode({**base, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        tokens_on(store).verify_access(token)


async def test_a_token_without_a_required_claim_is_invalid(store: Store) -> None:
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        tokens_on(store).verify_access(token)


async def test_refresh_tokens_are_stored_only_as_hashes(store: Store) -> None:
    with trio.fail_after(10):
        user = await new_user(store)
        pair = await tokens_on(store).issue_pair(user, "phone")
        record = await store.get_refresh_token(hash_refresh_token(pair.refresh_token))
        assert await store.get_refresh_token(pair.refresh_token) is None
    assert record is not None
    assert (record.user_id, record.family_id, record.device) == (user.id, pair.session_id, "phone")


async def test_rotation_keeps_the_session_and_the_device(store: Store) -> None:
    tokens = tokens_on(store)
    with trio.fail_after(10):
        user = await new_user(store)
        first = await tokens.issue_pair(user, "phone")
        second = await tokens.rotate(first.refresh_token)
        record = await store.get_refresh_token(hash_refresh_token(second.refresh_token))
    assert second.session_id == first.session_id
    assert tokens.verify_access(second.access_token).session_id == first.session_id
    assert record is not None and record.device == "phone"


async def test_a_refresh_token_expires_after_its_ttl(store: Store) -> None:
    clock = Clock()
    tokens = tokens_on(store, clock)
    with trio.fail_after(10):
        user = await new_user(store)
        pair = await tokens.issue_pair(user, "phone")
        clock.now += 3600
        with pytest.raises(TokenExpired):
            await tokens.rotate(pair.refresh_token)


async def test_concurrent_rotations_of_one_token_leave_no_live_session(store: Store) -> None:
    # Two services on one store: two nodes behind a load balancer.
    nodes = [tokens_on(store), tokens_on(store)]
    outcomes: list[str] = []
    successors: list[str] = []

    async def rotate(node: TokenService, token: str) -> None:
        try:
            successors.append((await node.rotate(token)).refresh_token)
            outcomes.append("rotated")
        except TokenReused:
            outcomes.append("reused")

    with trio.fail_after(10):
        user = await new_user(store)
        pair = await nodes[0].issue_pair(user, "phone")
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(rotate, nodes[i % 2], pair.refresh_token)
        assert sorted(outcomes) == ["reused"] * 5 + ["rotated"]
        # A reuse was detected, so even the winner's new token is revoked.
        with pytest.raises(TokenReused):
            await nodes[0].rotate(successors[0])


async def test_revoke_ends_only_its_own_session(store: Store) -> None:
    tokens = tokens_on(store)
    with trio.fail_after(10):
        user = await new_user(store)
        phone = await tokens.issue_pair(user, "phone")
        laptop = await tokens.issue_pair(user, "laptop")
        await tokens.revoke(phone.refresh_token)
        await tokens.revoke("never-issued")  # ignored
        with pytest.raises(TokenReused):
            await tokens.rotate(phone.refresh_token)
        await tokens.rotate(laptop.refresh_token)
