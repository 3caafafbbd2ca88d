"""Operations endpoints: Prometheus metrics and the browsable API docs.

``/metrics`` answers the Prometheus text format (realtime_server/base/metrics.py
lists what is counted). Like ``/health`` it needs no token: scrapers rarely
carry one, and it holds counts, never user data. Keep it off the public
internet at the proxy if the counts themselves are sensitive.

``/docs`` is one self-contained HTML page (bridge/docs_page.html, written
here: no CDN, no third-party asset) that fetches ``/openapi.json`` and renders
every operation with its parameters, bodies and responses.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from quart import Response

from bridge.http.routing import Body, Router
from bridge.services import BridgeServices
from realtime_server.base import metrics

_HTML = "text/html; charset=utf-8"


@cache
def docs_page() -> bytes:
    return resources.files("bridge").joinpath("docs_page.html").read_bytes()


def add_routes(router: Router, services: BridgeServices) -> None:
    @router.route(
        "GET",
        "/metrics",
        summary="Prometheus metrics of this node",
        tag="system",
        auth=False,
        uses_store=False,
        responses={
            200: Body(
                "text/plain",
                {"type": "string"},
                "The Prometheus text exposition format, version 0.0.4.",
            )
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), content_type=metrics.CONTENT_TYPE)

    @router.route(
        "GET",
        "/docs",
        summary="This API's documentation, browsable (renders /openapi.json)",
        tag="system",
        auth=False,
        uses_store=False,
        responses={200: Body("text/html", {"type": "string"}, "An HTML page.")},
    )
    async def api_docs() -> Response:
        response = Response(docs_page(), content_type=_HTML)
        # The page loads nothing from elsewhere; say so to the browser too.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self' 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self'"
        )
        return response
