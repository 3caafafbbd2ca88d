"""A small local server speaking the part of Stripe's HTTP API billing uses.

It is driven by the real ``stripe`` library (form-encoded POSTs, Bearer key,
``Idempotency-Key``, Stripe's error JSON) and keeps checkout sessions and
subscriptions in memory. What a customer does on Stripe's own pages (paying,
a renewal, a failed card, cancelling) is simulated by methods that change
that state and return the webhook events Stripe would send; tests sign them
with the real scheme (``sign_event``) and post them to the node.

Fault injection: ``fail_next(status)`` answers the next API call with that
status; ``hang_next(seconds)`` makes it wait (past the client's timeout).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from quart import Response, g, request
from quart_trio import QuartTrio

API_KEY = "sk_test_local"
WEBHOOK_SECRET = "whsec_local_test_secret"
MONTH_S = 30 * 24 * 3600
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


def sign_event(
    event: dict[str, Any], secret: str = WEBHOOK_SECRET, t: int | None = None
) -> tuple[bytes, str]:
    """The raw body and Stripe-Signature header Stripe would send for ``event``:
    HMAC-SHA256 of ``"{t}.{body}"`` with the endpoint secret."""
    body = json.dumps(event).encode()
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},v1={mac}"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


def _error(
    status: int, message: str, *, kind: str = "invalid_request_error", code: str = ""
) -> Response:
    body = {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class FakeStripe:
    prices: dict[str, int] = field(
        default_factory=lambda: {"price_basic": 900, "price_premium": 1800}
    )
    currency: str = "eur"
    url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    _idempotent: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    _faults: deque[tuple[str, float]] = field(default_factory=deque)

    # ----- fault injection and inspection -------------------------------------------

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        self._faults.extend([("status", float(status))] * times)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        self._faults.extend([("hang", seconds)] * times)

    def posts(self, path_prefix: str = "/v1/") -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path_prefix)]

    def new_session(self, form: dict[str, str]) -> dict[str, Any]:
        """A Checkout Session from the (flat, form-encoded) parameters Stripe receives."""
        session_id = _id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "client_reference_id": form.get("client_reference_id"),
            "customer": form.get("customer"),
            "subscription": None,
            "success_url": form["success_url"],
            "cancel_url": form.get("cancel_url"),
            "expires_at": int(form.get("expires_at") or time.time() + 86400),
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "_price": form["line_items[0][price]"],
            "_subscription_metadata": {
                k[len("subscription_data[metadata][") : -1]: v
                for k, v in form.items()
                if k.startswith("subscription_data[metadata][")
            },
        }
        self.sessions[session_id] = session
        return session

    def session_for(self, user_id: str, price: str) -> str:
        """A session opened for ``user_id`` by someone else than our node (e.g. a stale app)."""
        session = self.new_session(
            {
                "mode": "subscription",
                "success_url": "https://app.test/ok",
                "line_items[0][price]": price,
                "client_reference_id": user_id,
                "metadata[user_id]": user_id,
                "subscription_data[metadata][user_id]": user_id,
            }
        )
        return str(session["id"])

    # ----- what customers do on Stripe's pages --------------------------------------

    def pay_checkout(self, session_id: str, *, period_s: int = MONTH_S) -> list[dict[str, Any]]:
        """The customer pays: a customer, an active subscription, a paid first invoice."""
        session = self.sessions[session_id]
        now = int(time.time())
        customer = session.get("customer") or _id("cus")
        sub_id = _id("sub")
        self.subscriptions[sub_id] = {
            "id": sub_id,
            "object": "subscription",
            "status": "active",
            "customer": customer,
            "cancel_at_period_end": False,
            "metadata": dict(session["_subscription_metadata"]),
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": _id("si"),
                        "object": "subscription_item",
                        "price": {"id": session["_price"], "object": "price"},
                        "current_period_start": now,
                        "current_period_end": now + period_s,
                    }
                ],
            },
        }
        session.update(
            status="complete", payment_status="paid", customer=customer, subscription=sub_id
        )
        return [
            self.event("checkout.session.completed", self._public(session)),
            self.event("invoice.paid", self._invoice(sub_id, paid=True)),
        ]

    def renew(self, sub_id: str, *, period_s: int = MONTH_S) -> dict[str, Any]:
        """The next period starts and its invoice is paid."""
        item = self._item(sub_id)
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] += period_s
        self.subscriptions[sub_id]["status"] = "active"
        return self.event("invoice.paid", self._invoice(sub_id, paid=True))

    def fail_renewal(self, sub_id: str, *, period_s: int = MONTH_S) -> dict[str, Any]:
        """The next period starts but the card is declined: past_due."""
        item = self._item(sub_id)
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] += period_s
        self.subscriptions[sub_id]["status"] = "past_due"
        invoice = self._invoice(sub_id, paid=False)
        self.subscriptions[sub_id]["latest_invoice"] = invoice["id"]
        return self.event("invoice.payment_failed", invoice)

    def retry_payment(self, sub_id: str) -> dict[str, Any]:
        """Stripe's retry of the failed invoice succeeds (the card was fixed)."""
        self.subscriptions[sub_id]["status"] = "active"
        invoice_id = self.subscriptions[sub_id]["latest_invoice"]
        return self.event("invoice.paid", self._invoice(sub_id, paid=True, invoice_id=invoice_id))

    def change_price(self, sub_id: str, price: str) -> dict[str, Any]:
        self._item(sub_id)["price"] = {"id": price, "object": "price"}
        return self.event("customer.subscription.updated", dict(self.subscriptions[sub_id]))

    def end_period_now(self, sub_id: str, *, in_seconds: int = 0, now: float | None = None) -> None:
        """``now``: the time (seconds) to count from, when not the real one."""
        start = time.time() if now is None else now
        self._item(sub_id)["current_period_end"] = int(start) + in_seconds

    def delete(self, sub_id: str) -> dict[str, Any]:
        """The subscription ends (cancelled at period end, or unpaid)."""
        self.subscriptions[sub_id].update(status="canceled", ended_at=int(time.time()))
        return self.event("customer.subscription.deleted", dict(self.subscriptions[sub_id]))

    def snapshot_event(
        self, sub_id: str, kind: str = "customer.subscription.updated"
    ) -> dict[str, Any]:
        return self.event(kind, json.loads(json.dumps(self.subscriptions[sub_id])))

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()),
            "livemode": False,
            "type": kind,
            "data": {"object": json.loads(json.dumps(obj))},
        }

    def _item(self, sub_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.subscriptions[sub_id]["items"]["data"][0]
        return item

    def _invoice(self, sub_id: str, *, paid: bool, invoice_id: str = "") -> dict[str, Any]:
        item = self._item(sub_id)
        amount = self.prices[item["price"]["id"]]
        return {
            "id": invoice_id or _id("in"),
            "object": "invoice",
            "customer": self.subscriptions[sub_id]["customer"],
            "currency": self.currency,
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "status": "paid" if paid else "open",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub_id, "metadata": {}},
            },
            "lines": {
                "object": "list",
                "data": [
                    {
                        "period": {
                            "start": item["current_period_start"],
                            "end": item["current_period_end"],
                        }
                    }
                ],
            },
        }

    @staticmethod
    def _public(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if not k.startswith("_")}

    # ----- the HTTP API ---------------------------------------------------------------

    def app(self) -> QuartTrio:
        app = QuartTrio("fake_stripe", static_folder=None)

        @app.before_request
        async def gatekeeper() -> Response | None:
            form = (await request.form).to_dict() if request.method == "POST" else {}
            self.requests.append(
                Recorded(request.method, request.path, dict(request.headers), form)
            )
            # Refused before "executing": Stripe saves no idempotent result for these.
            g.unsaved = True
            if request.headers.get("Authorization") != f"Bearer {API_KEY}":
                return _error(401, "Invalid API Key provided.", kind="invalid_request_error")
            if self._faults:
                kind, value = self._faults.popleft()
                if kind == "hang":
                    # The client gave up long before: nothing is executed.
                    await trio.sleep(value)
                status = 504 if kind == "hang" else int(value)
                return _error(status, "An unknown error occurred.", kind="api_error")
            key = request.headers.get("Idempotency-Key")
            if request.method == "POST" and key in self._idempotent:
                fingerprint, status, body = self._idempotent[key]
                if fingerprint != json.dumps(form, sort_keys=True):
                    return _error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters.",
                        kind="idempotency_error",
                    )
                return Response(body, status=status, content_type="application/json")
            g.unsaved = False
            return None

        @app.after_request
        async def remember(response: Response) -> Response:
            key = request.headers.get("Idempotency-Key")
            if request.method == "POST" and key and not g.unsaved and key not in self._idempotent:
                form = (await request.form).to_dict()
                body = await response.get_data(as_text=True)
                self._idempotent[key] = (
                    json.dumps(form, sort_keys=True),
                    response.status_code,
                    body,
                )
            return response

        @app.post("/v1/checkout/sessions")
        async def create_session() -> Response:
            form = (await request.form).to_dict()
            price = form.get("line_items[0][price]", "")
            if form.get("mode") not in ("subscription", "payment", "setup"):
                return _error(400, "Invalid mode.", code="parameter_invalid_empty")
            if not form.get("success_url"):
                return _error(400, "Missing required param: success_url.", code="parameter_missing")
            if price not in self.prices:
                return _error(400, f"No such price: '{price}'", code="resource_missing")
            session = self.new_session(form)
            return Response(json.dumps(self._public(session)), content_type="application/json")

        @app.get("/v1/checkout/sessions/<session_id>")
        async def get_session(session_id: str) -> Response:
            if session_id not in self.sessions:
                return _error(
                    404, f"No such checkout.session: '{session_id}'", code="resource_missing"
                )
            return Response(
                json.dumps(self._public(self.sessions[session_id])), content_type="application/json"
            )

        @app.post("/v1/checkout/sessions/<session_id>/expire")
        async def expire_session(session_id: str) -> Response:
            session = self.sessions.get(session_id)
            if session is None:
                return _error(
                    404, f"No such checkout.session: '{session_id}'", code="resource_missing"
                )
            if session["status"] != "open":
                return _error(
                    400,
                    'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f'This Checkout Session has a status of "{session["status"]}".',
                )
            session["status"] = "expired"
            return Response(json.dumps(self._public(session)), content_type="application/json")

        @app.get("/v1/subscriptions/<sub_id>")
        async def get_subscription(sub_id: str) -> Response:
            if sub_id not in self.subscriptions:
                return _error(404, f"No such subscription: '{sub_id}'", code="resource_missing")
            return Response(json.dumps(self.subscriptions[sub_id]), content_type="application/json")

        @app.post("/v1/subscriptions/<sub_id>")
        async def update_subscription(sub_id: str) -> Response:
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                return _error(404, f"No such subscription: '{sub_id}'", code="resource_missing")
            form = (await request.form).to_dict()
            if "cancel_at_period_end" in form:
                sub["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
            return Response(json.dumps(sub), content_type="application/json")

        @app.post("/v1/billing_portal/sessions")
        async def portal() -> Response:
            form = (await request.form).to_dict()
            if not form.get("customer"):
                return _error(400, "Missing required param: customer.", code="parameter_missing")
            portal_id = _id("bps")
            body = {
                "id": portal_id,
                "object": "billing_portal.session",
                "customer": form["customer"],
                "return_url": form.get("return_url"),
                "url": f"https://billing.stripe.test/p/session/{portal_id}",
            }
            return Response(json.dumps(body), content_type="application/json")

        return app

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_app(self, self.app(), task_status=task_status)


async def serve_app(
    fake: Any, app: QuartTrio, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``app`` on a free loopback port; ``fake.url`` and the start value are its URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(hypercorn_serve, app, config))
        fake.url = binds[0]
        task_status.started(fake.url)
