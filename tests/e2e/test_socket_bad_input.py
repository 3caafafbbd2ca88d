"""Bad input on the socket gets a clear error; the connection, the room and others survive."""

from __future__ import annotations

import time

import httpx
import msgspec
import pytest

from bridge.accounts.tokens import TokenService
from protocol import codec, frames
from protocol.client import HandshakeRejected, open_client
from protocol.errors import CloseCode
from realtime_server.node import Node
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import create_group, register
from tests.e2e.rawws import hello, open_raw


async def welcomed(raw, token: str) -> None:
    await raw.send_frame(hello(token))
    assert isinstance(await raw.receive_frame(), frames.Welcome)
    assert isinstance(await raw.receive_frame(), frames.ResumeDone)


async def expect_err(raw, code: str, re: int | None = None) -> frames.Err:
    frame = await raw.receive_frame()
    assert isinstance(frame, frames.Err), frame
    assert frame.code == code, frame
    assert frame.msg
    assert frame.re == re
    return frame


async def still_alive(raw) -> None:
    await raw.send_frame(frames.Ping(id=999))
    pong = await raw.receive_frame()
    assert isinstance(pong, frames.Pong) and pong.re == 999


@pytest.mark.parametrize(
    ("payload", "code", "re"),
    [
        (b"\xc1\xc1\xc1", "bad_frame", None),
        (msgspec.msgpack.encode([1, 2, 3]), "bad_frame", None),
        (msgspec.msgpack.encode({"id": 4}), "bad_frame", 4),
        (msgspec.msgpack.encode({"t": "msg.teleport", "id": 5}), "unknown_type", 5),
        (msgspec.msgpack.encode({"t": "msg.send", "id": 6, "d": {"room": "r"}}), "invalid", 6),
        (
            msgspec.msgpack.encode(
                {"t": "msg.send", "id": 7, "d": {"room": 1, "cid": "c", "text": "x"}}
            ),
            "invalid",
            7,
        ),
        (msgspec.msgpack.encode({"t": "msg.send", "id": -1, "d": {}}), "invalid", None),
        (
            msgspec.msgpack.encode(
                {"t": "msg.send", "id": 8, "d": {"room": "r", "cid": "", "text": "x"}}
            ),
            "invalid",
            8,
        ),
        (b"", "bad_frame", None),
    ],
    ids=[
        "not-msgpack",
        "not-a-map",
        "no-type",
        "unknown-type",
        "missing-fields",
        "wrong-type",
        "negative-id",
        "empty-cid",
        "empty-frame",
    ],
)
async def test_a_malformed_frame_gets_an_error_and_the_connection_lives(
    node: Node, http: httpx.AsyncClient, payload: bytes, code: str, re: int | None
):
    alice = await register(http)
    async with open_raw(node.port) as raw:
        await welcomed(raw, alice.access_token)
        await raw.send_bytes(payload)
        await expect_err(raw, code, re)
        await still_alive(raw)


async def test_an_oversize_frame_is_refused_without_buffering_it(node_factory: NodeFactory):
    async with node_factory(max_frame_bytes=1024) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
        async with open_raw(node.port) as raw:
            await welcomed(raw, alice.access_token)
            big = codec.encode(
                frames.Send(id=3, d=frames.SendData(room="r", cid="c", text="x" * 50_000))
            )
            await raw.send_bytes(big)
            err = await expect_err(raw, "frame_too_large")
            assert "1024" in err.msg
            await still_alive(raw)


