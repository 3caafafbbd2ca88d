"""REST connections: a refused request never leaves its connection stuck, and
slow or stalled peers are bounded (issue 12, items 12 and 24).

Raw sockets and httpx's keep-alive pool against a real node.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import trio

from protocol.client import open_client
from tests.conftest import NodeFactory
from tests.e2e.helpers import register
from tests.e2e.served import serve_process


class RawHttp:
    """One keep-alive HTTP/1.1 connection driven by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_body_maybe_cut(self, data: bytes) -> None:
        """Send, accepting that a server which answered early and said
        ``Connection: close`` may stop reading the rest."""
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async def response(self) -> tuple[int, dict[str, str], bytes] | None:
        """The next response, or None if the server closed the connection."""
        while b"\r\n\r\n" not in self.buf:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        size = int(headers.get("content-length", "0"))
        while len(self.buf) < size:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buf += data
        body, self.buf = self.buf[:size], self.buf[size:]
        return int(status_line.split()[1]), headers, body


async def open_http(port: int) -> RawHttp:
    return RawHttp(await trio.open_tcp_stream("127.0.0.1", port))


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", "Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"


# ----- item 12: the next request after a refused one ---------------------------------
@pytest.mark.parametrize(
    ("status", "path", "body", "headers"),
    [
        (413, "/auth/login", b'{"x": "' + b"a" * 300_000 + b'"}', ()),
        (413, "/auth/login", b'{"x": "' + b"a" * 2_000_000 + b'"}', ()),
        (
            401,
            "/rooms",
            b'{"kind": "group", "name": "' + b"n" * 90_000 + b'"}',
            ("Authorization: Bearer x",),
        ),
        (401, "/rooms", b'{"kind": "group", "name": "g"}', ("Authorization: Bearer x",)),
    ],
    ids=["413-300k", "413-2M", "401-before-a-90k-body", "401-small"],
)
async def test_the_request_after_a_refused_one_is_answered_at_once(
    node_factory: NodeFactory, status: int, path: str, body: bytes, headers: tuple[str, ...]
):
    async with node_factory(max_request_bytes=100_000) as node:
        for _ in range(3):
            conn = await open_http(node.port)
            try:
                with trio.fail_after(3):
                    async with trio.open_nursery() as nursery:
                        # The whole request goes out while the answer comes back.
                        nursery.start_soon(conn.send_body_maybe_cut, post(path, body, *headers))
                        first = await conn.response()
                    assert first is not None and first[0] == status, first
                    # Same connection: answered, or closed (then the client retries
                    # on a new one at once); never left hanging.
                    try:
                        await conn.send(GET_HEALTH)
                        second = await conn.response()
                    except trio.BrokenResourceError:
                        second = None
                if second is None:
                    assert first[1].get("connection") == "close" or status == 413, first
                else:
                    assert second[0] == 200
            finally:
                await conn.stream.aclose()


async def test_a_keep_alive_client_goes_on_after_401_and_413(node_factory: NodeFactory):
    """The mobile flow: 401 (token expired), refresh, retry; and a too-large upload."""
    async with node_factory(max_request_bytes=100_000) as node:
        async with httpx.AsyncClient(
            base_url=node.http_url, timeout=3, limits=httpx.Limits(max_connections=1)
        ) as http:
            alice = await register(http)
            for _ in range(5):
                r = await http.post(
                    "/rooms",
                    json={"kind": "group", "name": "n" * 60_000},
                    headers={"Authorization": "Bearer expired"},
                )
                assert r.status_code == 401
                r = await http.post(
                    "/rooms",
                    json={"kind": "group", "name": "g"},
                    headers={"Authorization": f"Bearer {alice.access_token}"},
                )
                assert r.status_code == 201, r.text
                r = await http.post("/auth/login", content=b"x" * 500_000)
                assert r.status_code == 413
                assert (await http.get("/health")).status_code == 200


# ----- item 24: stalled bodies, and the connection cap ---------------------------------


async def test_a_stalled_request_body_is_cut_off_after_the_read_timeout(
    node_factory: NodeFactory,
):
    async with node_factory(http_read_timeout=0.5) as node:
        conn = await open_http(node.port)
        # A tenth of the body, then silence: the connection must not be held forever.
        await conn.send(
            b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"{" * 10
        )
        with trio.fail_after(5):
            while await conn.response() is not None:
                pass  # whatever answer came, the connection then ends
        await conn.stream.aclose()
        with trio.fail_after(5):
            while node.listener.rest_connections:  # noqa: ASYNC110 - server-side count
                await trio.sleep(0.02)


async def test_a_silent_response_reader_does_not_cut_a_long_response(
    node_factory: NodeFactory,
):
    # The read timeout applies only while a body is awaited: a client that
    # sent its whole request and waits quietly is not cut off.
    async with node_factory(http_read_timeout=0.3) as node:
        conn = await open_http(node.port)
        await conn.send(GET_HEALTH)
        await trio.sleep(1.0)
        await conn.send(GET_HEALTH)
        with trio.fail_after(5):
            first, second = await conn.response(), await conn.response()
        assert first is not None and second is not None
        assert (first[0], second[0]) == (200, 200)
        await conn.stream.aclose()


async def test_rest_over_the_cap_is_refused_and_sockets_still_connect(
    node_factory: NodeFactory,
):
    async with node_factory(rest_max_connections=5) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
            alice = await register(http)
        stalled = [await open_http(node.port) for _ in range(5)]
        for conn in stalled:
            await conn.send(b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\n\r\n{")
        with trio.fail_after(5):
            while node.listener.rest_connections < 5:  # noqa: ASYNC110 - server-side count
                await trio.sleep(0.01)
            extra = await open_http(node.port)
            await extra.send(GET_HEALTH)
            refused = await extra.response()
            assert refused is not None and refused[0] == 503
            assert refused[1]["retry-after"] and refused[1]["connection"] == "close"
            async with open_client(node.ws_url, alice.access_token) as client:
                assert await client.ping()
        for conn in [*stalled, extra]:
            await conn.stream.aclose()


async def test_at_the_descriptor_limit_stalled_bodies_leave_sockets_reachable(
    database_url: str, tmp_path: Path
):
    """A process with 256 descriptors; 300 connections stall in their bodies."""
    async with serve_process(
        database_url, tmp_path / "node", max_fds=256, http_read_timeout=30
    ) as served:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=5) as http:
            alice = await register(http)
        stalled: list[socket.socket] = []
        try:
            for _ in range(300):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", served.port))
                except BlockingIOError:
                    pass
                stalled.append(s)
            await trio.sleep(0.2)
            for s in stalled:
                try:
                    s.send(b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\n\r\n{")
                except OSError:
                    pass
            await trio.sleep(1.0)
            with trio.fail_after(10):
                async with open_client(served.ws_url, alice.access_token) as client:
                    assert await client.ping()
                async with httpx.AsyncClient(base_url=served.http_url, timeout=5) as http:
                    r = await http.get("/health")
                    assert r.status_code in (200, 503)
        finally:
            for s in stalled:
                s.close()
