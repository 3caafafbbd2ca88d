"""Issue 12, item 2: password sign-in, sign-up and refresh are throttled,
slowing a guesser without locking the owner out.

Each client here has its own loopback source address (127.0.0.x), so "from
another address" is a real other peer, not a header. The limits live in the
database and count on the node's clock: the tests that wait out a back-off or a
window give the node a ``ManualClock`` and move it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import trio

from realtime_server.base.clock import ManualClock
from tests.onboarding.conftest import Start, assert_error

PASSWORD = "correct horse battery"


@asynccontextmanager
async def clients(
    start: Start, count: int, **settings: Any
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` clients on one node, the i-th from 127.0.0.(i+2)."""
    async with start(**settings) as node, AsyncExitStack() as stack:
        found = []
        for i in range(count):
            transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{i + 2}")
            found.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=node.http_url, transport=transport, timeout=10)
                )
            )
        yield found


async def register(http: httpx.AsyncClient, name: str) -> httpx.Response:
    return await http.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
    )


async def login(http: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await http.post("/auth/login", json={"login": login, "password": password})


def retry_after(response: httpx.Response) -> int:
    assert_error(response, 429, "rate_limited")
    return int(response.headers["Retry-After"])


async def test_a_guesser_is_slowed_down_more_each_time_and_the_owner_is_not(
    start: Start,
) -> None:
    clock = ManualClock()
    settings = {"login_free_tries": 3, "login_backoff": 0.6}
    async with clients(start, 2, clock=clock, **settings) as (guesser, owner):
        assert (await register(owner, "ada")).status_code == 201
        for _ in range(3):  # the free tries
            assert_error(await login(guesser, "ada", "wrong"), 401, "invalid_credentials")
        # The fourth is answered, and starts the back-off.
        assert_error(await login(guesser, "ada", "wrong"), 401, "invalid_credentials")
        assert retry_after(await login(guesser, "ada", "wrong")) == 1
        # Even the right password waits from there: the guesser learns nothing.
        assert retry_after(await login(guesser, "ada", PASSWORD)) == 1
        # The owner, from elsewhere, signs in at once, and by username or email alike.
        assert (await login(owner, "ada", PASSWORD)).status_code == 200
        assert (await login(owner, "ADA@example.com", PASSWORD)).status_code == 200
        # The guesser's wait doubles: one back-off is not enough any more.
        clock.advance(650)
        assert_error(await login(guesser, "ada", "wrong"), 401, "invalid_credentials")
        clock.advance(650)
        assert_error(await login(guesser, "ada", "wrong"), 429, "rate_limited")
        clock.advance(600)
        assert_error(await login(guesser, "ada", "wrong"), 401, "invalid_credentials")


async def test_a_right_password_clears_the_back_off_of_that_address(start: Start) -> None:
    clock = ManualClock()
    async with clients(start, 1, clock=clock, login_free_tries=2, login_backoff=0.3) as (me,):
        assert (await register(me, "ada")).status_code == 201
        for _ in range(3):
            assert_error(await login(me, "ada", "typo"), 401, "invalid_credentials")
        clock.advance(350)
        assert (await login(me, "ada", PASSWORD)).status_code == 200
        # My earlier typos no longer count: two free tries again, then a right one.
        for _ in range(2):
            assert_error(await login(me, "ada", "typo"), 401, "invalid_credentials")
        assert (await login(me, "ada", PASSWORD)).status_code == 200


async def test_many_addresses_together_hold_the_owner_back_only_briefly(start: Start) -> None:
    clock = ManualClock()
    settings = {"login_per_account": 4, "login_account_window": 2}
    async with clients(start, 7, clock=clock, **settings) as (home, new_phone, *attackers):
        assert (await register(home, "ada")).status_code == 201
        assert (await login(home, "ada", PASSWORD)).status_code == 200
        for attacker in attackers[:3]:
            assert_error(await login(attacker, "ada", "wrong"), 401, "invalid_credentials")
        # One login, from anywhere: a fifth address is refused, and so is the
        # owner on a new device...
        assert retry_after(await login(attackers[3], "ada", "wrong")) <= 2
        assert retry_after(await login(new_phone, "ada", PASSWORD)) <= 2
        # ...but not where they signed in before, and other logins are not held up.
        assert (await login(home, "ada", PASSWORD)).status_code == 200
        assert (await register(home, "bob")).status_code == 201
        assert (await login(attackers[3], "bob", PASSWORD)).status_code == 200
        # The wait is short.
        clock.advance(2050)
        assert (await login(new_phone, "ada", PASSWORD)).status_code == 200


async def test_one_address_trying_many_logins_is_limited(start: Start) -> None:
    async with clients(start, 2, login_per_ip=3) as (stuffer, other):
        for name in ("ada", "bob", "cyd"):
            assert_error(await login(stuffer, name, "hunter2"), 401, "invalid_credentials")
        assert retry_after(await login(stuffer, "dee", "hunter2")) > 800  # the 15 min window
        assert_error(await login(other, "dee", "hunter2"), 401, "invalid_credentials")


async def test_sign_ups_from_one_address_are_limited(start: Start) -> None:
    async with clients(start, 2, register_per_ip=2) as (farm, other):
        assert (await register(farm, "ada")).status_code == 201
        assert (await register(farm, "bob")).status_code == 201
        assert retry_after(await register(farm, "cyd")) > 3500  # the hour's window
        # Nothing was made for the refused one, and another address signs up.
        assert (await register(other, "cyd")).status_code == 201


async def test_refreshes_from_one_address_are_limited(start: Start) -> None:
    async with clients(start, 2, refresh_per_ip=2, refresh_window=60) as (loop, other):
        body = (await register(loop, "ada")).json()
        token = body["refresh_token"]
        for _ in range(2):
            r = await loop.post("/auth/refresh", json={"refresh_token": token})
            assert r.status_code == 200, r.text
            token = r.json()["refresh_token"]
        assert retry_after(await loop.post("/auth/refresh", json={"refresh_token": token})) > 50
        # The refused refresh spent nothing: the token still works from elsewhere.
        r = await other.post("/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 200, r.text


async def test_a_stolen_access_token_cannot_guess_the_password(start: Start) -> None:
    async with clients(start, 2, login_free_tries=2, login_backoff=30) as (thief, owner):
        ada = (await register(owner, "ada")).json()
        stolen = {"Authorization": f"Bearer {ada['access_token']}"}

        async def change(http: httpx.AsyncClient, current: str) -> httpx.Response:
            return await http.post(
                "/me/password",
                json={"current_password": current, "new_password": "mine now, all mine"},
                headers=stolen,
            )

        for _ in range(3):
            assert_error(await change(thief, "guess"), 403, "wrong_password", "current_password")
        assert retry_after(await change(thief, PASSWORD)) == 30
        # The owner's own sign-in is untouched.
        assert (await login(owner, "ada", PASSWORD)).status_code == 200


async def test_requests_at_the_same_moment_under_the_limit_are_all_admitted(
    start: Start,
) -> None:
    # Each request reads the clock before it queues for the counter's write:
    # one that commits after a later reader must not be refused for that.
    async with clients(start, 1, register_per_ip=16) as (http,):
        answers: list[int] = []

        async def sign_up(i: int) -> None:
            answers.append((await register(http, f"user{i}")).status_code)

        async def ask_code(i: int) -> None:
            r = await http.post("/auth/phone/code", json={"phone": f"+336123456{i:02d}"})
            answers.append(r.status_code)

        async with trio.open_nursery() as nursery:
            for i in range(16):
                nursery.start_soon(sign_up, i)
                nursery.start_soon(ask_code, i)
        assert sorted(answers) == [201] * 16 + [202] * 16