async def test_text_frames_are_refused(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    async with open_raw(node.port) as raw:
        await welcomed(raw, alice.access_token)
        await raw.send_text('{"t": "ping", "id": 1}')
        await expect_err(raw, "bad_frame")
        await still_alive(raw)


async def test_empty_and_too_long_texts_are_refused_and_nothing_is_stored(
    node_factory: NodeFactory,
):
    async with node_factory(max_message_chars=10) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            room = await create_group(http, alice)
            async with open_raw(node.port) as raw:
                await welcomed(raw, alice.access_token)
                await raw.send_frame(
                    frames.Send(id=1, d=frames.SendData(room=room, cid="a", text="  "))
                )
                await expect_err(raw, "invalid", 1)
                await raw.send_frame(
                    frames.Send(id=2, d=frames.SendData(room=room, cid="b", text="x" * 11))
                )
                await expect_err(raw, "message_too_long", 2)
                await raw.send_frame(
                    frames.Send(id=3, d=frames.SendData(room=room, cid="c", text="ok"))
                )
                ok = await raw.receive_frame()
                assert isinstance(ok, frames.Ok) and ok.d is not None and ok.d.seq == 1


async def test_a_second_hello_is_an_error_not_a_new_session(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    async with open_raw(node.port) as raw:
        await welcomed(raw, alice.access_token)
        await raw.send_frame(frames.Hello(id=2, d=frames.HelloData(token=alice.access_token, v=1)))
        await expect_err(raw, "invalid", 2)
        await still_alive(raw)


# ----- the handshake: terminal close codes ------------------------------------------


async def test_an_invalid_token_is_closed_with_unauthorized(node: Node):
    with pytest.raises(HandshakeRejected) as rejected:
        async with open_client(node.ws_url, "not-a-jwt"):
            pass
    assert rejected.value.code == CloseCode.UNAUTHORIZED


async def test_a_tampered_token_is_closed_with_unauthorized(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    head, body, sig = alice.access_token.split(".")
    tampered = f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    with pytest.raises(HandshakeRejected) as rejected:
        async with open_client(node.ws_url, tampered):
            pass
    assert rejected.value.code == CloseCode.UNAUTHORIZED


async def test_an_expired_token_is_closed_with_token_expired(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    past = TokenService(
        node.settings.jwt_secret, 60, 60, node.store, clock=lambda: time.time() - 3600
    ).issue_access(alice.id, "s_old")
    with pytest.raises(HandshakeRejected) as rejected:
        async with open_client(node.ws_url, past):
            pass
    assert rejected.value.code == CloseCode.TOKEN_EXPIRED


async def test_an_unsupported_version_is_closed_with_its_code(node: Node, http: httpx.AsyncClient):
    alice = await register(http)
    with pytest.raises(HandshakeRejected) as rejected:
        async with open_client(node.ws_url, alice.access_token, version=99):
            pass
    assert rejected.value.code == CloseCode.UNSUPPORTED_VERSION
    assert "99" in rejected.value.reason


async def test_a_first_frame_that_is_not_hello_closes_the_connection(node: Node):
    async with open_raw(node.port) as raw:
        await raw.send_frame(frames.Ping(id=1))
        assert await raw.wait_closed() == CloseCode.PROTOCOL_VIOLATION
    async with open_raw(node.port) as raw:
        await raw.send_bytes(b"\x00garbage")
        assert await raw.wait_closed() == CloseCode.PROTOCOL_VIOLATION


async def test_a_client_that_never_says_hello_is_closed(node_factory: NodeFactory):
    async with node_factory(hello_timeout=0.2) as node:
        async with open_raw(node.port) as raw:
            assert await raw.wait_closed() == CloseCode.HELLO_TIMEOUT


async def test_plain_http_to_the_socket_path_is_not_upgraded(node: Node, http: httpx.AsyncClient):
    r = await http.get("/ws")
    assert r.status_code in (400, 404, 426)
    assert r.json()["error"]["code"]


async def test_a_flooding_client_is_rate_limited_and_others_are_not(node_factory: NodeFactory):
    async with node_factory(rate_limit_frames_per_second=5, rate_limit_burst=10) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            bob = await register(http)
        async with open_raw(node.port) as flood, open_raw(node.port) as calm:
            await welcomed(flood, alice.access_token)
            await welcomed(calm, bob.access_token)
            for i in range(30):
                await flood.send_frame(frames.Ping(id=i))
            replies = [await flood.receive_frame() for _ in range(30)]
            pongs = [r for r in replies if isinstance(r, frames.Pong)]
            limited = [r for r in replies if isinstance(r, frames.Err)]
            assert 10 <= len(pongs) < 30
            assert limited and all(e.code == "rate_limited" for e in limited)
            await still_alive(calm)
