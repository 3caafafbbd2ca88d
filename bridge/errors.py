"""Errors of the bridge's services and routes: a stable code each, and its HTTP status.

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

Domain services (``bridge.accounts``, ``bridge.billing``, ...) raise these, and
the socket handlers may catch them too, so this module knows no HTTP library;
``bridge.http.errors`` is the one place that turns any exception into an HTTP
answer (and says how storage, msgspec and werkzeug errors map, and the body).

Rooms you are not a member of answer 404 ``not_found`` exactly like rooms that
do not exist, so ids cannot be probed. ``ErrorCode.NOT_MEMBER`` stays a
WebSocket code.
"""

from __future__ import annotations

import math
from enum import StrEnum

from protocol.errors import ERROR_MESSAGES, ErrorCode


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
