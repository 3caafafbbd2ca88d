"""Group members and profiles, presence settings and media access, on both backends.

The REST tests cover these through the bridge; these pin the store's own
rules, which each backend used to implement separately.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from storage.base import Room, Store, User, new_id, now_ms
from storage.errors import Conflict, NotFound
from storage.groups import GroupProfile, group_store
from storage.media import MediaInfo, attach_media, media_store, media_visible_to
from storage.presence import PresenceSettings, presence_store

TIMEOUT = 15
# Shapes of the builder fixtures in tests/storage/conftest.py.
MakeUser = Callable[[str], Awaitable[User]]
MakeRoom = Callable[..., Awaitable[Room]]


def upload(owner: User, media_id: str | None = None) -> MediaInfo:
    return MediaInfo(
        id=media_id or new_id("f_"),
        owner_id=owner.id,
        content_type="image/png",
        size=3,
        filename="a.png",
        blob_key=new_id("b_"),
        thumb_key=None,
        width=1,
        height=1,
        created_at=now_ms(),
    )


async def test_adding_members_reports_only_the_new_ones_in_the_order_asked(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob, cy, dee = [await make_user(n) for n in ("ada", "bob", "cy", "dee")]
        room = await make_room(ada, cy)
        groups = group_store(store)
        added = await groups.add_members(room.id, [dee.id, cy.id, bob.id, dee.id], 5)
        assert added == [dee.id, bob.id]
        assert await groups.add_members(room.id, [bob.id], 6) == []
        assert await groups.add_members(room.id, [], 6) == []
        stored = await store.get_room(room.id)
        assert stored is not None
        assert {(m.user_id, m.role) for m in stored.members} == {
            (ada.id, "owner"),
            (bob.id, "member"),
            (cy.id, "member"),
            (dee.id, "member"),
        }


async def test_adding_an_unknown_user_adds_nobody(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob = await make_user("ada"), await make_user("bob")
        room = await make_room(ada)
        with pytest.raises(NotFound):
            await group_store(store).add_members(room.id, [bob.id, "u_nobody"], 5)
        stored = await store.get_room(room.id)
        assert stored is not None and [m.user_id for m in stored.members] == [ada.id]


async def test_the_owner_is_never_removed_or_re_roled_and_roles_change_only_from_what_was_seen(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob, cy = [await make_user(n) for n in ("ada", "bob", "cy")]
        room = await make_room(ada, bob, cy)
        groups = group_store(store)
        assert not await groups.remove_member(room.id, ada.id)
        assert not await groups.set_role(room.id, ada.id, "member", was="owner")
        assert not await groups.set_role(room.id, bob.id, "member", was="admin")
        assert await groups.set_role(room.id, bob.id, "admin", was="member")
        assert not await groups.set_role(room.id, bob.id, "admin", was="member")
        assert await groups.remove_member(room.id, cy.id)
        assert not await groups.remove_member(room.id, cy.id)
        await groups.rename(room.id, "Climbers")
        stored = await store.get_room(room.id)
        assert stored is not None and stored.name == "Climbers"
        assert {(m.user_id, m.role) for m in stored.members} == {
            (ada.id, "owner"),
            (bob.id, "admin"),
        }


async def test_a_profile_change_leaves_the_fields_not_given(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        ada = await make_user("ada")
        room = await make_room(ada)
        groups = group_store(store)
        assert await groups.get_profile(room.id) == GroupProfile(room.id)
        avatar = upload(ada)
        await media_store(store).add_media(avatar)
        assert await groups.set_profile(room.id, avatar_media_id=avatar.id) == GroupProfile(
            room.id, "", avatar.id
        )
        described = await groups.set_profile(room.id, description="Sundays at 9")
        assert described == GroupProfile(room.id, "Sundays at 9", avatar.id)
        assert await groups.set_profile(room.id) == described
        assert await groups.get_profile(room.id) == described


async def test_presence_settings_default_until_set_and_keep_each_field(
    store: Store, make_user: MakeUser
) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob = await make_user("ada"), await make_user("bob")
        presence = presence_store(store)
        assert await presence.presence_settings([]) == {}
        assert await presence.presence_settings([ada.id, bob.id, ada.id]) == {
            ada.id: PresenceSettings(ada.id),
            bob.id: PresenceSettings(bob.id),
        }
        await presence.set_last_seen(ada.id, 100)
        await presence.set_visibility(ada.id, "contacts")
        await presence.set_visibility(bob.id, "nobody")
        await presence.set_last_seen(ada.id, 200)
        assert await presence.presence_settings([ada.id, bob.id, "u_nobody"]) == {
            ada.id: PresenceSettings(ada.id, "contacts", 200),
            bob.id: PresenceSettings(bob.id, "nobody", None),
            "u_nobody": PresenceSettings("u_nobody"),
        }


async def test_peers_and_member_rooms_come_from_room_membership(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob, cy, dee = [await make_user(n) for n in ("ada", "bob", "cy", "dee")]
        one = await make_room(ada, bob)
        two = await make_room(cy, ada, bob)
        elsewhere = await make_room(dee)
        presence = presence_store(store)
        assert await presence.room_peers(ada.id) == {bob.id, cy.id}
        assert await presence.room_peers(dee.id) == set()
        asked = [two.id, elsewhere.id, one.id, "r_nowhere", two.id]
        assert await presence.member_rooms(ada.id, asked) == {one.id, two.id}
        assert await presence.member_rooms(ada.id, []) == set()


async def test_an_upload_is_private_until_attached_to_a_room(
    store: Store, make_user: MakeUser, make_room: MakeRoom
) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob, eve = [await make_user(n) for n in ("ada", "bob", "eve")]
        room = await make_room(ada, bob)
        media = media_store(store)
        info = upload(ada)
        await media.add_media(info)
        assert await media.get_media(info.id) == info
        assert await media.get_media("f_nope") is None
        assert await media_visible_to(store, info.id, ada.id) == info
        assert await media_visible_to(store, info.id, bob.id) is None
        await attach_media(store, info.id, room.id)
        await attach_media(store, info.id, room.id)  # idempotent
        assert await media_visible_to(store, info.id, bob.id) == info
        assert await media_visible_to(store, info.id, eve.id) is None
        with pytest.raises(Conflict) as conflict:
            await media.add_media(upload(bob, info.id))
        assert conflict.value.field == "id"
