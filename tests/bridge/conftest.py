"""Fixtures: the REST app served over a real loopback socket, and a client on it.

Storage comes from the shared ``store`` fixture (tests/conftest.py), which is
parametrized over SQLite and PostgreSQL, so every test here runs on both.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from bridge.services import BridgeServices
from realtime_server.base.settings import Settings
from storage.base import Store
from tests.bridge.rest_client import MAX_REQUEST_BYTES, Rest, open_server


@pytest.fixture
def settings() -> Settings:
    return Settings().replace(
        jwt_secret=secrets.token_urlsafe(48),
        # Cheap hashing: these tests are about the API, not argon2's cost.
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        max_request_bytes=MAX_REQUEST_BYTES,
    )


@pytest.fixture
def services(settings: Settings, store: Store) -> BridgeServices:
    return BridgeServices.build(settings, store)


@pytest.fixture
def serve_app() -> Callable[[BridgeServices], AbstractAsyncContextManager[str]]:
    """For tests that need an app on other services than the usual ones."""
    return open_server


@pytest.fixture
async def base_url(services: BridgeServices) -> AsyncIterator[str]:
    async with open_server(services) as url:
        yield url


@pytest.fixture
async def rest(base_url: str, services: BridgeServices) -> AsyncIterator[Rest]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield Rest(http, services)
