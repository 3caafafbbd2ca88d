"""Liveness, readiness and the API's own description.

``/health`` says the process answers (no storage call: a load balancer must
not restart a node because the database blinked). ``/ready`` says it can do
useful work: storage answers a ping within a deadline.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
import trio
from quart import Response

from bridge.http.errors import error_response
from bridge.http.openapi import build_openapi
from bridge.http.routing import Router, json_response
from bridge.routes.schemas import Health, Status
from bridge.services import BridgeServices
from storage.errors import StoreError

READY_TIMEOUT = 2.0  # seconds; a hung database must fail the probe, not hang it


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    node = services.settings.node_id

    @router.route(
        "GET",
        "/health",
        summary="Liveness: the process answers",
        tag="system",
        auth=False,
        uses_store=False,
        responses={200: Health},
    )
    async def health() -> Response:
        return json_response(Health("ok", node))

    @router.route(
        "GET",
        "/ready",
        summary="Readiness: storage answers",
        tag="system",
        auth=False,
        responses={200: Status},
    )
    async def ready() -> Response:
        try:
            with trio.fail_after(READY_TIMEOUT):
                await store.ping()
        except Exception as exc:  # whatever broke, the answer is "not ready"
            return error_response(StoreError(f"storage ping failed: {exc!r}"))
        return json_response(Status())

    @cache
    def document() -> bytes:
        # Built on first request, when every route (this one included) is registered.
        return msgspec.json.encode(build_openapi(router.operations))

    @router.route(
        "GET",
        "/openapi.json",
        summary="This API as an OpenAPI 3.1 document",
        tag="system",
        auth=False,
        uses_store=False,
        responses={200: dict[str, Any]},
    )
    async def openapi() -> Response:
        return Response(document(), content_type="application/json")
