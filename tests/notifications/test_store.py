"""The notification and role store's own rules, on both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from storage.base import Store, User, new_id, now_ms
from storage.billing import BillingWrite, SubscriptionRecord, billing_store
from storage.notifications import (
    ADMIN,
    NewNotification,
    PlanRule,
    new_notification_id,
    notification_store,
)

MakeUser = Callable[[str], Awaitable[User]]
DAY = 24 * 3600 * 1000


def note(kind: str = "group.added", **data: object) -> NewNotification:
    return NewNotification(
        new_notification_id(), kind, "Title", now_ms(), body="b", data=dict(data)
    )


async def test_a_users_notifications_page_newest_first_and_count_unread(
    store: Store, make_user: MakeUser
) -> None:
    ada, bob = await make_user("ada"), await make_user("bob")
    notes = notification_store(store)
    sent = [note(room=f"r{i}") for i in range(5)]
    for n in sent:
        assert await notes.add([ada.id, "u_nobody"], n) == [ada.id]
    first = await notes.page(ada.id, limit=3)
    assert [n.id for n in first] == [n.id for n in reversed(sent)][:3]
    assert first[0].data == {"room": "r4"}
    rest = await notes.page(ada.id, before=first[-1].id, limit=3)
    assert [n.id for n in rest] == [sent[1].id, sent[0].id]
    assert (await notes.unread_count(ada.id), await notes.unread_count(bob.id)) == (5, 0)

    # Someone else's id: nothing is marked, the unknown id comes back.
    other = await notes.mark_read(bob.id, [sent[0].id], at=now_ms())
    assert (other.unknown, other.marked, other.unread) == ((sent[0].id,), 0, 0)
    mixed = await notes.mark_read(ada.id, [sent[0].id, "n_nope"], at=now_ms())
    assert (mixed.unknown, mixed.marked, mixed.unread) == (("n_nope",), 0, 5)
    one = await notes.mark_read(ada.id, [sent[0].id, sent[0].id], at=now_ms())
    assert (one.marked, one.unread) == (1, 4)
    assert (await notes.mark_read(ada.id, [sent[0].id], at=now_ms())).marked == 0
    unread = await notes.page(ada.id, limit=10, unread_only=True)
    assert sent[0].id not in {n.id for n in unread} and len(unread) == 4
    assert (await notes.mark_all_read(ada.id, at=now_ms())).marked == 4
    assert await notes.unread_count(ada.id) == 0


async def test_an_announcement_reaches_everyone_or_one_plans_users_with_one_id(
    store: Store, make_user: MakeUser
) -> None:
    ada, bob, cy = await make_user("ada"), await make_user("bob"), await make_user("cy")
    notes = notification_store(store)
    now = now_ms()
    billing = billing_store(store)

    async def subscribe(user: User, plan: str, provider: str, end: int, cancel: bool) -> None:
        record = SubscriptionRecord(
            user.id, plan, "active", provider, new_id("sub_"), now - DAY, end, cancel
        )
        await billing.apply(BillingWrite(user_id=user.id, change=lambda _: record, at=now))

    await subscribe(ada, "premium", "stripe", now - 1000, cancel=False)  # in its renewal grace
    await subscribe(bob, "premium", "stripe", now - 1000, cancel=True)  # ended: free
    rule = PlanRule(now, {"active", "trialing"}, grace_ms=DAY, paid_plans={"basic", "premium"})

    everyone = note("announcement")
    assert await notes.add_to_everyone(everyone) == 3
    for user in (ada, bob, cy):
        assert [n.id for n in await notes.page(user.id, limit=5)] == [everyone.id]
    premium = note("announcement")
    assert await notes.add_to_plan(premium, "premium", rule) == [ada.id]
    free = note("announcement")
    assert sorted(await notes.add_to_plan(free, "free", rule)) == sorted([bob.id, cy.id])
    assert await notes.add_to_plan(note("announcement"), "basic", rule) == []


async def test_roles_are_granted_and_revoked_once(store: Store, make_user: MakeUser) -> None:
    ada, bob = await make_user("Ada"), await make_user("bob")
    notes = notification_store(store)
    assert await notes.user_id_by_email("  ADA@example.com ") == ada.id
    assert await notes.user_id_by_email("nobody@example.com") is None
    assert await notes.grant(ada.id, ADMIN, now_ms()) is True
    assert await notes.grant(ada.id, ADMIN, now_ms()) is False
    assert await notes.has_role(ada.id, ADMIN) and not await notes.has_role(bob.id, ADMIN)
    assert await notes.with_role([ada.id, bob.id], ADMIN) == {ada.id}
    assert await notes.revoke(ada.id, ADMIN) is True
    assert await notes.revoke(ada.id, ADMIN) is False
    assert await notes.with_role([ada.id, bob.id], ADMIN) == set()
