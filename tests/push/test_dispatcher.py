"""The dispatcher's retry and queue rules, with a stand-in provider.

The retry test moves a MockClock by hand in half seconds once the targets are
read (autojump would also jump during the database's real I/O)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing

from protocol.frames import Message
from realtime_server.hub import Hub
from realtime_server.push.dispatcher import PushDispatcher, Sender
from realtime_server.push.message import Outcome, PushMessage, Result
from storage.base import Room, RoomMember, Store, User, new_id, now_ms
from storage.push_tokens import PushToken, push_token_store

MakeUser = Callable[[str], Awaitable[User]]


class Provider:
    """A provider that answers from a script and notes when it was asked."""

    provider = "fcm"

    def __init__(self, *answers: Outcome) -> None:
        self.answers = list(answers)
        self.asked_at: list[float] = []
        self.asked = trio.Event()

    async def send(self, token: str, m: PushMessage, *, app_id: str) -> Result:
        self.asked_at.append(trio.current_time())
        self.asked.set()
        return Result(self.answers.pop(0) if self.answers else Outcome.SENT)


async def room_with_token(store: Store, make_user: MakeUser) -> tuple[str, User, User]:
    ada, bob = await make_user("ada"), await make_user("bob")
    room = Room(
        new_id("r_"),
        "direct",
        "",
        ada.id,
        now_ms(),
        (RoomMember(ada.id, "member"), RoomMember(bob.id, "member")),
    )
    await store.create_room(room)
    await push_token_store(store).register(PushToken("t_bob", bob.id, "s1", "fcm", "app", now_ms()))
    return room.id, ada, bob


def wire(room: str, sender: str, seq: int = 1) -> Message:
    return Message(id=f"m{seq}", room=room, seq=seq, sender=sender, cid=f"c{seq}", text="hi", ts=0)


async def test_busy_answers_are_retried_with_doubling_backoff_then_given_up(
    store: Store, make_user: MakeUser, mock_clock: trio.testing.MockClock
) -> None:
    room, ada, bob = await room_with_token(store, make_user)
    busy = Provider(*[Outcome.RETRY] * 4)
    push = PushDispatcher(store, Hub(), {"fcm": busy}, clock=now_ms, retries=3, backoff=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(push.serve)
        push.messages_stored(room, {ada.id, bob.id}, [wire(room, ada.id)])
        await busy.asked.wait()  # after the targets' read (real I/O): now virtual time
        while push.statistics().failed == 0:
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(0.5)
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(busy.asked_at, busy.asked_at[1:], strict=False)]
    assert [round(g) for g in gaps] == [1, 2, 4]
    stats = push.statistics()
    assert (stats.sent, stats.retried, stats.failed) == (0, 3, 1)


async def test_a_full_queue_drops_events_instead_of_blocking_the_room(
    store: Store, make_user: MakeUser
) -> None:
    room, ada, bob = await room_with_token(store, make_user)
    push = PushDispatcher(store, Hub(), {"fcm": Provider()}, clock=now_ms, queue_size=2)
    for seq in range(1, 6):  # nobody serves the queue: the room must not wait
        push.messages_stored(room, {ada.id, bob.id}, [wire(room, ada.id, seq)])
    assert (push.statistics().queued, push.statistics().dropped) == (2, 3)


class Broken:
    provider = "fcm"

    async def send(self, token: str, m: PushMessage, *, app_id: str) -> Result:
        raise RuntimeError("unusable key")


async def test_a_provider_that_raises_fails_that_push_and_the_dispatcher_goes_on(
    store: Store, make_user: MakeUser
) -> None:
    room, ada, bob = await room_with_token(store, make_user)
    senders: dict[str, Sender] = {"fcm": Broken()}
    push = PushDispatcher(store, Hub(), senders, clock=now_ms)
    async with trio.open_nursery() as nursery:
        await nursery.start(push.serve)
        push.messages_stored(room, {ada.id, bob.id}, [wire(room, ada.id)])
        with trio.fail_after(5):
            while push.statistics().failed == 0:  # noqa: ASYNC110  (the store's real I/O)
                await trio.sleep(0.01)
        working = Provider()
        senders["fcm"] = working
        push.messages_stored(room, {ada.id, bob.id}, [wire(room, ada.id, 2)])
        with trio.fail_after(5):
            await working.asked.wait()
        nursery.cancel_scope.cancel()
