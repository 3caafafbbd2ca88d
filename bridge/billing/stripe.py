"""Stripe, through the official library's async methods (on trio, via httpx).

Every call is a ``*_async`` method of one ``stripe.StripeClient`` whose HTTP
client is ``stripe.HTTPXClient``: httpx runs on trio, and ``base_addresses``
points the client anywhere (tests use a local server speaking Stripe's API).
Every POST carries an idempotency key derived from what it does (the order,
the subscription), so a retry, ours or the library's, never creates or
charges twice.

Failures become ``bridge.billing.errors``: no answer in time, a network error
or a 5xx is ``GatewayUnavailable`` (retry later; nothing was changed on our
side), an unknown object is ``PaymentNotFound``. Webhook payloads are verified
with ``stripe.Webhook.construct_event`` on the raw body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from bridge.billing.errors import (
    BillingDisabled,
    GatewayUnavailable,
    PaymentNotFound,
    SignatureInvalid,
)
from bridge.errors import BadRequest
from realtime_server.base.settings import Settings

if TYPE_CHECKING:
    import stripe
    from stripe.params.checkout import SessionCreateParams

# The SDK (and the requests library it loads) costs ~0.1 s of start-up: it is
# imported only by a node that has Stripe configured, when first needed.

log = logging.getLogger(__name__)


@cache
def _httpx_client_class() -> type[stripe.HTTPXClient]:
    import stripe

    class _HTTPXClient(stripe.HTTPXClient):
        """``stripe.HTTPXClient`` handing its form body to httpx as ``content=``.

        The library passes the encoded body as ``data=<str>``, which httpx 0.28
        deprecates with a warning on every POST; the bytes sent are the same.
        """

        def _get_request_args_kwargs(
            self, method: str, url: str, headers: Any, post_data: Any
        ) -> list[Any]:
            args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
            data = kwargs.pop("data", None)
            if data:
                kwargs["content"] = data
            return [args, kwargs]

    return _HTTPXClient


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        self.enabled = bool(settings.stripe_secret_key)
        self.webhook_secret = settings.stripe_webhook_secret
        self._http: stripe.HTTPXClient | None = None
        self._client: stripe.StripeClient | None = None
        if self.enabled:
            import stripe

            self._http = _httpx_client_class()(timeout=settings.stripe_timeout)
            self._client = stripe.StripeClient(
                settings.stripe_secret_key,
                http_client=self._http,
                base_addresses={"api": settings.stripe_api_base.rstrip("/")},
                max_network_retries=settings.stripe_max_retries,
            )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close_async()  # type: ignore[no-untyped-call]

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise BillingDisabled("Stripe is not configured on this server (STRIPE_SECRET_KEY).")
        return self._client

    async def create_checkout(
        self,
        *,
        order_id: str,
        user_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        expires_at: int,
        customer: str | None,
    ) -> CheckoutSession:
        params: SessionCreateParams = {
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "client_reference_id": user_id,
            # invoice.* events carry neither the session nor client_reference_id:
            # the subscription's own metadata is how they find the user.
            "metadata": {"user_id": user_id, "order_id": order_id},
            "subscription_data": {"metadata": {"user_id": user_id}},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": expires_at // 1000,
        }
        if customer:
            params["customer"] = customer
        with _calling("creating a checkout session"):
            session = await self.client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": f"checkout-{order_id}"}
            )
        if not session.url:
            raise GatewayUnavailable("Stripe's checkout session has no URL.")
        return CheckoutSession(id=session.id, url=session.url)

    async def expire_checkout(self, session_id: str) -> str:
        """Expire an open session; returns its status after (``expired`` or ``complete``)."""
        sessions = self.client.v1.checkout.sessions
        try:
            with _calling("expiring a checkout session"):
                session = await sessions.expire_async(
                    session_id, options={"idempotency_key": f"expire-{session_id}"}
                )
        except PaymentNotFound:
            return "expired"
        except _Refused:
            # Stripe refuses to expire a session that is no longer open.
            with _calling("reading a checkout session"):
                session = await sessions.retrieve_async(session_id)
        return str(session.status)

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        with _calling("reading a subscription"):
            sub = await self.client.v1.subscriptions.retrieve_async(subscription_id)
        return dict(sub.to_dict())

    async def cancel_at_period_end(self, subscription_id: str) -> dict[str, Any]:
        with _calling("cancelling a subscription"):
            sub = await self.client.v1.subscriptions.update_async(
                subscription_id,
                {"cancel_at_period_end": True},
                {"idempotency_key": f"cancel-{subscription_id}"},
            )
        return dict(sub.to_dict())

    async def portal_session(self, customer: str, return_url: str, key: str) -> str:
        with _calling("opening the billing portal"):
            session = await self.client.v1.billing_portal.sessions.create_async(
                {"customer": customer, "return_url": return_url}, {"idempotency_key": key}
            )
        return str(session.url)

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event in a webhook body, once its Stripe-Signature checks out."""
        if not self.webhook_secret:
            raise BillingDisabled(
                "Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET)."
            )
        import stripe

        try:
            event = stripe.Webhook.construct_event(payload, signature, self.webhook_secret)
        except stripe.SignatureVerificationError as exc:
            raise SignatureInvalid(
                f"The Stripe-Signature header does not verify: {exc.user_message or exc}",
                field="Stripe-Signature",
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("The webhook body is not a Stripe event.") from None
        data = dict(event.to_dict())
        if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
            raise BadRequest("The webhook body is not a Stripe event.")
        return data


class _Refused(GatewayUnavailable):
    """Stripe answered 400 to a request (the object is not in a state for it)."""


@contextmanager
def _calling(what: str) -> Iterator[None]:
    import stripe

    try:
        yield
    except stripe.APIConnectionError:
        raise GatewayUnavailable(
            f"Stripe did not answer in time while {what}; nothing was changed, retry."
        ) from None
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise PaymentNotFound(f"Stripe does not know this object ({what}).") from None
        log.warning("Stripe refused a request while %s: %s", what, exc.user_message)
        raise _Refused(f"Stripe refused the request while {what}.") from None
    except stripe.AuthenticationError:
        log.error("Stripe rejected our API key (STRIPE_SECRET_KEY) while %s", what)
        raise GatewayUnavailable("Stripe is misconfigured on this server.") from None
    except stripe.StripeError as exc:
        raise GatewayUnavailable(
            f"Stripe failed ({exc.http_status or 'no status'}) while {what}; retry."
        ) from None
