"""Issue 12, item 8: behind a reverse proxy, per-address limits count the
client, not the proxy; and nobody else can choose the address they count as.

The test client is the "proxy" (127.0.0.1). With ``TRUSTED_PROXIES`` listing
it, the client address is the right-most hop of the forwarding header that
is not a listed proxy; without, every header is ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from realtime_server.base.settings import SettingsError, load_settings
from tests.onboarding.conftest import Api, Start, assert_error
from tests.onboarding.outside import Outside

FR = ["+33612345601", "+33612345602", "+33612345603", "+33612345604", "+33612345605"]


@asynccontextmanager
async def api_on(start: Start, outside: Outside, **settings: Any) -> AsyncIterator[Api]:
    async with start(**settings) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            yield Api(http, outside)


def xff(value: str) -> dict[str, str]:
    return {"X-Forwarded-For": value}


async def code(api: Api, phone: str, headers: dict[str, str]) -> int:
    r = await api.http.post("/auth/phone/code", json={"phone": phone}, headers=headers)
    if r.status_code == 429:
        assert_error(r, 429, "rate_limited")
    return r.status_code


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
    start: Start, outside: Outside
) -> None:
    async with api_on(
        start, outside, otp_sends_per_ip=1, trusted_proxies="10.0.0.0/8, 127.0.0.1"
    ) as api:
        assert await code(api, FR[0], xff("203.0.113.5")) == 202
        # Another client behind the same proxy is not held back by the first.
        assert await code(api, FR[1], xff("203.0.113.6")) == 202
        # The first one again: its own limit is spent.
        assert await code(api, FR[2], xff("203.0.113.5")) == 429
        # Hops a client writes itself (left of what our proxies added) change nothing.
        assert await code(api, FR[2], xff("198.51.100.1, 203.0.113.5")) == 429
        # A chain of trusted proxies is walked through to the client.
        assert await code(api, FR[2], xff("203.0.113.5, 10.1.2.3")) == 429
        assert outside.sent_to(FR[2]) == 0


async def test_headers_from_an_untrusted_peer_are_ignored(start: Start, outside: Outside) -> None:
    async with api_on(start, outside, otp_sends_per_ip=1, trusted_proxies="10.0.0.0/8") as api:
        assert await code(api, FR[0], xff("203.0.113.5")) == 202
        # 127.0.0.1 is no listed proxy: it cannot pose as another client.
        assert await code(api, FR[1], xff("203.0.113.6")) == 429
        r = await api.http.post(
            "/auth/phone/code", json={"phone": FR[1]}, headers={"Forwarded": "for=203.0.113.7"}
        )
        assert_error(r, 429, "rate_limited")


async def test_the_rfc_7239_header_when_the_proxy_sets_that_one(
    start: Start, outside: Outside
) -> None:
    settings = {"otp_sends_per_ip": 1, "trusted_proxies": "127.0.0.1", "proxy_header": "forwarded"}
    async with api_on(start, outside, **settings) as api:

        def fwd(value: str) -> dict[str, str]:
            return {"Forwarded": value}

        assert await code(api, FR[0], fwd('for="[2001:db8:cafe::17]:4711";proto=https')) == 202
        assert await code(api, FR[1], fwd("for=192.0.2.60;proto=http")) == 202
        # A client rewriting the other header gains nothing: it is not the one read.
        assert await code(api, FR[2], {**fwd("for=192.0.2.60"), **xff("192.0.2.99")}) == 429
        # IPv6 clients count per /64: another address of the same subscriber shares it.
        assert await code(api, FR[3], fwd('for="[2001:db8:cafe::99]"')) == 429
        assert await code(api, FR[3], fwd('for="[2001:db8:beef::1]"')) == 202


async def test_login_limits_count_the_client_behind_the_proxy(
    start: Start, outside: Outside
) -> None:
    async with api_on(start, outside, login_per_ip=1, trusted_proxies="127.0.0.1") as api:

        async def login(client: str) -> httpx.Response:
            return await api.http.post(
                "/auth/login", json={"login": "ada", "password": "x"}, headers=xff(client)
            )

        assert_error(await login("203.0.113.5"), 401, "invalid_credentials")
        assert_error(await login("203.0.113.6"), 401, "invalid_credentials")
        assert_error(await login("203.0.113.5"), 429, "rate_limited")
        r = await api.http.post(
            "/auth/register",
            json={"email": "ada@example.com", "username": "ada", "password": "long enough pw"},
            headers=xff("203.0.113.5"),
        )
        assert r.status_code == 201, r.text


def test_a_malformed_proxy_setting_stops_the_start() -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES.*'10.0.0.0/33'"):
        load_settings({"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/33"}, dotenv=None)
    with pytest.raises(SettingsError, match="PROXY_HEADER"):
        load_settings({"PROXY_HEADER": "x-real-ip"}, dotenv=None)
    s = load_settings({"TRUSTED_PROXIES": " 10.0.0.0/8 ,::1, "}, dotenv=None)
    assert s.trusted_proxies.strip()
