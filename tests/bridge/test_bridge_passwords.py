"""PasswordHasher: argon2id in worker threads, so the event loop keeps running."""

from __future__ import annotations

import trio
import trio.lowlevel

from bridge.accounts.passwords import PasswordHasher

CHEAP = PasswordHasher(time_cost=1, memory_kib=1024)


async def test_a_hash_verifies_its_password_only() -> None:
    with trio.fail_after(10):
        hashed = await CHEAP.hash("correct horse battery")
        assert hashed.startswith("$argon2id$")
        assert await CHEAP.verify(hashed, "correct horse battery")
        assert not await CHEAP.verify(hashed, "correct horse batterY")


async def test_the_same_password_hashes_differently_each_time() -> None:
    with trio.fail_after(10):
        assert await CHEAP.hash("pw-pw-pw-pw") != await CHEAP.hash("pw-pw-pw-pw")


async def test_a_malformed_hash_is_a_mismatch_not_a_crash() -> None:
    with trio.fail_after(10):
        assert not await CHEAP.verify("not-a-hash", "whatever")
        assert not await CHEAP.verify("", "whatever")


async def test_the_dummy_verify_accepts_nothing_and_costs_a_verify() -> None:
    with trio.fail_after(10):
        await CHEAP.verify_dummy("anything")  # returns None: there is no user to match


async def test_hashing_does_not_block_the_event_loop() -> None:
    # Costly enough that a blocking hash would freeze the loop for a while.
    hasher = PasswordHasher(time_cost=3, memory_kib=32 * 1024)
    ticks = 0
    done = False

    async def tick() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tick)
            await hasher.hash("correct horse battery")
            done = True
    # The ticker kept running while the hash was computed elsewhere.
    assert ticks > 10


def test_hashes_made_with_other_costs_need_a_rehash() -> None:
    stronger = PasswordHasher(time_cost=2, memory_kib=2048)
    old = stronger._hasher.hash("pw-pw-pw-pw")  # synchronous on purpose: test set-up
    assert CHEAP.needs_rehash(old)
    assert not stronger.needs_rehash(old)
    assert CHEAP.needs_rehash("garbage")
