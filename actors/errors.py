"""Errors the actor runtime hands to callers.

Hierarchy::

    ActorError(code)              something went wrong delivering or handling a message
    ├── Rejected                  the actor refused (a domain answer, e.g. not a member);
    │                             raised in a handler, it goes to the caller; the actor lives on
    ├── ActorCrashed              the actor died while the message was queued or in hand
    ├── ActorUnavailable          the actor could not be started or has stopped for good
    └── AskTimeout                no reply within the timeout

``code`` is a ``protocol.errors.ErrorCode`` so the gateway can put it straight
on the wire.
"""

from __future__ import annotations

from protocol.errors import ERROR_MESSAGES, ErrorCode


class ActorError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str | None = None, *, code: ErrorCode | None = None):
        if code is not None:
            self.code = code
        self.message = message or ERROR_MESSAGES[self.code]
        super().__init__(self.message)


class Rejected(ActorError):
    code = ErrorCode.FORBIDDEN


class ActorCrashed(ActorError):
    code = ErrorCode.INTERNAL


class ActorUnavailable(ActorError):
    code = ErrorCode.UNAVAILABLE


class AskTimeout(ActorError):
    code = ErrorCode.TIMEOUT
