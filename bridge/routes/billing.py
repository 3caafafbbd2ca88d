"""Billing: plans, checkouts through Stripe and Konnect, webhooks, status, cancel, history.

Routes (``bridge.billing.service`` holds the rules; this module is HTTP only):

    GET  /billing/plans                         public: the plans and their limits
    GET  /billing/subscription                  your plan, period and AI quota
    POST /billing/stripe/checkout   {plan}      a Stripe Checkout Session URL
    POST /billing/stripe/portal                 a Stripe customer-portal URL
    POST /billing/stripe/webhook                Stripe's events (signed; raw body)
    POST /billing/konnect/checkout  {plan}      a Konnect payUrl
    GET  /billing/konnect/webhook?payment_ref=  Konnect's notification (a hint only)
    GET  /billing/konnect/payments/<ref>        re-check one of your Konnect payments
    POST /billing/cancel                        cancel at period end
    GET  /billing/payments                      your payment history
    GET  /billing/return                        where payment pages send users back

Nothing here grants access by itself: the return page and the Konnect
webhook only make the server ask the gateway what was actually paid.
"""

from __future__ import annotations

import msgspec
from quart import Response, request

from bridge.accounts.tokens import AccessClaims
from bridge.billing.service import Links
from bridge.http.routing import Router, json_response, read_body
from bridge.routes.schemas_billing import (
    CheckoutRequest,
    KonnectCheckoutOut,
    KonnectPaymentOut,
    KonnectWebhookQuery,
    OrderOut,
    PaymentList,
    PaymentListQuery,
    PaymentOut,
    PlanList,
    PlanOut,
    PortalOut,
    ReturnOut,
    ReturnQuery,
    StripeCheckoutOut,
    SubscriptionOut,
    WebhookAck,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode

TAG = "billing"
_GATEWAY_ERRORS = (ErrorCode.CONFLICT, ErrorCode.UNAVAILABLE)


def add_routes(router: Router, services: BridgeServices) -> None:
    billing = services.billing
    if billing is None:  # a REST-only app built without billing
        return
    subs = billing.subscriptions

    def links() -> Links:
        return subs.links(request.host_url)

    @router.route(
        "GET",
        "/billing/plans",
        summary="The plans, their prices (TND millimes) and AI-message limits",
        tag=TAG,
        auth=False,
        uses_store=False,
        responses={200: PlanList},
    )
    async def billing_plans() -> Response:
        stripe, konnect = billing.stripe.enabled, billing.konnect.enabled
        return json_response(
            PlanList([PlanOut.of(p, stripe=stripe, konnect=konnect) for p in billing.plans])
        )

    @router.route(
        "GET",
        "/billing/subscription",
        summary="Your plan, its period, and your AI-message quota now",
        tag=TAG,
        responses={200: SubscriptionOut},
    )
    async def billing_subscription(claims: AccessClaims) -> Response:
        return json_response(SubscriptionOut.of(await subs.status(claims.user_id)))

    @router.route(
        "POST",
        "/billing/stripe/checkout",
        summary="Start a Stripe subscription: answers the Checkout page to send the user to",
        description=(
            "201 with a new Checkout Session, or 200 with the still-payable one opened "
            "earlier for the same plan. The plan starts only when Stripe confirms the "
            "payment by webhook. 409 when you already have the plan, or a Stripe "
            "subscription runs (change plans in the portal)."
        ),
        tag=TAG,
        body=CheckoutRequest,
        responses={201: StripeCheckoutOut, 200: StripeCheckoutOut},
        errors=_GATEWAY_ERRORS,
    )
    async def stripe_checkout(claims: AccessClaims, body: CheckoutRequest) -> Response:
        checkout, created = await subs.stripe_checkout(claims.user_id, body.plan, links())
        return json_response(StripeCheckoutOut.of(checkout), status=201 if created else 200)

    @router.route(
        "POST",
        "/billing/stripe/portal",
        summary="Open Stripe's customer portal (change plan, payment method, cancel)",
        tag=TAG,
        responses={200: PortalOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE),
    )
    async def stripe_portal(claims: AccessClaims) -> Response:
        return json_response(PortalOut(await subs.stripe_portal(claims.user_id, links())))

    @router.route(
        "POST",
        "/billing/stripe/webhook",
        summary="Stripe's webhook: a signed event (verified on the raw body)",
        description=(
            "Answers 400 to a missing, forged or stale Stripe-Signature, 503 when "
            "Stripe cannot be reached to re-read the subscription (Stripe retries), "
            "and 200 otherwise, also for events that change nothing (`result` says why)."
        ),
        tag=TAG,
        auth=False,
        responses={200: WebhookAck},
        errors=(ErrorCode.INVALID, ErrorCode.UNAVAILABLE),
    )
    async def stripe_webhook() -> Response:
        payload = await read_body()
        result = await subs.stripe_webhook(payload, request.headers.get("Stripe-Signature"))
        return json_response(WebhookAck(result))

    @router.route(
        "POST",
        "/billing/konnect/checkout",
        summary="Start a Konnect payment (TND): answers the payUrl to send the user to",
        description=(
            "201 with a new payment, or 200 with the still-payable one opened earlier "
            "for the same plan. The plan starts when Konnect reports the payment "
            "completed with the right amount and currency, for KONNECT_PERIOD_SECONDS."
        ),
        tag=TAG,
        body=CheckoutRequest,
        responses={201: KonnectCheckoutOut, 200: KonnectCheckoutOut},
        errors=_GATEWAY_ERRORS,
    )
    async def konnect_checkout(claims: AccessClaims, body: CheckoutRequest) -> Response:
        checkout, created = await subs.konnect_checkout(claims.user_id, body.plan, links())
        return json_response(KonnectCheckoutOut.of(checkout), status=201 if created else 200)

    @router.route(
        "GET",
        "/billing/konnect/webhook",
        summary="Konnect's notification: the payment is re-read from Konnect and applied",
        description=(
            "The notification is unsigned, so it is only a hint: the payment is fetched "
            "from Konnect and applied only if completed with the order's amount and "
            "currency. Idempotent. 404 for a payment or order we do not know, 409 for a "
            "mismatch (nothing granted)."
        ),
        tag=TAG,
        auth=False,
        query=KonnectWebhookQuery,
        responses={200: WebhookAck},
        errors=(ErrorCode.NOT_FOUND, *_GATEWAY_ERRORS),
    )
    async def konnect_webhook(query: KonnectWebhookQuery) -> Response:
        result, _order = await subs.konnect_verify(query.payment_ref)
        return json_response(WebhookAck(result))

    @router.route(
        "GET",
        "/billing/konnect/payments/<payment_ref>",
        summary="Re-check one of your Konnect payments with Konnect (and apply it)",
        tag=TAG,
        responses={200: KonnectPaymentOut},
        errors=(ErrorCode.NOT_FOUND, *_GATEWAY_ERRORS),
    )
    async def konnect_payment(claims: AccessClaims, payment_ref: str) -> Response:
        # Validated like the webhook's query: only id-like text reaches Konnect.
        ref = msgspec.convert({"payment_ref": payment_ref}, KonnectWebhookQuery).payment_ref
        result, order = await subs.konnect_verify(ref, user_id=claims.user_id)
        order = await billing.store.get_order(order.id) or order
        return json_response(
            KonnectPaymentOut(
                result, OrderOut.of(order), SubscriptionOut.of(await subs.status(claims.user_id))
            )
        )

    @router.route(
        "POST",
        "/billing/cancel",
        summary="Cancel at period end: the plan stays until then, then falls back to free",
        tag=TAG,
        responses={200: SubscriptionOut},
        errors=_GATEWAY_ERRORS,
    )
    async def billing_cancel(claims: AccessClaims) -> Response:
        return json_response(SubscriptionOut.of(await subs.cancel(claims.user_id)))

    @router.route(
        "GET",
        "/billing/payments",
        summary="Your payments, newest first",
        tag=TAG,
        query=PaymentListQuery,
        responses={200: PaymentList},
    )
    async def billing_payments(claims: AccessClaims, query: PaymentListQuery) -> Response:
        found = await subs.payments(claims.user_id, limit=query.limit, offset=query.offset)
        return json_response(PaymentList([PaymentOut.of(p) for p in found]))

    @router.route(
        "GET",
        "/billing/return",
        summary="Where payment pages send users back; grants nothing by itself",
        tag=TAG,
        auth=False,
        uses_store=False,
        query=ReturnQuery,
        responses={200: ReturnOut},
    )
    async def billing_return(query: ReturnQuery) -> Response:
        if query.result == "success":
            message = (
                "Thank you. Your plan starts as soon as the payment provider confirms "
                "the payment; check GET /billing/subscription."
            )
        else:
            message = "No payment was made; your plan is unchanged."
        return json_response(ReturnOut(message))
