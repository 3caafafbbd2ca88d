"""Per-request plumbing: request id, access log line, REST metrics.

- The request id is the caller's ``X-Request-Id`` when it is sane (1-64 of
  ``A-Z a-z 0-9 . _ : -``), else a fresh random one. It is answered in the
  ``X-Request-Id`` header, put in every JSON error body (bridge/http/errors.py),
  and stamped on every log record emitted while serving the request (the
  context variable in realtime_server/base/logs.py; one trio task per request).
- One access log line per request, on logger ``bridge.access`` at INFO, with
  ``method``, ``path``, ``route`` (the template, e.g. ``/rooms/<room_id>``),
  ``status`` and ``duration_ms`` as fields (JSON) or in the text.
- ``realtime_http_requests_total{method,route,status}`` and the latency
  histogram count the same requests; unmatched paths share one route label,
  so a scanner cannot grow the series.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from quart import Response, g, request
from quart_trio import QuartTrio

from realtime_server.base import metrics
from realtime_server.base.logs import request_id

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
UNMATCHED = "<unmatched>"

access_log = logging.getLogger("bridge.access")


def _incoming_or_new() -> str:
    given = request.headers.get(HEADER, "")
    if _SANE.fullmatch(given):
        return given
    return secrets.token_hex(16)


async def _begin() -> None:
    rid = _incoming_or_new()
    g.request_id = rid
    g.started = time.perf_counter()
    request_id.set(rid)


async def _end(response: Response) -> Response:
    rid = getattr(g, "request_id", None) or _incoming_or_new()
    response.headers[HEADER] = rid
    seconds = time.perf_counter() - getattr(g, "started", time.perf_counter())
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    metrics.http_request(request.method, route, response.status_code, seconds)
    if access_log.isEnabledFor(logging.INFO):
        duration_ms = round(seconds * 1000, 2)
        access_log.info(
            "%s %s %d %.2fms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "remote": request.remote_addr,
            },
        )
    return response


def install(app: QuartTrio) -> None:
    app.before_request(_begin)
    app.after_request(_end)
