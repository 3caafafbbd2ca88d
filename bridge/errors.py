"""REST errors, and the one place that turns any exception into an HTTP answer.

Hierarchy::

    BridgeError(code, message, field)    an answer we meant to give; carries its code
    ├── BadRequest                      invalid | bad_json                      400
    ├── AuthError                       the caller is not (or no longer) signed in
    │   ├── TokenInvalid                unauthorized                            401
    │   ├── TokenExpired                token_expired                           401
    │   ├── TokenReused                 token_reused (the family is revoked)    401
    │   └── InvalidCredentials          invalid_credentials                     401
    ├── Forbidden                       forbidden                               403
    ├── NotFound                        not_found                               404
    └── RateLimited(retry_after)        rate_limited, with Retry-After          429

Errors raised elsewhere are mapped here too, never in the routes:
``storage.errors.Conflict`` -> 409 ``conflict`` (with ``field``), its
``NotFound`` -> 404, any other ``StoreError`` -> 503 ``unavailable``; msgspec
decode errors -> 400; werkzeug's HTTP exceptions (unknown route 404, wrong
method 405, body over the limit 413) -> the same JSON shape; anything else
-> 500 ``internal``, logged with its traceback, which never reaches the client.

Rooms you are not a member of answer 404 ``not_found`` exactly like rooms that
do not exist, so ids cannot be probed. ``ErrorCode.NOT_MEMBER`` stays a
WebSocket code.

Body of every error::

    {"error": {"code": "invalid", "message": "...", "field": "email"}}

``field`` is present only when one input field is to blame; ``request_id``
(also in the ``X-Request-Id`` header) whenever the error answers a request.
"""

from __future__ import annotations

import logging
import math
import re
from enum import StrEnum

import msgspec
from quart import Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from protocol.errors import ERROR_MESSAGES, ErrorCode
from realtime_server.base import metrics
from realtime_server.base.logs import request_id
from storage.errors import Conflict, StoreError
from storage.errors import NotFound as StoreNotFound

logger = logging.getLogger(__name__)


class RestCode(StrEnum):
    """Codes only the REST API uses; stable like ``ErrorCode``, never rename one."""

    BAD_JSON = "bad_json"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_REUSED = "token_reused"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MEDIA_TYPE_MISMATCH = "media_type_mismatch"
    # ----- onboarding (issue 8) -----
    INVALID_PHONE = "invalid_phone"
    CODE_INVALID = "code_invalid"
    CODE_EXPIRED = "code_expired"
    WRONG_PASSWORD = "wrong_password"
    ID_TOKEN_INVALID = "id_token_invalid"
    OIDC_STATE_INVALID = "oidc_state_invalid"
    EMAIL_UNVERIFIED = "email_unverified"
    IMAGE_INVALID = "image_invalid"
    DELIVERY_FAILED = "delivery_failed"
    NOT_CONFIGURED = "not_configured"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    # ----- chat list (issue 18) -----
    TOO_MANY_PINNED = "too_many_pinned"
    # ----- files in AI projects (issue 15) -----
    TOO_MANY_FILES = "too_many_files"


Code = ErrorCode | RestCode

REST_MESSAGES: dict[RestCode, str] = {
    RestCode.BAD_JSON: "The request body is not valid JSON.",
    RestCode.INVALID_CREDENTIALS: "Wrong login or password.",
    RestCode.TOKEN_REUSED: "This refresh token was already used; the session is signed out.",
    RestCode.PAYLOAD_TOO_LARGE: "The request body is larger than the server accepts.",
    RestCode.METHOD_NOT_ALLOWED: "This method is not allowed on this path.",
    RestCode.UNSUPPORTED_MEDIA_TYPE: "This file type is not accepted.",
    RestCode.MEDIA_TYPE_MISMATCH: "The file's content is not the type it was sent as.",
    RestCode.INVALID_PHONE: "This is not a valid phone number.",
    RestCode.CODE_INVALID: "Wrong code.",
    RestCode.CODE_EXPIRED: "No valid code: it expired, was used or had too many wrong tries.",
    RestCode.WRONG_PASSWORD: "The current password is wrong.",
    RestCode.ID_TOKEN_INVALID: "The ID token is not valid for this server.",
    RestCode.OIDC_STATE_INVALID: "This sign-in was not started here, expired or was used.",
    RestCode.EMAIL_UNVERIFIED: "An account has this email but has not verified it.",
    RestCode.IMAGE_INVALID: "The image is damaged or too large to decode.",
    RestCode.DELIVERY_FAILED: "The code could not be sent; retry shortly.",
    RestCode.NOT_CONFIGURED: "This feature is not configured on this server.",
    RestCode.PROVIDER_UNAVAILABLE: "The sign-in provider did not answer; retry shortly.",
    RestCode.TOO_MANY_PINNED: "You have pinned as many chats as allowed; unpin one first.",
    RestCode.TOO_MANY_FILES: "This project holds as many files as allowed; remove one first.",
}

