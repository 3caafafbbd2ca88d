"""The push token store's own rules, on both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from storage.base import Room, RoomMember, Store, User, new_id, now_ms
from storage.chatlist import SettingsChange, chatlist_store
from storage.push_tokens import PushToken, push_token_store

MakeUser = Callable[[str], Awaitable[User]]


def token(user: User, value: str, session: str = "s1", provider: str = "fcm") -> PushToken:
    return PushToken(value, user.id, session, provider, "com.example.chat", now_ms())


async def test_a_token_moves_to_whoever_registers_it_last_and_goes_with_its_session(
    store: Store, make_user: MakeUser
) -> None:
    ada, bob = await make_user("ada"), await make_user("bob")
    push = push_token_store(store)
    await push.register(token(ada, "t1", "s_ada"))
    await push.register(token(ada, "t2", "s_ada2", "apns"))
    await push.register(token(bob, "t1", "s_bob"))  # same device, other account now
    assert [t.token for t in await push.tokens_of(ada.id)] == ["t2"]
    assert [(t.token, t.session_id) for t in await push.tokens_of(bob.id)] == [("t1", "s_bob")]

    assert not await push.unregister(ada.id, "t1")  # not hers any more
    assert await push.remove_sessions(["s_ada2"]) == 1
    assert await push.tokens_of(ada.id) == []
    assert await push.remove_dead(["t1", "t_unknown"]) == 1
    assert await push.tokens_of(bob.id) == []


async def test_targets_skip_who_muted_the_room_and_carry_preview_and_unread_badge(
    store: Store, make_user: MakeUser
) -> None:
    ada, bob, cy = await make_user("ada"), await make_user("bob"), await make_user("cy")
    room = Room(
        new_id("r_"),
        "group",
        "g",
        ada.id,
        now_ms(),
        members=tuple(RoomMember(u.id, "member") for u in (ada, bob, cy)),
    )
    await store.create_room(room)
    await store.db.execute("UPDATE rooms SET last_seq = 7 WHERE id = ?", (room.id,))
    await store.set_read_seq(room.id, bob.id, 4)
    push = push_token_store(store)
    for user in (bob, cy):
        await push.register(token(user, f"t_{user.username}", f"s_{user.username}"))
    now = now_ms()
    await chatlist_store(store).update(
        cy.id, room.id, SettingsChange(muted_until=now + 60_000), now, max_pinned=5
    )
    await push.set_show_preview(bob.id, False, now)
    assert not await push.show_preview(bob.id) and await push.show_preview(cy.id)

    found = await push.targets([bob.id, cy.id, bob.id], room_id=room.id, now=now)
    assert [(t.user_id, t.token, t.show_preview, t.badge) for t in found] == [
        (bob.id, "t_bob", False, 3)
    ]
    # The mute ran out: cy hears again; without a room nothing is muted.
    later = await push.targets([cy.id], room_id=room.id, now=now + 60_000)
    assert [(t.user_id, t.show_preview, t.badge) for t in later] == [(cy.id, True, 7)]
    assert len(await push.targets([bob.id, cy.id], room_id=None, now=now)) == 2
