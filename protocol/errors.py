"""Error codes and close codes clients can rely on.

Hierarchy::

    ProtocolError(code, message)        the peer sent something we cannot accept
    └── FrameTooLarge                   over the frame-size limit

``ErrorCode`` values are stable strings sent in ``err`` frames and REST JSON
errors; never rename one. ``CloseCode`` values are WebSocket close codes in two
documented ranges: 4000-4099 mean "reconnect (with backoff) and resume",
4100-4199 mean "do not reconnect until the user acts" (sign in again, update
the app).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    FRAME_TOO_LARGE = "frame_too_large"
    INVALID = "invalid"
    HELLO_REQUIRED = "hello_required"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    NOT_MEMBER = "not_member"
    MESSAGE_TOO_LONG = "message_too_long"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    # AI conversations (issue 4)
    AI_UNKNOWN_MODEL = "ai_unknown_model"
    AI_MODEL_NOT_ALLOWED = "ai_model_not_allowed"
    AI_QUOTA_EXCEEDED = "ai_quota_exceeded"
    AI_BUSY = "ai_busy"
    AI_PROVIDER_ERROR = "ai_provider_error"
    AI_PROVIDER_TIMEOUT = "ai_provider_timeout"
    # Calls (issue 5)
    NOT_IN_CALL = "not_in_call"
    CALL_ENDED = "call_ended"
    ALREADY_ANSWERED = "already_answered"
    ALREADY_IN_CALL = "already_in_call"
    CALL_FULL = "call_full"
    SIGNAL_TOO_LARGE = "signal_too_large"
    # Media messages (issue 12)
    MEDIA_KIND_MISMATCH = "media_kind_mismatch"
    # Pinned messages (issue 18)
    PIN_LIMIT = "pin_limit"


# Human messages for each code; a specific message may replace it per error.
ERROR_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.BAD_FRAME: "The frame is not valid MessagePack or not a map with a 't' field.",
    ErrorCode.UNKNOWN_TYPE: "The frame type is not one this server knows.",
    ErrorCode.FRAME_TOO_LARGE: "The frame is larger than the server accepts.",
    ErrorCode.INVALID: "A field is missing or has the wrong type or value.",
    ErrorCode.HELLO_REQUIRED: "The first frame on a connection must be 'hello'.",
    ErrorCode.UNSUPPORTED_VERSION: "This protocol version is not supported by the server.",
    ErrorCode.UNAUTHORIZED: "The token is missing, malformed or not valid.",
    ErrorCode.TOKEN_EXPIRED: "The token has expired; refresh it and reconnect.",
    ErrorCode.FORBIDDEN: "You are not allowed to do this.",
    ErrorCode.NOT_FOUND: "No such object.",
    ErrorCode.NOT_MEMBER: "You are not a member of this room.",
    ErrorCode.MESSAGE_TOO_LONG: "The message text is longer than the server accepts.",
    ErrorCode.CONFLICT: "This conflicts with existing data.",
    ErrorCode.RATE_LIMITED: "Too many requests; slow down.",
    ErrorCode.OVERLOADED: "The server is busy; retry shortly.",
    ErrorCode.TIMEOUT: "The server did not finish in time; retry (resends are idempotent).",
    ErrorCode.UNAVAILABLE: "Storage is unavailable; retry (resends are idempotent).",
    ErrorCode.INTERNAL: "Internal server error.",
    ErrorCode.AI_UNKNOWN_MODEL: "No configured AI provider serves this model.",
    ErrorCode.AI_MODEL_NOT_ALLOWED: "Your plan does not include this AI model.",
    ErrorCode.AI_QUOTA_EXCEEDED: "You have used all AI messages your plan allows this period.",
    ErrorCode.AI_BUSY: "An AI answer is already being generated in this room; stop it or wait.",
    ErrorCode.AI_PROVIDER_ERROR: "The AI provider failed or sent a malformed stream.",
    ErrorCode.AI_PROVIDER_TIMEOUT: "The AI provider did not answer in time.",
    ErrorCode.NOT_IN_CALL: "You (or this device, or the peer) are not in this call.",
    ErrorCode.CALL_ENDED: "This call has ended.",
    ErrorCode.ALREADY_ANSWERED: "This call was already answered by you, on this or another device.",
    ErrorCode.ALREADY_IN_CALL: "You are already in another call; hang it up first.",
    ErrorCode.CALL_FULL: "This call has as many participants as the server allows.",
    ErrorCode.SIGNAL_TOO_LARGE: "The SDP or ICE candidate is larger than the server accepts.",
    ErrorCode.MEDIA_KIND_MISMATCH: "The upload is not of the message's kind (image, video, audio).",
    ErrorCode.PIN_LIMIT: "The room already has 3 pinned messages; unpin one first.",
}


class CloseCode(IntEnum):
    """WebSocket close codes. 1000/1001 are the standard ones."""

    NORMAL = 1000
    GOING_AWAY = 1001
    # 4000-4099: transient. Reconnect with backoff, resume with cursors.
    SLOW_CONSUMER = 4000
    HEARTBEAT_TIMEOUT = 4001
    SERVER_RESTART = 4002
    HELLO_TIMEOUT = 4003
    # Issue 12 (gateway): the open socket's access token expired without ``auth``.
    ACCESS_EXPIRED = 4004
    # 4100-4199: terminal. Do not reconnect until something changes.
    PROTOCOL_VIOLATION = 4100
    UNAUTHORIZED = 4101
    TOKEN_EXPIRED = 4102
    UNSUPPORTED_VERSION = 4103
    SESSION_REVOKED = 4104

    @property
    def should_reconnect(self) -> bool:
        return self.value < 4100


CLOSE_REASONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "Closed normally.",
    CloseCode.GOING_AWAY: "The server is shutting down; reconnect to another node.",
    CloseCode.SLOW_CONSUMER: "Outbound queue overflowed; reconnect and resume from your cursors.",
    CloseCode.HEARTBEAT_TIMEOUT: "No traffic or pong within the heartbeat timeout.",
    CloseCode.SERVER_RESTART: "The server is restarting; reconnect and resume.",
    CloseCode.HELLO_TIMEOUT: "No hello frame within the allowed time.",
    CloseCode.ACCESS_EXPIRED: (
        "The session's access token expired; refresh it over REST, then reconnect and resume."
    ),
    CloseCode.PROTOCOL_VIOLATION: "The first frame was not a valid hello.",
    CloseCode.UNAUTHORIZED: "The token in hello is not valid; sign in again.",
    CloseCode.TOKEN_EXPIRED: "The token in hello has expired; refresh it, then reconnect.",
    CloseCode.UNSUPPORTED_VERSION: (
        "The protocol version in hello is not supported; update the app."
    ),
    CloseCode.SESSION_REVOKED: "This session was signed out.",
}


class ProtocolError(Exception):
    """The peer sent a frame we cannot accept. ``code`` goes on the wire."""

    def __init__(self, code: ErrorCode, message: str | None = None, re: int | None = None):
        self.code = code
        self.message = message or ERROR_MESSAGES[code]
        # The request id the bad frame carried, when it could be read.
        self.re = re
        super().__init__(f"{code.value}: {self.message}")


class FrameTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int):
        super().__init__(
            ErrorCode.FRAME_TOO_LARGE, f"Frame of {size} bytes is over the limit of {limit} bytes."
        )
