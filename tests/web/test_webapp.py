"""The web app's files at /app: served from the package, nothing else reachable."""

from __future__ import annotations

import httpx

from bridge.http.webapp import CSP
from tests.conftest import NodeFactory


async def test_app_is_served_from_the_package(node_factory: NodeFactory) -> None:
    async with node_factory() as node, httpx.AsyncClient(base_url=node.http_url) as http:
        bare = await http.get("/app")
        assert bare.status_code == 308
        assert bare.headers["location"] == "/app/"

        page = await http.get("/app/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        host = f"127.0.0.1:{node.port}"
        assert page.headers["content-security-policy"] == CSP.format(host=host)
        assert f"connect-src 'self' ws://{host} wss://{host};" in CSP.format(host=host)
        assert page.headers["cache-control"] == "no-cache"
        assert '<script type="module" src="app.js">' in page.text
        assert "http" not in page.text.replace("http-equiv", "")  # no CDN, no other origin

        script = await http.get("/app/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "RealtimeClient" in script.text
        assert "https://" not in script.text.replace("https://msgpack.org", "")

        style = await http.get("/app/app.css")
        assert style.headers["content-type"] == "text/css; charset=utf-8"
        head = await http.head("/app/app.js")
        assert head.status_code == 200


async def test_nothing_else_is_reachable_under_app(node_factory: NodeFactory) -> None:
    async with node_factory() as node, httpx.AsyncClient(base_url=node.http_url) as http:
        outside = ("/app/nope.js", "/app/../bridge/app.py", "/app/%2e%2e/app.py", "/app/x/app.js")
        for path in outside:
            r = await http.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found", path
        post = await http.post("/app/", content=b"x")
        assert post.status_code in (404, 405)
        assert "error" in post.json()
        # A Host header that is no host cannot smuggle anything into the policy.
        odd = await http.get("/app/", headers={"Host": "x; script-src *"})
        assert "script-src" not in odd.headers["content-security-policy"]
        # The API beside it is untouched.
        assert (await http.get("/health")).status_code == 200
