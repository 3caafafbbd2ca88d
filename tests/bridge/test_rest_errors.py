"""Bad input and bad days: every failure is a JSON error with a stable code.

Malformed bodies, bodies over the size limit, unknown paths and methods,
storage that is down, and our own bugs all answer the same shape, and none
of them leaks internals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import h11
import httpx
import msgspec
import pytest
import trio

from bridge.services import BridgeServices
from storage.errors import StoreError
from tests.bridge.rest_client import MAX_REQUEST_BYTES, FailingStore

if TYPE_CHECKING:
    from tests.bridge.rest_client import Rest

REGISTER = b'{"email": "ada@example.com", "username": "ada", "password": "correct horse"}'

ServeApp = Callable[[BridgeServices], AbstractAsyncContextManager[str]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "bad_json"),
        (b"   \n", "bad_json"),
        (b"{not json", "bad_json"),
        (REGISTER[:-5], "bad_json"),  # truncated
        (b"\xff\xfe{}", "bad_json"),  # not UTF-8
        (b"null", "invalid"),
        (b"[]", "invalid"),
        (b'"ada"', "invalid"),
        (b"{}", "invalid"),
    ],
)
async def test_a_body_that_is_not_the_expected_object_is_a_400(
    rest: Rest, body: bytes, code: str
) -> None:
    with trio.fail_after(10):
        response = await rest.http.post(
            "/auth/register", content=body, headers={"Content-Type": "application/json"}
        )
    rest.assert_error(response, 400, code)


async def test_types_are_not_coerced(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.post("/auth/login", json={"login": "ada", "password": 12345678})
    error = rest.assert_error(response, 400, "invalid", field="password")
    assert "str" in error["message"]


async def test_a_body_over_the_limit_is_refused_by_its_content_length(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.post(
            "/auth/register", content=b" " * (MAX_REQUEST_BYTES + 1) + REGISTER
        )
    rest.assert_error(response, 413, "payload_too_large")


async def test_a_chunked_body_is_cut_off_at_the_limit(base_url: str) -> None:
    # Raw h11 rather than httpx: we stop sending once past the limit, as a
    # client streaming an endless body would be stopped, and read the answer.
    client = h11.Connection(h11.CLIENT)
    host, port = httpx.URL(base_url).host, httpx.URL(base_url).port
    assert port is not None
    request = h11.Request(
        method="POST",
        target="/auth/register",
        headers=[("Host", host), ("Transfer-Encoding", "chunked")],
    )
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(client.send(request) or b"")
            for _ in range(MAX_REQUEST_BYTES // 1024 + 1):
                await stream.send_all(client.send(h11.Data(data=b" " * 1024)) or b"")
            status, body = await read_response(client, stream)
    assert status == 413
    assert msgspec.json.decode(body)["error"]["code"] == "payload_too_large"


async def read_response(client: h11.Connection, stream: trio.SocketStream) -> tuple[int, bytes]:
    status, body = 0, b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(await stream.receive_some())
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, body


async def test_a_body_just_under_the_limit_is_accepted(rest: Rest) -> None:
    padding = b" " * (MAX_REQUEST_BYTES - len(REGISTER))
    with trio.fail_after(10):
        response = await rest.http.post("/auth/register", content=padding + REGISTER)
    assert response.status_code == 201, response.text


async def test_an_unknown_path_is_a_json_404(rest: Rest) -> None:
    with trio.fail_after(10):
        for path in ("/nope", "/rooms/r_1/messages/extra", "/rooms/"):
            response = await rest.http.get(path)
            rest.assert_error(response, 404, "not_found")


async def test_a_wrong_method_is_a_json_405_that_names_the_allowed_ones(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.delete("/me")
    rest.assert_error(response, 405, "method_not_allowed")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PATCH"} <= allowed


async def test_storage_being_down_is_a_503(
    rest: Rest, serve_app: ServeApp, services: BridgeServices
) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        broken = FailingStore(services.store, StoreError("connection refused"), "get_user")
        async with serve_app(BridgeServices.build(services.settings, broken)) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                response = await http.get("/me", headers=account.headers)
    error = rest.assert_error(response, 503, "unavailable")
    assert "refused" not in error["message"]


async def test_a_bug_is_a_500_that_tells_the_client_nothing(
    rest: Rest,
    serve_app: ServeApp,
    services: BridgeServices,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bug = RuntimeError("secret internal detail")
    with trio.fail_after(10):
        account = await rest.register("ada")
        broken = FailingStore(services.store, bug, "get_room")
        async with serve_app(BridgeServices.build(services.settings, broken)) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                with caplog.at_level(logging.ERROR, logger="bridge"):
                    response = await http.get("/rooms/r_any", headers=account.headers)
    rest.assert_error(response, 500, "internal")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert any(record.exc_info and record.exc_info[1] is bug for record in caplog.records)
