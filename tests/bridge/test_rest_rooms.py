"""Rooms: direct rooms are idempotent per pair, groups check their members,
and a room you are not in does not exist as far as you can tell."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from tests.bridge.rest_client import Rest


async def test_a_direct_room_is_created_once_per_pair(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        bob = await rest.register("bob")
        first = await rest.http.post(
            "/rooms", json={"kind": "direct", "user_id": bob.id}, headers=ada.headers
        )
        again = await rest.http.post(
            "/rooms", json={"kind": "direct", "user_id": bob.id}, headers=ada.headers
        )
        from_bob = await rest.http.post(
            "/rooms", json={"kind": "direct", "user_id": ada.id}, headers=bob.headers
        )
    assert first.status_code == 201, first.text
    assert (again.status_code, from_bob.status_code) == (200, 200)
    room = first.json()["room"]
    assert again.json()["room"]["id"] == from_bob.json()["room"]["id"] == room["id"]
    assert room["id"].startswith("r_")
    assert room["kind"] == "direct"
    assert room["created_by"] == ada.id
    assert sorted(m["user_id"] for m in room["members"]) == sorted([ada.id, bob.id])
    assert set(room) == {"id", "kind", "name", "created_by", "created_at", "members"}


async def test_concurrent_requests_for_one_pair_get_one_room(rest: Rest) -> None:
    ids: list[str] = []
    with trio.fail_after(10):
        ada = await rest.register("ada")
        bob = await rest.register("bob")

        async def open_dm() -> None:
            response = await rest.http.post(
                "/rooms", json={"kind": "direct", "user_id": bob.id}, headers=ada.headers
            )
            assert response.status_code in (200, 201), response.text
            ids.append(response.json()["room"]["id"])

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(open_dm)
    assert len(set(ids)) == 1


async def test_you_cannot_open_a_direct_room_with_yourself(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        response = await rest.http.post(
            "/rooms", json={"kind": "direct", "user_id": ada.id}, headers=ada.headers
        )
    rest.assert_error(response, 400, "invalid", field="user_id")


async def test_a_direct_room_with_an_unknown_user_is_refused(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        response = await rest.http.post(
            "/rooms", json={"kind": "direct", "user_id": "u_nobody"}, headers=ada.headers
        )
    rest.assert_error(response, 400, "invalid", field="user_id")


async def test_the_creator_owns_a_group(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        bob = await rest.register("bob")
        cy = await rest.register("cyd")
        response = await rest.http.post(
            "/rooms",
            # Duplicates and the creator in the list are tolerated, not doubled.
            json={"kind": "group", "name": "Team", "members": [bob.id, cy.id, bob.id, ada.id]},
            headers=ada.headers,
        )
    assert response.status_code == 201, response.text
    room = response.json()["room"]
    assert (room["kind"], room["name"], room["created_by"]) == ("group", "Team", ada.id)
    roles = {m["user_id"]: m["role"] for m in room["members"]}
    assert roles == {ada.id: "owner", bob.id: "member", cy.id: "member"}
    assert len(room["members"]) == 3


async def test_a_group_with_unknown_members_is_refused(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        bob = await rest.register("bob")
        response = await rest.http.post(
            "/rooms",
            json={"kind": "group", "name": "g", "members": [bob.id, "u_ghost"]},
            headers=ada.headers,
        )
        rest.assert_error(response, 400, "invalid", field="members")
        rooms = await rest.http.get("/rooms", headers=ada.headers)
    assert rooms.json()["rooms"] == []  # nothing half-created


async def test_room_requests_outside_the_rules_are_refused(rest: Rest) -> None:
    cases = [
        ({"kind": "group", "name": ""}, "name"),
        ({"kind": "group", "name": "   "}, "name"),
        ({"kind": "group", "name": "x" * 101}, "name"),
        ({"kind": "group", "name": "g", "members": [f"u_{i}" for i in range(257)]}, "members"),
        ({"kind": "group", "name": "g", "members": "u_1"}, "members"),
        ({"kind": "group"}, "name"),
        ({"kind": "channel", "name": "g"}, "kind"),
        ({"name": "g"}, "kind"),
        ({"kind": "direct"}, "user_id"),
        ({"kind": "direct", "user_id": 7}, "user_id"),
    ]
    with trio.fail_after(10):
        ada = await rest.register("ada")
        for body, field in cases:
            response = await rest.http.post("/rooms", json=body, headers=ada.headers)
            rest.assert_error(response, 400, "invalid", field=field)


async def test_a_member_can_read_the_room(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        bob = await rest.register("bob")
        room_id = await rest.create_group(ada, bob, name="Team")
        response = await rest.http.get(f"/rooms/{room_id}", headers=bob.headers)
    assert response.status_code == 200
    assert response.json()["room"]["name"] == "Team"


async def test_a_room_you_are_not_in_looks_like_no_room_at_all(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        eve = await rest.register("eve")
        room_id = await rest.create_group(ada, name="Private")
        for path in ("", "/messages"):
            theirs = await rest.http.get(f"/rooms/{room_id}{path}", headers=eve.headers)
            nowhere = await rest.http.get(f"/rooms/r_does_not_exist{path}", headers=eve.headers)
            assert rest.assert_error(theirs, 404, "not_found") == rest.assert_error(
                nowhere, 404, "not_found"
            )
        # POST .../read needs the room actor: tests/messaging/test_rest_read.py covers its 404.


async def test_sql_looking_room_names_are_stored_verbatim(rest: Rest) -> None:
    name = "x'; DELETE FROM rooms; --"
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada, name=name)
        response = await rest.http.get(f"/rooms/{room_id}", headers=ada.headers)
    assert response.json()["room"]["name"] == name
