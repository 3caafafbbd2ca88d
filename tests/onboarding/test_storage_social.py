"""Contacts, blocks, discovery and search in storage, on both backends."""

from __future__ import annotations

import hashlib

import pytest
import trio

from storage.base import Store, User, new_id, now_ms
from storage.contacts import (
    blocked_either_way,
    contact_ids,
    contacts_store,
    group_add_refusals,
    is_blocked,
)
from storage.errors import NotFound
from storage.onboarding import ProfileChanges, onboarding_store

TIMEOUT = 20


async def make_user(store: Store, username: str, display_name: str | None = None) -> User:
    user = User(
        id=new_id("u_"),
        email=f"{username}@example.com",
        username=username,
        display_name=display_name or username.title(),
        password_hash="x",
        created_at=now_ms(),
    )
    await store.create_user(user)
    return user


def phone_hash(phone: str) -> str:
    return hashlib.sha256(phone.encode()).hexdigest()


async def test_blocking_is_one_way_but_blocked_either_way_sees_both(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob, cy = [await make_user(store, n) for n in ("ada", "bob", "cy")]
        social = contacts_store(store)
        assert await social.block(ada.id, bob.id, now_ms()) is True
        assert await social.block(ada.id, bob.id, now_ms()) is False  # idempotent
        assert await is_blocked(store, ada.id, bob.id)
        assert not await is_blocked(store, bob.id, ada.id)
        assert await blocked_either_way(store, ada.id, bob.id)
        assert await blocked_either_way(store, bob.id, ada.id)
        assert not await blocked_either_way(store, ada.id, cy.id)
        assert await social.blocked_among(bob.id, [ada.id, cy.id]) == {ada.id}
        assert [c.id for c in await social.list_blocked(ada.id, limit=10, offset=0)] == [bob.id]
        assert await social.unblock(ada.id, bob.id) is True
        assert await social.unblock(ada.id, bob.id) is False
        assert not await blocked_either_way(store, ada.id, bob.id)


async def test_unknown_users_are_never_blocked_and_cannot_be_blocked(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        ada = await make_user(store, "ada")
        assert not await is_blocked(store, "u_nobody", ada.id)
        assert not await blocked_either_way(store, "u_nobody", "u_none")
        with pytest.raises(NotFound):
            await contacts_store(store).block(ada.id, "u_nobody", now_ms())


async def test_contacts_are_added_renamed_listed_by_name_and_removed(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        ada, bob, cy = [await make_user(store, n) for n in ("ada", "bob", "cy")]
        social = contacts_store(store)
        assert await social.add_contact(ada.id, cy.id, "", now_ms()) is True
        assert await social.add_contact(ada.id, bob.id, "Zed", now_ms()) is True
        assert await social.add_contact(ada.id, bob.id, "Aaron", now_ms()) is False  # renamed
        listed = await social.list_contacts(ada.id, limit=10, offset=0)
        assert [(e.user.id, e.name) for e in listed] == [(bob.id, "Aaron"), (cy.id, "")]
        assert set(await contact_ids(store, ada.id)) == {bob.id, cy.id}
        assert await social.is_contact(ada.id, bob.id) and not await social.is_contact(
            bob.id, ada.id
        )
        # Whether the listed person has ME in their contacts (for photo privacy).
        await social.add_contact(cy.id, ada.id, "", now_ms())
        listed = await social.list_contacts(ada.id, limit=10, offset=0)
        assert [e.user.knows_viewer for e in listed] == [False, True]
        assert await social.remove_contact(ada.id, bob.id) is True
        assert await social.remove_contact(ada.id, bob.id) is False
        assert await contact_ids(store, ada.id) == [cy.id]
        with pytest.raises(NotFound):
            await social.add_contact(ada.id, "u_nobody", "", now_ms())


async def test_search_matches_username_prefix_or_display_name_and_hides_blockers(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        me = await make_user(store, "viewer")
        ada = await make_user(store, "ada_l", "Ada Lovelace")
        adam = await make_user(store, "adam", "Adam Smith")
        lady = await make_user(store, "lady", "The Lady ADA")
        eve = await make_user(store, "eve_ada", "Eve")
        social = contacts_store(store)
        found = await social.search_users(me.id, "ada", limit=10, offset=0)
        # Username prefixes first (in username order), then display names
        # containing the query in any ASCII case; "eve_ada" is neither.
        assert [c.id for c in found] == [ada.id, adam.id, lady.id]
        assert eve.id not in {c.id for c in found}
        page = await social.search_users(me.id, "ada", limit=2, offset=1)
        assert [c.id for c in page] == [adam.id, lady.id]
        # Someone who blocked me disappears from my results; whom I blocked stays.
        await social.block(adam.id, me.id, now_ms())
        await social.block(me.id, lady.id, now_ms())
        found = await social.search_users(me.id, "ada", limit=10, offset=0)
        assert adam.id not in {c.id for c in found} and lady.id in {c.id for c in found}
        # LIKE wildcards in the query are literal.
        assert await social.search_users(me.id, "%", limit=10, offset=0) == []
        assert await social.search_users(me.id, "a_a", limit=10, offset=0) == []


async def test_phone_discovery_matches_only_findable_users_by_hash(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        me = await make_user(store, "viewer")
        accounts = onboarding_store(store)
        complete = await accounts.create_phone_user(
            new_id("u_"), "+33612345678", phone_hash("+33612345678"), now_ms()
        )
        await accounts.complete_profile(complete.id, display_name="Zoe", username="zoe", email=None)
        incomplete = await accounts.create_phone_user(
            new_id("u_"), "+33612345679", phone_hash("+33612345679"), now_ms()
        )
        social = contacts_store(store)
        hashes = [phone_hash(p) for p in ("+33612345678", "+33612345679", "+33600000000")]
        found = await social.match_phone_hashes(me.id, hashes)
        assert {h: c.id for h, c in found.items()} == {hashes[0]: complete.id}
        assert incomplete.id not in {c.id for c in found.values()}
        await social.block(complete.id, me.id, now_ms())
        assert await social.match_phone_hashes(me.id, hashes) == {}


async def test_group_add_refusals_follow_each_person_s_groups_setting(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        adder, anyone, friends, private, blocker = [
            await make_user(store, n) for n in ("adder", "anyone", "friends", "private", "blocker")
        ]
        accounts = onboarding_store(store)
        await accounts.update_profile(friends.id, ProfileChanges(groups_privacy="contacts"))
        await accounts.update_profile(private.id, ProfileChanges(groups_privacy="nobody"))
        social = contacts_store(store)
        await social.block(blocker.id, adder.id, now_ms())
        everyone = [anyone.id, friends.id, private.id, blocker.id, adder.id]
        refused = await group_add_refusals(store, adder.id, everyone)
        assert set(refused) == {friends.id, private.id, blocker.id}
        # "contacts" means people in the refuser's own contacts.
        await social.add_contact(friends.id, adder.id, "", now_ms())
        refused = await group_add_refusals(store, adder.id, everyone)
        assert set(refused) == {private.id, blocker.id}
        assert await group_add_refusals(store, adder.id, []) == []
