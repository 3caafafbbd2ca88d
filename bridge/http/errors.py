"""The one place that turns any exception into an HTTP answer (JSON, one shape).

Mapping (``classify``, pure): a ``bridge.errors.BridgeError`` answers its own
code and ``STATUS``; ``storage.errors.Conflict`` -> 409 ``conflict`` (with
``field``), its ``NotFound`` -> 404, any other ``StoreError`` -> 503
``unavailable``; msgspec decode errors -> 400; werkzeug's HTTP exceptions
(unknown route 404, wrong method 405, body over the limit 413) -> the same JSON
shape; anything else -> 500 ``internal``, logged with its traceback, which
never reaches the client. Body::

    {"error": {"code": "invalid", "message": "...", "field": "email", "request_id": "..."}}
"""

from __future__ import annotations

import logging
import re

import msgspec
from quart import Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from bridge.errors import STATUS, BridgeError, Code, RestCode, default_message
from protocol.errors import ErrorCode
from realtime_server.base import metrics
from realtime_server.base.logs import request_id
from storage.errors import Conflict, StoreError
from storage.errors import NotFound as StoreNotFound

logger = logging.getLogger(__name__)


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    field: str | None = None
    # The X-Request-Id this answer also carries in its header: quote it in a report.
    request_id: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


# Status codes werkzeug raises on its own, and what we call them.
_HTTP_CODES: dict[int, Code] = {
    400: ErrorCode.INVALID,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: RestCode.METHOD_NOT_ALLOWED,
    408: ErrorCode.TIMEOUT,
    413: RestCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
}

# msgspec names the culprit as "... - at `$.members[3]`" or "... field `email`".
_AT_PATH = re.compile(r"at `\$\.([A-Za-z_]\w*)")
_NAMED_FIELD = re.compile(r"field `([A-Za-z_]\w*)`")


def field_of(exc: msgspec.ValidationError) -> str | None:
    """The top-level request field a msgspec validation error is about."""
    text = str(exc)
    match = _AT_PATH.search(text) or _NAMED_FIELD.search(text)
    return match.group(1) if match else None


def classify(exc: BaseException) -> tuple[int, ErrorDetail, dict[str, str]]:
    """Status, error body and extra headers for any exception. Pure; no logging."""
    headers: dict[str, str] = {}
    match exc:
        case BridgeError():
            code: Code = exc.code
            detail = ErrorDetail(code.value, exc.message, exc.field)
            headers.update(exc.headers)
        case Conflict():
            code = ErrorCode.CONFLICT
            message = (
                f"This {exc.field} is already taken."
                if exc.field in {"email", "username"}
                else default_message(code)
            )
            detail = ErrorDetail(code.value, message, exc.field)
        case StoreNotFound():
            code = ErrorCode.NOT_FOUND
            detail = ErrorDetail(code.value, default_message(code))
        case StoreError():
            code = ErrorCode.UNAVAILABLE
            detail = ErrorDetail(code.value, default_message(code))
        case msgspec.ValidationError():
            code = ErrorCode.INVALID
            # msgspec's text describes only the input ("Expected `str`, got `int`").
            detail = ErrorDetail(code.value, str(exc), field_of(exc))
        case msgspec.DecodeError():
            code = RestCode.BAD_JSON
            detail = ErrorDetail(code.value, default_message(code))
        case HTTPException() if exc.code is not None and exc.code in _HTTP_CODES:
            code = _HTTP_CODES[exc.code]
            detail = ErrorDetail(code.value, default_message(code))
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        case _:
            code = ErrorCode.INTERNAL
            detail = ErrorDetail(code.value, default_message(code))
    return STATUS.get(code, 500), detail, headers


def error_response(exc: BaseException) -> Response:
    status, detail, headers = classify(exc)
    if status >= 500:
        if isinstance(exc, StoreError):
            metrics.rest_storage_error()
            logger.warning("storage unavailable: %r", exc)
        elif isinstance(exc, BridgeError):
            # An answer we chose (a provider not configured, a gateway down):
            # one line says it all; a traceback would only bury real bugs.
            logger.warning("answered %d %s: %s", status, detail.code, detail.message)
        else:
            logger.error("unhandled error in REST request", exc_info=exc)
    detail.request_id = request_id.get()
    headers["Content-Type"] = "application/json"
    return Response(msgspec.json.encode(ErrorBody(detail)), status=status, headers=headers)


async def handle_exception(exc: Exception) -> Response:
    """Registered for ``Exception`` on the app: every error answer passes here."""
    return error_response(exc)
