"""CORS_ORIGINS: what a browser on another origin may do with REST and /ws."""

from __future__ import annotations

import httpx
import pytest
import trio
from quart_trio import QuartTrio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Message, RejectConnection, Request

from bridge.http import cors
from protocol import codec, frames
from realtime_server.base.settings import Settings, SettingsError
from tests.conftest import NodeFactory
from tests.e2e.helpers import register

APP = "https://app.example.com"
EVIL = "https://evil.example.net"


async def preflight(
    http: httpx.AsyncClient, origin: str, method: str = "POST", headers: str = "content-type"
) -> httpx.Response:
    return await http.options(
        "/auth/login",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


async def test_without_cors_origins_no_cors_header_is_sent(node_factory: NodeFactory) -> None:
    async with node_factory() as node, httpx.AsyncClient(base_url=node.http_url) as http:
        r = await http.get("/health", headers={"Origin": APP})
        p = await preflight(http, APP)
    assert r.status_code == 200
    for response in (r, p):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_listed_origin_gets_a_preflight_and_its_own_origin_back(
    node_factory: NodeFactory,
) -> None:
    async with (
        node_factory(cors_origins=f"{APP}, http://localhost:5173") as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        p = await preflight(http, APP, "POST", "Content-Type, Authorization")
        assert p.status_code == 204
        assert p.headers["access-control-allow-origin"] == APP
        assert "POST" in p.headers["access-control-allow-methods"]
        assert "DELETE" in p.headers["access-control-allow-methods"]
        allowed = p.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert int(p.headers["access-control-max-age"]) > 0
        assert "Origin" in p.headers["vary"]
        assert "access-control-allow-credentials" not in p.headers

        # The real request that follows: the answer carries the origin too,
        # errors included, and says which headers the script may read.
        account = await register(http)
        r = await http.get(
            "/me", headers={"Origin": APP, "Authorization": f"Bearer {account.access_token}"}
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == APP
        assert "Retry-After" in r.headers["access-control-expose-headers"]
        assert "Origin" in r.headers["vary"]
        bad = await http.get("/me", headers={"Origin": APP})
        assert bad.status_code == 401
        assert bad.headers["access-control-allow-origin"] == APP

        # The second listed origin gets itself back, never the first one.
        other = await http.get("/health", headers={"Origin": "http://localhost:5173"})
        assert other.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_unlisted_origin_method_or_header_is_refused(node_factory: NodeFactory) -> None:
    async with (
        node_factory(cors_origins=APP) as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        evil = await preflight(http, EVIL)
        assert evil.status_code == 403
        assert evil.json()["error"]["code"] == "forbidden"
        assert "access-control-allow-origin" not in evil.headers
        assert "Origin" in evil.headers["vary"]

        r = await http.get("/health", headers={"Origin": EVIL})
        assert r.status_code == 200  # the server answers; the browser hides it
        assert "access-control-allow-origin" not in r.headers
        assert "Origin" in r.headers["vary"]  # a cache must not reuse it for APP

        assert (await preflight(http, APP, method="TRACE")).status_code == 403
        odd = await preflight(http, APP, headers="content-type, x-secret")
        assert odd.status_code == 403
        assert "x-secret" in odd.json()["error"]["message"]


async def test_any_origin_never_comes_with_credentials(node_factory: NodeFactory) -> None:
    async with (
        node_factory(cors_origins="*") as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        p = await preflight(http, EVIL)
        assert p.status_code == 204
        assert p.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in p.headers
    with pytest.raises(SettingsError, match="CORS_ALLOW_CREDENTIALS"):
        cors.install(QuartTrio("t"), Settings(cors_origins="*", cors_allow_credentials=True))


async def test_credentials_only_for_listed_origins_when_asked(node_factory: NodeFactory) -> None:
    async with (
        node_factory(cors_origins=APP, cors_allow_credentials=True) as node,
        httpx.AsyncClient(base_url=node.http_url) as http,
    ):
        p = await preflight(http, APP)
        assert p.headers["access-control-allow-origin"] == APP
        assert p.headers["access-control-allow-credentials"] == "true"
        r = await http.get("/health", headers={"Origin": EVIL})
        assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize(
    "entry", ["https://app.example.com/path", "app.example.com", "ftp://x.example", "https://"]
)
def test_a_setting_that_is_no_origin_is_refused(entry: str) -> None:
    with pytest.raises(SettingsError, match="not an origin"):
        cors.install(QuartTrio("t"), Settings(cors_origins=f"{APP},{entry}"))


async def upgrade(port: int, origin: str | None, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """Open /ws with this Origin; returns the upgrade's status and the socket's next frame."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        ws = WSConnection(ConnectionType.CLIENT)
        headers = [(b"origin", origin.encode())] if origin is not None else []
        await stream.send_all(ws.send(Request(host=host, target="/ws", extra_headers=headers)))
        with trio.fail_after(5):
            while True:
                data = await stream.receive_some(65536)
                assert data, "closed during the upgrade"
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, RejectConnection):
                        return event.status_code, b""
                    if isinstance(event, AcceptConnection):
                        await stream.send_all(ws.send(BytesMessage(codec.encode(hello()))))
                        return 101, await first_frame(stream, ws)


def hello() -> frames.Hello:
    return frames.Hello(id=1, d=frames.HelloData(token="not-a-token", v=1))


async def first_frame(stream: trio.SocketStream, ws: WSConnection) -> bytes:
    while True:
        for event in ws.events():
            if isinstance(event, Message):
                return bytes(event.data)
            return repr(event).encode()  # the close that answers a bad token
        ws.receive_data(await stream.receive_some(65536))


async def test_websocket_upgrade_checks_origin_when_a_list_is_set(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(cors_origins=APP) as node:
        own = f"http://127.0.0.1:{node.port}"
        assert (await upgrade(node.port, EVIL))[0] == 403
        assert (await upgrade(node.port, "null"))[0] == 403  # sandboxed iframes, file://
        status, reply = await upgrade(node.port, APP)
        assert status == 101 and b"4101" in reply  # upgraded; then hello is judged
        assert (await upgrade(node.port, own, host=f"127.0.0.1:{node.port}"))[0] == 101
        assert (await upgrade(node.port, None))[0] == 101  # not a browser
    async with node_factory() as node:
        assert (await upgrade(node.port, EVIL))[0] == 101  # no list: every origin
