"""A small local server speaking Konnect's payment API (api/v2), as its docs describe it.

``POST /api/v2/payments/init-payment`` (JSON, ``x-api-key``) answers
``{payUrl, paymentRef}``; ``GET /api/v2/payments/{paymentRef}`` answers
``{"payment": {...}}`` with ``status`` pending or completed. A customer paying
on Konnect's page is ``pay(ref)``; Konnect's webhook (a plain GET on the
URL given at init, ``?payment_ref=...``, unsigned) is ``notify(ref)``.

Fault injection: ``fail_next(status)`` and ``hang_next(seconds)`` affect the
next API call; ``tamper(ref, ...)`` changes what Konnect reports.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from quart import Response, request
from quart_trio import QuartTrio

from tests.billing.fake_stripe import serve_app

API_KEY = "konnect-test-key"
WALLET = "5f7a209aeb3f76490ac4a3d1"
_ids = itertools.count(1)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"errors": [{"message": message}]}, status)


@dataclass
class FakeKonnect:
    url: str = ""
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, str] = field(default_factory=dict)
    inits: list[dict[str, Any]] = field(default_factory=list)
    _faults: deque[tuple[str, float]] = field(default_factory=deque)

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v2"

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        self._faults.extend([("status", float(status))] * times)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        self._faults.extend([("hang", seconds)] * times)

    # ----- what customers (and Konnect) do ------------------------------------------

    def pay(self, ref: str) -> None:
        payment = self.payments[ref]
        payment.update(
            status="completed",
            reachedAmount=payment["amount"],
            amountDue=0,
            transactions=[
                {
                    "type": "wallet",
                    "method": "wallet",
                    "status": "success",
                    "amount": payment["amount"],
                    "token": payment["token"],
                }
            ],
        )

    def tamper(self, ref: str, **changes: Any) -> None:
        self.payments[ref].update(changes)

    def expire(self, ref: str) -> None:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        self.payments[ref]["expirationDate"] = past.isoformat().replace("+00:00", "Z")

    async def notify(self, ref: str) -> httpx.Response:
        """Konnect's webhook call: GET <webhook>?payment_ref=<ref>."""
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.webhooks[ref], params={"payment_ref": ref})

    # ----- the HTTP API ---------------------------------------------------------------

    def app(self) -> QuartTrio:
        app = QuartTrio("fake_konnect", static_folder=None)

        @app.before_request
        async def gatekeeper() -> Response | None:
            if request.headers.get("x-api-key") != API_KEY:
                return _error(401, "Unauthorized")
            if self._faults:
                kind, value = self._faults.popleft()
                if kind == "hang":
                    # The client gave up long before: nothing is executed.
                    await trio.sleep(value)
                status = 504 if kind == "hang" else int(value)
                return _error(status, "Internal server error")
            return None

        @app.post("/api/v2/payments/init-payment")
        async def init_payment() -> Response:
            body = await request.get_json(force=True)
            self.inits.append(body)
            if body.get("receiverWalletId") != WALLET:
                return _error(422, "receiverWalletId is not a valid wallet")
            amount = body.get("amount")
            if not isinstance(amount, int) or amount <= 0:
                return _error(422, "amount must be a positive integer")
            ref = f"{next(_ids):04x}{secrets.token_hex(10)}"
            lifespan = int(body.get("lifespan") or 10)
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=lifespan)
            self.payments[ref] = {
                "id": ref,
                "status": "pending",
                "amount": amount,
                "amountDue": amount,
                "reachedAmount": 0,
                "token": body.get("token", "TND"),
                "orderId": body.get("orderId"),
                "type": body.get("type", "immediate"),
                "details": body.get("description", ""),
                "expirationDate": expires.isoformat().replace("+00:00", "Z"),
                "transactions": [],
                "receiverWallet": {"id": WALLET},
            }
            if body.get("webhook"):
                self.webhooks[ref] = body["webhook"]
            return _json(
                {
                    "payUrl": f"https://gateway.sandbox.konnect.test/pay?payment_ref={ref}",
                    "paymentRef": ref,
                }
            )

        @app.get("/api/v2/payments/<ref>")
        async def get_payment(ref: str) -> Response:
            if ref not in self.payments:
                return _error(404, "Payment not found")
            return _json({"payment": self.payments[ref]})

        return app

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_app(self, self.app(), task_status=task_status)
