"""A client for the live REST app that speaks its nouns, and the server it talks to.

Imported by conftest.py (fixtures) and by tests (types, helpers).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from bridge.app import create_app
from bridge.services import BridgeServices
from storage.base import Store

# Small enough that a "huge" body is cheap to send.
MAX_REQUEST_BYTES = 16 * 1024
STARTUP_TIMEOUT = 10


@asynccontextmanager
async def open_server(services: BridgeServices) -> AsyncIterator[str]:
    """Serve ``create_app(services)`` with hypercorn's trio worker; yield its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]  # port 0: the OS picks a free one
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        with trio.fail_after(STARTUP_TIMEOUT):
            binds: list[str] = await nursery.start(partial(serve, create_app(services), config))
        yield binds[0]
        nursery.cancel_scope.cancel()


@dataclass
class Account:
    id: str
    email: str
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Rest:
    """An HTTP client on the live server, with helpers named after the API."""

    _names = itertools.count(1)

    def __init__(self, http: httpx.AsyncClient, services: BridgeServices):
        self.http = http
        self.services = services
        self.store = services.store

    async def register(self, username: str | None = None, **fields: Any) -> Account:
        username = username or f"user{next(self._names)}"
        body = {
            "email": f"{username}@example.com",
            "username": username,
            "password": "correct horse battery",
            **fields,
        }
        response = await self.http.post("/auth/register", json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return Account(
            id=data["user"]["id"],
            email=body["email"],
            username=username,
            password=body["password"],
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
        )

    async def create_group(self, owner: Account, *members: Account, name: str = "g") -> str:
        response = await self.http.post(
            "/rooms",
            json={"kind": "group", "name": name, "members": [m.id for m in members]},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        room_id: str = response.json()["room"]["id"]
        return room_id

    @staticmethod
    def assert_error(
        response: httpx.Response, status: int, code: str, field: str | None = None
    ) -> dict[str, Any]:
        """The response is our JSON error with this status, code and (if given) field."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        error: dict[str, Any] = response.json()["error"]
        # Every error names its request, as its X-Request-Id header does (issue 17).
        assert error.pop("request_id") == response.headers["X-Request-Id"], error
        assert error["code"] == code, error
        assert isinstance(error["message"], str) and error["message"]
        if field is not None:
            assert error.get("field") == field, error
        return error


class FailingStore:
    """A real store, except that the named methods raise ``error``."""

    def __init__(self, store: Store, error: BaseException, *methods: str):
        self._store = store
        self._error = error
        self._methods = set(methods)

    def __getattr__(self, name: str) -> Any:
        if name in self._methods:

            async def fail(*args: Any, **kwargs: Any) -> Any:
                raise self._error

            return fail
        return getattr(self._store, name)
