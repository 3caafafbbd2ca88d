"""Health, readiness, and an OpenAPI document that covers every route."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest
import trio

from bridge.app import create_app
from bridge.routes import system as routes_system
from bridge.services import BridgeServices

if TYPE_CHECKING:
    from tests.bridge.rest_client import Rest

ServeApp = Callable[[BridgeServices], AbstractAsyncContextManager[str]]


class PingStore:
    """A real store whose ping is replaced."""

    def __init__(self, store: Any, ping: Callable[[], Any]):
        self._store = store
        self.ping = ping

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_health_answers_ok(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_answers_ok_when_storage_answers(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def ready_with_ping(
    serve_app: ServeApp, services: BridgeServices, ping: Any
) -> httpx.Response:
    store = PingStore(services.store, ping)
    async with serve_app(BridgeServices.build(services.settings, store)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            return await http.get("/ready")


async def test_ready_is_503_when_storage_fails(
    rest: Rest, serve_app: ServeApp, services: BridgeServices
) -> None:
    async def ping() -> None:
        raise OSError("connection refused")

    with trio.fail_after(10):
        response = await ready_with_ping(serve_app, services, ping)
    rest.assert_error(response, 503, "unavailable")


async def test_ready_is_503_when_storage_hangs(
    rest: Rest, serve_app: ServeApp, services: BridgeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_system, "READY_TIMEOUT", 0.05)

    async def ping() -> None:
        await trio.sleep_forever()

    with trio.fail_after(10):
        response = await ready_with_ping(serve_app, services, ping)
    rest.assert_error(response, 503, "unavailable")


async def openapi(rest: Rest) -> dict[str, Any]:
    with trio.fail_after(10):
        response = await rest.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


async def test_openapi_documents_every_route_and_method(
    rest: Rest, services: BridgeServices
) -> None:
    document = await openapi(rest)
    assert document["openapi"] == "3.1.0"
    served = {
        (method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in create_app(services).url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == served
    assert ("post", "/rooms/{room_id}/read") in documented


async def test_openapi_operations_say_how_they_fail(rest: Rest) -> None:
    document = await openapi(rest)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "500" in responses, where
            if operation["security"]:
                assert "401" in responses, where
                assert "token_expired" in responses["401"]["description"], where
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), where
            for status, response in responses.items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, where


async def test_openapi_schemas_come_from_the_request_structs(rest: Rest) -> None:
    document = await openapi(rest)
    schemas = document["components"]["schemas"]
    register = schemas["RegisterRequest"]
    assert set(register["required"]) == {"email", "username", "password"}
    assert register["properties"]["username"]["pattern"] == "^[A-Za-z0-9_.]+$"
    assert register["additionalProperties"] is False
    create_room = document["paths"]["/rooms"]["post"]["requestBody"]["content"]
    assert create_room["application/json"]["schema"]["discriminator"]["propertyName"] == "kind"
    history = document["paths"]["/rooms/{room_id}/messages"]["get"]["parameters"]
    limit = next(p for p in history if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}


async def test_every_schema_reference_resolves(rest: Rest) -> None:
    document = await openapi(rest)
    names = set(document["components"]["schemas"])
    text = msgspec.json.encode(document).decode()
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs and refs <= names
