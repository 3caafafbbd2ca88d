"""Fixtures: the outside world (Twilio, SendGrid, an OpenID provider) on loopback,
and a whole node configured to use it.

``start(**settings)`` starts a node on ``database_url`` (SQLite and
PostgreSQL) wired to ``outside``; ``onode``/``api`` are one started with the
defaults below: no back-off (tests of back-off set their own) and limits high
enough that only the tests about limits meet them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from realtime_server.node import Node
from storage.base import Store
from storage.sql.factory import open_store
from tests.bridge.rest_client import Rest
from tests.conftest import NodeFactory
from tests.onboarding.outside import (
    CLIENT_ID,
    CLIENT_SECRET,
    MOBILE_CLIENT_ID,
    REDIRECT_URI,
    SENDGRID_KEY,
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    Outside,
    open_outside,
)

assert_error = Rest.assert_error


def outside_settings(world: Outside) -> dict[str, Any]:
    return {
        "sms_provider": "twilio",
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_from": TWILIO_FROM,
        "twilio_api_base": world.url,
        "email_provider": "sendgrid",
        "sendgrid_api_key": SENDGRID_KEY,
        "sendgrid_api_base": world.url,
        "email_from": "no-reply@chat.example",
        "google_client_id": CLIENT_ID,
        "google_client_secret": CLIENT_SECRET,
        "google_redirect_uri": REDIRECT_URI,
        "google_issuer": world.issuer,
        "google_mobile_client_ids": MOBILE_CLIENT_ID,
        "otp_resend_backoff": 0.0,
        "otp_verify_backoff": 0.0,
        "otp_sends_per_target": 50,
        "otp_sends_per_ip": 500,
        "otp_verifies_per_target": 50,
        "otp_verifies_per_ip": 500,
    }


Start = Callable[..., AbstractAsyncContextManager[Node]]


@pytest.fixture
async def store_b(store: Store, database_url: str) -> AsyncIterator[Store]:
    """A second store on the same database, as a second node would have."""
    async with open_store(database_url) as other:
        yield other


@pytest.fixture
async def outside() -> AsyncIterator[Outside]:
    async with open_outside() as world:
        yield world


@pytest.fixture
def start(node_factory: NodeFactory, outside: Outside) -> Start:
    def start_node(**overrides: Any) -> AbstractAsyncContextManager[Node]:
        return node_factory(**{**outside_settings(outside), **overrides})

    return start_node


@pytest.fixture
async def onode(start: Start) -> AsyncIterator[Node]:
    async with start() as node:
        yield node


@dataclass
class Person:
    id: str
    access_token: str
    refresh_token: str
    phone: str | None = None
    username: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    """An HTTP client on a node, with the onboarding steps as verbs."""

    def __init__(self, http: httpx.AsyncClient, world: Outside) -> None:
        self.http = http
        self.world = world

    async def ask_code(self, phone: str, **extra: Any) -> httpx.Response:
        return await self.http.post("/auth/phone/code", json={"phone": phone, **extra})

    async def verify(self, phone: str, code: str, **extra: Any) -> httpx.Response:
        return await self.http.post(
            "/auth/phone/verify", json={"phone": phone, "code": code, **extra}
        )

    async def phone_sign_in(self, phone: str, device: str = "phone") -> tuple[Person, bool]:
        r = await self.ask_code(phone)
        assert r.status_code == 202, r.text
        r = await self.verify(phone, self.world.last_code(phone), device=device)
        assert r.status_code in (200, 201), r.text
        body = r.json()
        person = Person(body["user"]["id"], body["access_token"], body["refresh_token"], phone)
        return person, body["created"]

    async def phone_user(self, phone: str, username: str, display_name: str = "") -> Person:
        """A phone sign-up with its profile completed."""
        person, created = await self.phone_sign_in(phone)
        assert created
        r = await self.http.post(
            "/me/complete-profile",
            json={"display_name": display_name or username.title(), "username": username},
            headers=person.headers,
        )
        assert r.status_code == 200, r.text
        person.username = username
        return person

    async def password_user(self, username: str, device: str = "laptop") -> Person:
        r = await self.http.post(
            "/auth/register",
            json={
                "email": f"{username}@example.com",
                "username": username,
                "password": "correct horse battery",
                "device": device,
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return Person(
            body["user"]["id"], body["access_token"], body["refresh_token"], username=username
        )


@pytest.fixture
async def api(onode: Node, outside: Outside) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=onode.http_url, timeout=10) as http:
        yield Api(http, outside)
