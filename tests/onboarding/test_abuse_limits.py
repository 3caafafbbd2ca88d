"""Item 2: velocity limits with growing back-off on code requests and tries.

The limits live in the database and count on the node's clock: the tests
give the node a ``ManualClock`` and move it past each back-off, no waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from realtime_server.base.clock import ManualClock
from tests.onboarding.conftest import Api, Start, assert_error
from tests.onboarding.outside import Outside

FR = "+33612345678"
FR2 = "+33612345600"
FR3 = "+33612345601"
UK = "+447911123456"


@asynccontextmanager
async def api_on(start: Start, outside: Outside, **settings: Any) -> AsyncIterator[Api]:
    async with start(**settings) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            yield Api(http, outside)


def retry_after(response: httpx.Response) -> int:
    assert_error(response, 429, "rate_limited")
    return int(response.headers["Retry-After"])


async def test_codes_to_one_number_back_off_more_each_time(start: Start, outside: Outside):
    clock = ManualClock()
    async with api_on(start, outside, clock=clock, otp_resend_backoff=0.4) as api:
        assert (await api.ask_code(FR)).status_code == 202
        assert retry_after(await api.ask_code(FR)) == 1
        assert outside.sent_to(FR) == 1
        clock.advance(450)
        assert (await api.ask_code(FR)).status_code == 202
        # The second wait is twice the first: 0.45 s is no longer enough.
        clock.advance(450)
        assert_error(await api.ask_code(FR), 429, "rate_limited")
        clock.advance(400)
        assert (await api.ask_code(FR)).status_code == 202
        assert outside.sent_to(FR) == 3


async def test_a_refused_code_request_changes_nothing(start: Start, outside: Outside) -> None:
    clock = ManualClock()
    async with api_on(start, outside, clock=clock, otp_resend_backoff=0.5) as api:
        await api.ask_code(FR)
        code = outside.last_code(FR)
        for _ in range(5):
            assert_error(await api.ask_code(FR), 429, "rate_limited")
        assert outside.sent_to(FR) == 1
        # The refusals made no new code: the first one still signs in.
        assert (await api.verify(FR, code)).status_code == 201
        # Nor did they lengthen the wait: one back-off after the first code, it works.
        clock.advance(550)
        assert (await api.ask_code(FR)).status_code == 202


async def test_one_ip_may_ask_only_so_many_codes(start: Start, outside: Outside) -> None:
    async with api_on(start, outside, otp_sends_per_ip=2) as api:
        assert (await api.ask_code(FR)).status_code == 202
        assert (await api.ask_code(FR2)).status_code == 202
        r = await api.ask_code(FR3)
        assert retry_after(r) > 3000  # the rest of the hour's window
        assert outside.sent_to(FR3) == 0
        assert_error(await api.verify(FR3, "123456"), 400, "code_expired", "code")


async def test_one_country_prefix_may_get_only_so_many_codes(
    start: Start, outside: Outside
) -> None:
    async with api_on(start, outside, otp_sends_per_country=2) as api:
        assert (await api.ask_code(FR)).status_code == 202
        assert (await api.ask_code(FR2)).status_code == 202
        assert_error(await api.ask_code(FR3), 429, "rate_limited")
        assert (await api.ask_code(UK)).status_code == 202  # another country is unaffected
        assert outside.sent_to(FR3) == 0


async def test_one_number_gets_only_so_many_codes_per_window(
    start: Start, outside: Outside
) -> None:
    async with api_on(start, outside, otp_sends_per_target=2) as api:
        await api.ask_code(FR)
        await api.ask_code(FR)
        assert_error(await api.ask_code(FR), 429, "rate_limited")
        assert (await api.ask_code(UK)).status_code == 202


async def test_tries_back_off_after_two_and_a_refused_try_spends_nothing(
    start: Start, outside: Outside
) -> None:
    clock = ManualClock()
    settings = {"otp_verify_backoff": 0.4, "otp_max_attempts": 5}
    async with api_on(start, outside, clock=clock, **settings) as api:
        await api.ask_code(FR)
        right = outside.last_code(FR)
        wrong = "000000" if right != "000000" else "111111"
        r = await api.verify(FR, wrong)
        assert "4 tries left" in assert_error(r, 400, "code_invalid")["message"]
        r = await api.verify(FR, wrong)  # the second try is allowed, and closes the door
        assert "3 tries left" in assert_error(r, 400, "code_invalid")["message"]
        # The third waits (README: "between tries after two free ones"; issue 12).
        assert retry_after(await api.verify(FR, right)) == 1
        assert retry_after(await api.verify(FR, wrong)) == 1
        clock.advance(450)
        r = await api.verify(FR, wrong)  # still 3 left before: refusals spent no try
        assert "2 tries left" in assert_error(r, 400, "code_invalid")["message"]
        assert retry_after(await api.verify(FR, right)) == 1
        clock.advance(850)  # the wait doubled
        assert (await api.verify(FR, right)).status_code == 201


async def test_a_right_code_clears_the_number_s_try_counter(start: Start, outside: Outside):
    async with api_on(start, outside, otp_verify_backoff=5.0) as api:
        await api.ask_code(FR)
        await api.verify(FR, "000000")
        # The second try (closing the door for 5 s) is the right code.
        assert (await api.verify(FR, outside.last_code(FR))).status_code in (200, 201)
        await api.ask_code(FR)
        # Without the clearing this third try in the window would wait 5 s.
        assert (await api.verify(FR, outside.last_code(FR))).status_code == 200


async def test_guessing_every_code_is_out_of_reach(start: Start, outside: Outside) -> None:
    async with api_on(start, outside, otp_verifies_per_target=6, otp_max_attempts=100) as api:
        await api.ask_code(FR)
        right = outside.last_code(FR)
        guesses = [f"{n:06d}" for n in range(7) if f"{n:06d}" != right][:6]
        for guess in guesses:
            assert_error(await api.verify(FR, guess), 400, "code_invalid")
        assert_error(await api.verify(FR, right), 429, "rate_limited")
