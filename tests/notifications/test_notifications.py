"""Per-user notifications over real sockets and REST (issue 15, part 2): each
kind appears live, in the list and in the unread count, and is marked read."""

from __future__ import annotations

import httpx

from protocol import frames_calls as fc
from protocol.client import open_client
from protocol.frames_notify import NotifyNew, NotifyRead
from realtime_server.node import Node
from tests.billing.fake_konnect import FakeKonnect
from tests.billing.fake_stripe import FakeStripe
from tests.billing.helpers import (
    deliver,
    konnect_checkout,
    subscribe_with_konnect,
    subscribe_with_stripe,
)
from tests.calls.helpers import direct_room, expect, start
from tests.e2e.helpers import auth, create_group, register
from tests.notifications.helpers import next_of, no_push_of, notifications


async def test_a_missed_call_is_pushed_listed_counted_and_marked_read_on_every_device(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token, device="phone") as phone,
        open_client(node.ws_url, bob.access_token, device="laptop") as laptop,
    ):
        call = await start(a, room, "video")
        await expect(phone, fc.CallRing)
        live = [(await next_of(device, NotifyNew)).d for device in (phone, laptop)]
        assert live[0] == live[1]
        n = live[0]
        assert (n.kind, n.title, n.read) == ("call.missed", "Missed video call", False)
        assert (n.ref.call, n.ref.room, n.ref.user, n.ref.call_kind) == (
            call.id,
            room,
            ada.id,
            "video",
        )
        assert n.body.endswith("called you.")
        await no_push_of(a, NotifyNew, wait=0.1)  # the caller missed nothing

        listed = await notifications(http, bob)
        assert listed["unread"] == 1
        assert [(x["id"], x["kind"], x["read"]) for x in listed["notifications"]] == [
            (n.id, "call.missed", False)
        ]
        r = await http.post(f"/me/notifications/{n.id}/read", headers=auth(bob))
        assert (r.status_code, r.json()) == (200, {"unread": 0, "marked": 1})
        for device in (phone, laptop):
            read = (await next_of(device, NotifyRead)).d
            assert (read.ids, read.all, read.unread) == ([n.id], False, 0)
    after = await notifications(http, bob)
    assert (after["unread"], after["notifications"][0]["read"]) == (0, True)
    assert (await notifications(http, ada))["notifications"] == []


async def test_being_added_to_a_group_at_creation_or_later_notifies_the_added_only(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cy = await register(http), await register(http), await register(http)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        room = await create_group(http, ada, bob, name="Climbing")
        n = (await next_of(b, NotifyNew)).d
        assert (n.kind, n.title, n.ref.room, n.ref.user) == (
            "group.added",
            "Added to Climbing",
            room,
            ada.id,
        )
        r = await http.post(
            f"/rooms/{room}/members", json={"user_ids": [cy.id, bob.id]}, headers=auth(ada)
        )
        assert r.status_code == 200, r.text
        await no_push_of(a, NotifyNew, wait=0.1)
        await no_push_of(b, NotifyNew, wait=0.1)  # already a member: nothing new
    # cy was offline: it is waiting in the list.
    offline = await notifications(http, cy)
    assert offline["unread"] == 1
    assert [(x["kind"], x["ref"]["room"]) for x in offline["notifications"]] == [
        ("group.added", room)
    ]
    r = await http.post("/me/notifications/read-all", headers=auth(cy))
    assert (r.status_code, r.json()) == (200, {"unread": 0, "marked": 1})
    assert (await notifications(http, ada))["unread"] == 0


async def test_stripe_payments_a_failed_renewal_and_a_cancel_notify_once_each(
    billing_node: Node, api: httpx.AsyncClient, stripe_server: FakeStripe
) -> None:
    alice = await register(api)
    async with open_client(billing_node.ws_url, alice.access_token) as a:
        sub_id = await subscribe_with_stripe(api, stripe_server, alice, "premium")
        paid = (await next_of(a, NotifyNew)).d
        assert (paid.kind, paid.ref.plan) == ("payment.succeeded", "premium")
        assert paid.ref.amount is not None and paid.ref.amount > 0
        r = await deliver(api, stripe_server.fail_renewal(sub_id))
        assert r.status_code == 200, r.text
        failed = (await next_of(a, NotifyNew)).d
        assert (failed.kind, failed.ref.plan) == ("payment.failed", "premium")
        # Stripe's retry succeeds: another payment notice.
        await deliver(api, stripe_server.retry_payment(sub_id))
        assert (await next_of(a, NotifyNew)).d.kind == "payment.succeeded"

        r = await api.post("/billing/cancel", headers=auth(alice))
        assert r.status_code == 200, r.text
        ending = (await next_of(a, NotifyNew)).d
        assert (ending.kind, ending.ref.plan) == ("plan.ending", "premium")
        assert ending.ref.ends_at == r.json()["period_end"]
        # Stripe then reports the same cancellation: no second notice.
        await deliver(api, stripe_server.snapshot_event(sub_id))
        await no_push_of(a, NotifyNew)
    kinds = [x["kind"] for x in (await notifications(api, alice))["notifications"]]
    assert kinds == ["plan.ending", "payment.succeeded", "payment.failed", "payment.succeeded"]


async def test_a_konnect_payment_notifies_once_however_often_konnect_calls(
    billing_node: Node, api: httpx.AsyncClient, konnect_server: FakeKonnect
) -> None:
    alice = await register(api)
    ref = await subscribe_with_konnect(api, konnect_server, alice, "basic")
    assert (await konnect_server.notify(ref)).status_code == 200  # a repeated webhook
    listed = await notifications(api, alice)
    [n] = listed["notifications"]
    assert (n["kind"], n["ref"]["plan"], n["ref"]["currency"], listed["unread"]) == (
        "payment.succeeded",
        "basic",
        "TND",
        1,
    )


async def test_a_rejected_konnect_payment_is_a_failed_payment_notified_once(
    billing_node: Node, api: httpx.AsyncClient, konnect_server: FakeKonnect
) -> None:
    alice = await register(api)
    checkout = await konnect_checkout(api, alice, "premium")
    ref = checkout["payment_ref"]
    konnect_server.pay(ref)
    konnect_server.tamper(ref, amount=1_000)
    async with open_client(billing_node.ws_url, alice.access_token) as a:
        assert (await konnect_server.notify(ref)).status_code == 409
        failed = (await next_of(a, NotifyNew)).d
        assert (failed.kind, failed.ref.plan, failed.ref.reason is not None) == (
            "payment.failed",
            "premium",
            True,
        )
        assert (await konnect_server.notify(ref)).status_code == 409  # Konnect retries
        await no_push_of(a, NotifyNew)
    assert [n["kind"] for n in (await notifications(api, alice))["notifications"]] == [
        "payment.failed"
    ]