# The single code -> status table. A code missing here is a bug and answers 500.
STATUS: dict[Code, int] = {
    ErrorCode.INVALID: 400,
    RestCode.BAD_JSON: 400,
    ErrorCode.MESSAGE_TOO_LONG: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    RestCode.TOKEN_REUSED: 401,
    RestCode.INVALID_CREDENTIALS: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    RestCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.TIMEOUT: 408,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PIN_LIMIT: 409,
    ErrorCode.MEDIA_KIND_MISMATCH: 400,
    RestCode.PAYLOAD_TOO_LARGE: 413,
    RestCode.UNSUPPORTED_MEDIA_TYPE: 415,
    RestCode.MEDIA_TYPE_MISMATCH: 415,
    RestCode.INVALID_PHONE: 400,
    RestCode.CODE_INVALID: 400,
    RestCode.CODE_EXPIRED: 400,
    RestCode.WRONG_PASSWORD: 403,
    RestCode.ID_TOKEN_INVALID: 401,
    RestCode.OIDC_STATE_INVALID: 400,
    RestCode.EMAIL_UNVERIFIED: 409,
    RestCode.IMAGE_INVALID: 400,
    RestCode.DELIVERY_FAILED: 502,
    RestCode.NOT_CONFIGURED: 503,
    RestCode.PROVIDER_UNAVAILABLE: 502,
    RestCode.TOO_MANY_PINNED: 409,
    RestCode.TOO_MANY_FILES: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.AI_UNKNOWN_MODEL: 400,
    ErrorCode.AI_MODEL_NOT_ALLOWED: 403,
    ErrorCode.AI_BUSY: 409,
    ErrorCode.AI_QUOTA_EXCEEDED: 429,
    ErrorCode.AI_PROVIDER_ERROR: 502,
    ErrorCode.AI_PROVIDER_TIMEOUT: 504,
}


# Where the socket's wording ("reconnect") does not fit a REST client.
_REST_WORDING: dict[ErrorCode, str] = {
    ErrorCode.TOKEN_EXPIRED: "The access token has expired; refresh it.",
    ErrorCode.UNAVAILABLE: "Storage is unavailable; retry shortly.",
}


def default_message(code: Code) -> str:
    if isinstance(code, RestCode):
        return REST_MESSAGES[code]
    return _REST_WORDING.get(code) or ERROR_MESSAGES[code]


class BridgeError(Exception):
    """An error whose answer we chose: a stable ``code``, a human ``message``."""

    default_code: Code = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str | None = None,
        *,
        code: Code | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.code: Code = code or self.default_code
        self.message = message or default_message(self.code)
        self.field = field
        self.headers = headers or {}  # e.g. Retry-After
        super().__init__(f"{self.code.value}: {self.message}")


class BadRequest(BridgeError):
    default_code: Code = ErrorCode.INVALID


class AuthError(BridgeError):
    """Not signed in. The WebSocket gateway catches this in ``hello`` too."""

    default_code: Code = ErrorCode.UNAUTHORIZED


class TokenInvalid(AuthError):
    default_code: Code = ErrorCode.UNAUTHORIZED


class TokenExpired(AuthError):
    default_code: Code = ErrorCode.TOKEN_EXPIRED


class TokenReused(AuthError):
    default_code: Code = RestCode.TOKEN_REUSED


class InvalidCredentials(AuthError):
    default_code: Code = RestCode.INVALID_CREDENTIALS


class Forbidden(BridgeError):
    default_code: Code = ErrorCode.FORBIDDEN


class NotFound(BridgeError):
    default_code: Code = ErrorCode.NOT_FOUND


class RateLimited(BridgeError):
    """429 with ``Retry-After`` (whole seconds, rounded up, at least 1)."""

    default_code: Code = ErrorCode.RATE_LIMITED

    def __init__(self, retry_after: float, message: str | None = None):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            message or f"Too many attempts; retry in {self.retry_after} s.",
            headers={"Retry-After": str(self.retry_after)},
        )


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
