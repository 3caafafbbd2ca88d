"""Konnect (Tunisian payment gateway), over plain httpx on trio.

Two calls, both with the ``x-api-key`` header against ``KONNECT_API_BASE``:

- ``POST /payments/init-payment``: receiver wallet, amount in millimes, token
  ``TND``, our order id and webhook URL; answers ``payUrl`` and ``paymentRef``.
- ``GET /payments/{paymentRef}``: Konnect's own view of the payment. Konnect's
  webhook carries nothing but a ``payment_ref`` and no signature, so this call
  is the only thing billing ever trusts.

Failures become ``bridge.billing.errors``: no answer in time, a network error
or a 5xx is ``GatewayUnavailable``; a 404 for a payment is ``PaymentNotFound``;
any other refusal is logged (it means our settings are wrong) and answered as
``GatewayUnavailable`` without Konnect's text.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bridge.billing.errors import BillingDisabled, GatewayUnavailable, PaymentNotFound
from realtime_server.base.settings import Settings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class KonnectGateway:
    def __init__(self, settings: Settings) -> None:
        self.enabled = bool(settings.konnect_api_key and settings.konnect_wallet_id)
        self._wallet = settings.konnect_wallet_id
        self._timeout = settings.konnect_timeout
        self._lifespan = settings.konnect_lifespan_minutes
        self._http: httpx.AsyncClient | None = None
        if self.enabled:
            import httpx  # only a node with Konnect configured needs it

            self._http = httpx.AsyncClient(
                base_url=settings.konnect_api_base.rstrip("/") + "/",
                headers={"x-api-key": settings.konnect_api_key},
                timeout=settings.konnect_timeout,
            )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise BillingDisabled(
                "Konnect is not configured on this server (KONNECT_API_KEY, KONNECT_WALLET_ID)."
            )
        return self._http

    async def init_payment(
        self,
        *,
        order_id: str,
        amount: int,
        currency: str,
        description: str,
        webhook: str,
        success_url: str,
        fail_url: str,
    ) -> tuple[str, str]:
        """Start a payment; returns (payUrl, paymentRef)."""
        body = {
            "receiverWalletId": self._wallet,
            "token": currency,
            "amount": amount,
            "type": "immediate",
            "description": description,
            "lifespan": self._lifespan,
            "checkoutForm": False,
            "addPaymentFeesToAmount": False,
            "orderId": order_id,
            "webhook": webhook,
            "silentWebhook": True,
            "successUrl": success_url,
            "failUrl": fail_url,
        }
        data = await self._call("starting a payment", "POST", "payments/init-payment", json=body)
        pay_url, ref = data.get("payUrl"), data.get("paymentRef")
        if not isinstance(pay_url, str) or not isinstance(ref, str) or not ref:
            raise GatewayUnavailable("Konnect's answer lacks payUrl or paymentRef.")
        return pay_url, ref

    async def get_payment(self, payment_ref: str) -> dict[str, Any]:
        data = await self._call(
            "reading a payment", "GET", f"payments/{quote(payment_ref, safe='')}"
        )
        payment = data.get("payment")
        if not isinstance(payment, dict):
            raise GatewayUnavailable("Konnect's answer lacks the payment.")
        return payment

    async def _call(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise GatewayUnavailable(
                f"Konnect did not answer within {self._timeout:g}s while {what}; retry."
            ) from None
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(
                f"Konnect could not be reached while {what} ({type(exc).__name__}); retry."
            ) from None
        if response.status_code == 404 and method == "GET":
            raise PaymentNotFound("Konnect knows no payment with this reference.")
        if response.status_code >= 500:
            raise GatewayUnavailable(
                f"Konnect failed ({response.status_code}) while {what}; retry."
            )
        if response.status_code >= 400:
            log.error(
                "Konnect refused a request while %s: %s %s",
                what,
                response.status_code,
                response.text[:500],
            )
            raise GatewayUnavailable(f"Konnect refused the request while {what}.")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayUnavailable(f"Konnect's answer while {what} is not a JSON object.")
        return data
