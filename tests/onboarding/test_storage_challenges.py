"""Codes, counters and OIDC states in storage, on both backends, under concurrency."""

from __future__ import annotations

import pytest
import trio

from storage.base import Store, User, new_id, now_ms
from storage.challenges import (
    CodeVerdict,
    LimitRule,
    OidcState,
    OtpCode,
    challenges_store,
)
from storage.onboarding import onboarding_store

TIMEOUT = 20
HOUR = 3_600_000


def a_code(now: int, code_hash: str = "h" * 64) -> OtpCode:
    return OtpCode("signin", "+33612345678", code_hash, now, now + 60_000, max_attempts=3)


async def test_racing_tries_of_the_right_code_let_exactly_one_in(
    store: Store, store_b: Store
) -> None:
    with trio.fail_after(TIMEOUT):
        now = now_ms()
        await challenges_store(store).put_code(a_code(now))
        verdicts: list[CodeVerdict] = []

        async def attempt(s: Store) -> None:
            check = await challenges_store(s).check_code("signin", "+33612345678", "h" * 64, now)
            verdicts.append(check.verdict)

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(attempt, store if i % 2 else store_b)
        assert sorted(v.value for v in verdicts) == ["absent"] * 5 + ["accepted"]


async def test_racing_hits_never_pass_the_limit(store: Store, store_b: Store) -> None:
    with trio.fail_after(TIMEOUT):
        now = now_ms()
        rules = {
            "otp-send:ip:1.2.3.4": LimitRule(3, HOUR),
            "otp-send:target:x": LimitRule(50, HOUR),
        }
        waits: list[int] = []

        async def hit(s: Store) -> None:
            waits.append(await challenges_store(s).hit(rules, now))

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(hit, store if i % 2 else store_b)
        assert sorted(w == 0 for w in waits) == [False] * 5 + [True] * 3
        # The refused five moved no counter: the other key counted only three.
        loose = {"otp-send:target:x": LimitRule(3, HOUR)}
        assert await challenges_store(store).hit(loose, now) > 0


async def test_a_new_code_replaces_the_old_and_purge_drops_expired_rows(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        codes = challenges_store(store)
        now = now_ms()
        await codes.put_code(a_code(now, "a" * 64))
        await codes.put_code(a_code(now, "b" * 64))
        assert (await codes.check_code("signin", "+33612345678", "a" * 64, now)).verdict is (
            CodeVerdict.WRONG
        )
        await codes.purge_expired(now + 61_000)
        check = await codes.check_code("signin", "+33612345678", "b" * 64, now)
        assert check.verdict is CodeVerdict.ABSENT


async def test_an_oidc_state_is_taken_once(store: Store, store_b: Store) -> None:
    with trio.fail_after(TIMEOUT):
        now = now_ms()
        state = OidcState("s" * 64, "code", "google", "n", "v", "b", "web", now, now + 60_000)
        await challenges_store(store).put_oidc_state(state)
        taken: list[OidcState | None] = []

        async def take(s: Store) -> None:
            taken.append(await challenges_store(s).take_oidc_state("s" * 64))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(take, store if i % 2 else store_b)
        assert [t for t in taken if t is not None] == [state]


async def test_sessions_are_refresh_families_and_revoking_spares_the_kept_one(
    store: Store,
) -> None:
    from bridge.accounts.tokens import TokenService

    with trio.fail_after(TIMEOUT):
        user = User(new_id("u_"), "a@example.com", "ada", "Ada", "x", now_ms())
        await store.create_user(user)
        tokens = TokenService("k" * 40, 60, 3600, store)
        first = await tokens.issue_pair(user, "pixel")
        second = await tokens.issue_pair(user, "laptop")
        await tokens.rotate(first.refresh_token)  # same session, new token
        accounts = onboarding_store(store)
        listed = await accounts.list_sessions(user.id, now_ms())
        assert {s.session_id for s in listed} == {first.session_id, second.session_id}
        ended = await accounts.revoke_sessions(user.id, now_ms(), keep=second.session_id)
        assert ended == [first.session_id]
        assert [s.session_id for s in await accounts.list_sessions(user.id, now_ms())] == [
            second.session_id
        ]
        assert await accounts.revoke_sessions(user.id, now_ms(), only=first.session_id) == []


class ManualClock:
    """An injected wall clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_expiry_and_back_off_follow_the_injected_clock(store: Store) -> None:
    from bridge.accounts.otp import OtpService, Purpose
    from bridge.accounts.ratelimit import Limits
    from bridge.accounts.sms import ConsoleSms
    from bridge.errors import BridgeError, RateLimited
    from realtime_server.base.settings import Settings

    with trio.fail_after(TIMEOUT):
        clock = ManualClock()
        settings = Settings(jwt_secret="k" * 40, otp_ttl=60, otp_resend_backoff=30.0)
        sms = ConsoleSms()
        limits = Limits(store, settings, clock=clock)
        otp = OtpService(store, settings, limits, sms, mailer=None, clock=clock)  # type: ignore[arg-type]
        phone = "+33612345678"
        await otp.send_sms_code(Purpose.SIGNIN, phone, "ip", 33)
        clock.now += 29
        with pytest.raises(RateLimited) as refused:
            await otp.send_sms_code(Purpose.SIGNIN, phone, "ip", 33)
        assert refused.value.retry_after == 1
        clock.now += 1
        await otp.send_sms_code(Purpose.SIGNIN, phone, "ip", 33)  # 30 s later: allowed
        code = sms.outbox[-1].body.split()[0]
        clock.now += 61  # past the code's 60 s
        with pytest.raises(BridgeError) as expired:
            await otp.verify(Purpose.SIGNIN, phone, code, "ip")
        assert expired.value.code.value == "code_expired"
        assert len(sms.outbox) == 2
