"""Users and refresh tokens, on both backends."""

from __future__ import annotations

import pytest
import trio

from storage.base import RefreshToken, Store, User, new_id, now_ms
from storage.errors import Conflict, NotFound

TIMEOUT = 15


def user(email: str, username: str) -> User:
    return User(new_id("u_"), email, username, username, "hash", now_ms())


def token(user_id: str, family_id: str, *, expires_in: int = 60_000) -> RefreshToken:
    at = now_ms()
    return RefreshToken(new_id("t_"), user_id, family_id, "phone", at, at + expires_in)


async def test_create_and_look_up_case_insensitively(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = user("Alice@Example.COM", "AliceW")
        await store.create_user(alice)

        assert await store.get_user(alice.id) == alice
        for login in ("alice@example.com", "ALICE@EXAMPLE.COM", "alicew", "ALICEW", " AliceW "):
            assert await store.get_user_by_login(login) == alice, login
        assert await store.get_user_by_login("bob") is None
        assert await store.get_user(new_id("u_")) is None


async def test_non_ascii_names_fold_the_same_on_both_backends(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        emile = user("Émile@Exemple.fr", "ÉMILE")
        await store.create_user(emile)

        assert await store.get_user_by_login("émile@exemple.fr") == emile
        assert await store.get_user_by_login("émile") == emile
        with pytest.raises(Conflict) as info:
            await store.create_user(user("other@x.fr", "émile"))
        assert info.value.field == "username"


async def test_email_taken_in_another_case_is_a_conflict(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.create_user(user("a@example.com", "a"))
        with pytest.raises(Conflict) as info:
            await store.create_user(user("A@EXAMPLE.com", "b"))
        assert info.value.field == "email"


async def test_username_taken_in_another_case_is_a_conflict(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        await store.create_user(user("a@example.com", "alice"))
        with pytest.raises(Conflict) as info:
            await store.create_user(user("b@example.com", "ALICE"))
        assert info.value.field == "username"
        # The failed insert left nothing behind.
        assert await store.get_user_by_login("b@example.com") is None


async def test_update_user(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = user("a@example.com", "alice")
        await store.create_user(alice)

        updated = await store.update_user(alice.id, display_name="Alice W.")
        assert updated is not None
        assert updated.display_name == "Alice W."
        assert updated.email == alice.email
        assert await store.get_user(alice.id) == updated
        assert await store.update_user(new_id("u_"), display_name="nobody") is None


async def test_existing_user_ids(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        users = [user(f"u{i}@example.com", f"u{i}") for i in range(3)]
        for u in users:
            await store.create_user(u)
        ghost = new_id("u_")

        found = await store.existing_user_ids([users[0].id, ghost, users[2].id, users[0].id])
        assert found == {users[0].id, users[2].id}
        assert await store.existing_user_ids([]) == set()


async def test_existing_user_ids_with_many_ids(store: Store) -> None:
    # More ids than SQLite binds in one statement by our chunk size.
    with trio.fail_after(TIMEOUT):
        alice = user("a@example.com", "alice")
        await store.create_user(alice)
        ids = [new_id("u_") for _ in range(1500)] + [alice.id]
        assert await store.existing_user_ids(ids) == {alice.id}


async def test_refresh_token_is_used_once(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = user("a@example.com", "alice")
        await store.create_user(alice)
        t = token(alice.id, "fam1")
        await store.add_refresh_token(t)
        assert await store.get_refresh_token(t.token_hash) == t

        at = now_ms()
        assert await store.use_refresh_token(t.token_hash, at) is True
        assert await store.use_refresh_token(t.token_hash, at + 1) is False

        stored = await store.get_refresh_token(t.token_hash)
        assert stored is not None
        assert stored.used_at == at
        assert stored.revoked_at is None
        assert await store.use_refresh_token("no-such-hash", at) is False
        assert await store.get_refresh_token("no-such-hash") is None


async def test_racing_uses_of_one_token_let_exactly_one_win(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = user("a@example.com", "alice")
        await store.create_user(alice)
        t = token(alice.id, "fam1")
        await store.add_refresh_token(t)
        results: list[bool] = []

        async def use() -> None:
            results.append(await store.use_refresh_token(t.token_hash, now_ms()))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(use)
        assert sorted(results) == [False] * 7 + [True]


async def test_revoking_a_family_revokes_all_its_tokens_only(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = user("a@example.com", "alice")
        await store.create_user(alice)
        first, second = token(alice.id, "fam1"), token(alice.id, "fam1")
        other = token(alice.id, "fam2")
        for t in (first, second, other):
            await store.add_refresh_token(t)
        assert await store.use_refresh_token(first.token_hash, now_ms())

        at = now_ms()
        await store.revoke_token_family("fam1", at)

        for t in (first, second):
            stored = await store.get_refresh_token(t.token_hash)
            assert stored is not None and stored.revoked_at == at
        assert await store.use_refresh_token(second.token_hash, at) is False
        untouched = await store.get_refresh_token(other.token_hash)
        assert untouched is not None and untouched.revoked_at is None
        assert await store.use_refresh_token(other.token_hash, at) is True

        # Revoking again keeps the first revocation time.
        await store.revoke_token_family("fam1", at + 5)
        stored = await store.get_refresh_token(first.token_hash)
        assert stored is not None and stored.revoked_at == at


async def test_duplicate_token_and_unknown_user(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = user("a@example.com", "alice")
        await store.create_user(alice)
        t = token(alice.id, "fam1")
        await store.add_refresh_token(t)
        with pytest.raises(Conflict) as info:
            await store.add_refresh_token(t)
        assert info.value.field == "token"
        with pytest.raises(NotFound):
            await store.add_refresh_token(token(new_id("u_"), "fam3"))
