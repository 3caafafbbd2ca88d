"""Billing errors: ``BridgeError`` subclasses, so the one REST error handler answers them.

Hierarchy (code -> HTTP status through ``bridge.errors.STATUS``)::

    BridgeError
    ├── BillingDisabled       unavailable  503  a gateway's settings are empty
    ├── GatewayUnavailable    unavailable  503  Stripe/Konnect timed out, 5xx'd or refused us
    ├── AlreadySubscribed     conflict     409  checkout for the plan you already have, or
    │                                           while a Stripe subscription runs (use the portal)
    ├── NothingToCancel       conflict     409
    ├── PaymentMismatch       conflict     409  the gateway's payment does not match the order
    ├── SignatureInvalid      invalid      400  forged, malformed or stale Stripe-Signature
    └── PaymentNotFound       not_found    404  unknown order / payment reference

The gateway-facing errors say which gateway failed; none of them leaves
anything half done (see ``bridge.billing.service``).
"""

from __future__ import annotations

from bridge.errors import BridgeError, Code
from protocol.errors import ErrorCode


class BillingDisabled(BridgeError):
    default_code: Code = ErrorCode.UNAVAILABLE


class GatewayUnavailable(BridgeError):
    default_code: Code = ErrorCode.UNAVAILABLE


class AlreadySubscribed(BridgeError):
    default_code: Code = ErrorCode.CONFLICT


class NothingToCancel(BridgeError):
    default_code: Code = ErrorCode.CONFLICT


class PaymentMismatch(BridgeError):
    default_code: Code = ErrorCode.CONFLICT


class SignatureInvalid(BridgeError):
    default_code: Code = ErrorCode.INVALID


class PaymentNotFound(BridgeError):
    default_code: Code = ErrorCode.NOT_FOUND
