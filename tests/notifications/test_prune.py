"""Old notifications are pruned on both backends: read ones past the
retention, and whatever lies beyond a user's cap. Time is a ``ManualClock``:
ninety days pass in one call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from realtime_server.base.clock import ManualClock
from realtime_server.notification_prune import DAY_MS, NotificationSweeper
from storage.base import Store, User
from storage.notifications import NewNotification, new_notification_id, notification_store

MakeUser = Callable[[str], Awaitable[User]]


def made_at(at: int, title: str) -> NewNotification:
    return NewNotification(new_notification_id(), "group.added", title, at)


async def titles(store: Store, user: User) -> list[str]:
    return [n.title for n in await notification_store(store).page(user.id, limit=100)]


@asynccontextmanager
async def sweeping(sweeper: NotificationSweeper) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(sweeper.serve)  # started: the first sweep is done
        yield
        nursery.cancel_scope.cancel()


async def until_pruned(sweeper: NotificationSweeper, total: int) -> None:
    with trio.fail_after(10):
        while sweeper.pruned < total:  # noqa: ASYNC110 - the sweeper works on the database
            await trio.sleep(0.01)


async def test_read_notifications_go_after_the_retention_and_unread_ones_stay(
    store: Store, make_user: MakeUser
) -> None:
    ada = await make_user("ada")
    notes = notification_store(store)
    clock = ManualClock()
    now = clock.now_ms()
    old_read, old_unread, new_read = (
        made_at(now - 100 * DAY_MS, "old read"),
        made_at(now - 100 * DAY_MS, "old unread"),
        made_at(now, "new read"),
    )
    for n in (old_read, old_unread, new_read):
        await notes.add([ada.id], n)
    await notes.mark_read(ada.id, [old_read.id, new_read.id], at=now)

    sweeper = NotificationSweeper(store, clock, retention_days=90, max_per_user=100)
    async with sweeping(sweeper):
        # Swept before the node serves: what expired while it was down is gone.
        assert sweeper.pruned == 1
        assert await titles(store, ada) == ["new read", "old unread"]
        clock.advance(89 * DAY_MS)
        await trio.sleep(0.2)
        assert await titles(store, ada) == ["new read", "old unread"]
        clock.advance(1 * DAY_MS + 1)  # the newer read one is 90 days old now
        await until_pruned(sweeper, 2)
        assert await titles(store, ada) == ["old unread"]
    assert await notes.unread_count(ada.id) == 1


async def test_a_user_keeps_only_the_newest_notifications_up_to_the_cap(
    store: Store, make_user: MakeUser
) -> None:
    ada, bob = await make_user("ada"), await make_user("bob")
    notes = notification_store(store)
    clock = ManualClock()
    for i in range(5):
        await notes.add([ada.id], made_at(clock.now_ms(), f"ada {i}"))
    await notes.add([bob.id], made_at(clock.now_ms(), "bob 0"))

    sweeper = NotificationSweeper(store, clock, retention_days=90, max_per_user=3, batch=1)
    async with sweeping(sweeper):
        assert sweeper.pruned == 2  # in batches of one: the loop goes on until done
        assert await titles(store, ada) == ["ada 4", "ada 3", "ada 2"]
        assert await titles(store, bob) == ["bob 0"]
        # More arrive later: the hourly check trims again.
        await notes.add([ada.id], made_at(clock.now_ms(), "ada 5"))
        clock.advance(3600 * 1000)
        await until_pruned(sweeper, 3)
        assert await titles(store, ada) == ["ada 5", "ada 4", "ada 3"]
