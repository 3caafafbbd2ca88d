"""Items 6 and 7: contacts, phone discovery, blocks, and user search."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from protocol.client import ServerError, open_client
from protocol.frames_calls import CallStart, CallStartData
from protocol.frames_presence import PresenceGet, PresenceGetData
from realtime_server.node import Node
from tests.onboarding.conftest import Api, Person, Start, assert_error
from tests.onboarding.outside import Outside

FR, FR2, FR3, UK = "+33612345678", "+33612345600", "+33612345601", "+447911123456"


def hashed(phone: str) -> str:
    return hashlib.sha256(phone.encode()).hexdigest()


async def direct_room(api: Api, me: Person, other: Person) -> str:
    r = await api.http.post(
        "/rooms", json={"kind": "direct", "user_id": other.id}, headers=me.headers
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["room"]["id"])


async def test_contacts_are_added_renamed_listed_and_removed(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    cy = await api.phone_user(FR3, "cyril")
    r = await api.http.post("/contacts", json={"user_id": bob.id}, headers=ada.headers)
    assert r.status_code == 201, r.text
    assert r.json()["contact"]["user"]["username"] == "bob"
    r = await api.http.post(
        "/contacts", json={"user_id": bob.id, "name": "Bobby"}, headers=ada.headers
    )
    assert r.status_code == 200 and r.json()["contact"]["name"] == "Bobby"
    await api.http.post("/contacts", json={"user_id": cy.id}, headers=ada.headers)
    r = await api.http.get("/contacts", params={"limit": 1}, headers=ada.headers)
    assert [c["user"]["id"] for c in r.json()["contacts"]] == [bob.id]
    assert r.json()["has_more"] is True
    r = await api.http.get("/contacts", params={"limit": 1, "offset": 1}, headers=ada.headers)
    assert [c["user"]["id"] for c in r.json()["contacts"]] == [cy.id]
    assert r.json()["has_more"] is False
    r = await api.http.delete(f"/contacts/{bob.id}", headers=ada.headers)
    assert r.status_code == 204
    assert_error(
        await api.http.delete(f"/contacts/{bob.id}", headers=ada.headers), 404, "not_found"
    )
    r = await api.http.get("/contacts", headers=ada.headers)
    assert [c["user"]["id"] for c in r.json()["contacts"]] == [cy.id]
    # Contacts are one-way: bob's list is untouched by ada's.
    r = await api.http.get("/contacts", headers=bob.headers)
    assert r.json()["contacts"] == []


async def test_bad_contacts_are_refused(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await api.http.post("/contacts", json={"user_id": "u_nobody"}, headers=ada.headers)
    assert_error(r, 404, "not_found")
    r = await api.http.post("/contacts", json={"user_id": ada.id}, headers=ada.headers)
    assert_error(r, 400, "invalid", "user_id")
    r = await api.http.post(
        "/contacts", json={"user_id": ada.id, "name": "x" * 65}, headers=ada.headers
    )
    assert_error(r, 400, "invalid", "name")
    assert (await api.http.get("/contacts", headers=ada.headers)).json()["contacts"] == []


async def test_discovery_tells_which_hashed_numbers_are_users(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    await api.phone_sign_in(FR3)  # signed up, profile not completed: not findable yet
    book = [hashed(FR2), hashed(FR3), hashed(UK), hashed(FR)]
    r = await api.http.post("/contacts/discover", json={"hashes": book}, headers=ada.headers)
    assert r.status_code == 200, r.text
    matches = r.json()["matches"]
    assert [(m["hash"], m["user"]["id"]) for m in matches] == [(hashed(FR2), bob.id)]
    assert "phone" not in matches[0]["user"]
    # Someone who blocked you is not discoverable by you.
    await api.http.post("/blocks", json={"user_id": ada.id}, headers=bob.headers)
    r = await api.http.post("/contacts/discover", json={"hashes": book}, headers=ada.headers)
    assert r.json()["matches"] == []


async def test_discovery_refuses_raw_numbers_and_too_many_hashes(start: Start, outside: Outside):
    async with start(discover_max_hashes=3) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            api = Api(http, outside)
            ada = await api.phone_user(FR, "ada")
            r = await http.post("/contacts/discover", json={"hashes": [FR2]}, headers=ada.headers)
            assert_error(r, 400, "invalid", "hashes")
            r = await http.post(
                "/contacts/discover",
                json={"hashes": [hashed(f"+3361234560{i}") for i in range(4)]},
                headers=ada.headers,
            )
            assert_error(r, 400, "invalid", "hashes")


async def test_discovery_is_rate_limited_per_user_and_a_refusal_reveals_nothing(
    start: Start, outside: Outside
) -> None:
    async with start(discover_per_day=5) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            api = Api(http, outside)
            ada = await api.phone_user(FR, "ada")
            await api.phone_user(FR2, "bob")
            first = [hashed(f"+3361234560{i}") for i in range(3, 7)]
            r = await http.post("/contacts/discover", json={"hashes": first}, headers=ada.headers)
            assert r.status_code == 200
            r = await http.post(
                "/contacts/discover",
                json={"hashes": [hashed(FR2), hashed(UK)]},
                headers=ada.headers,
            )
            assert_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) > 3600
            assert "matches" not in r.json()
            # The refused request spent nothing: one more hash still fits the budget.
            r = await http.post(
                "/contacts/discover", json={"hashes": [hashed(FR2)]}, headers=ada.headers
            )
            assert r.status_code == 200 and len(r.json()["matches"]) == 1


async def test_a_block_stops_messages_in_the_direct_room_at_once_both_ways(
    onode: Node, api: Api
) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    room = await direct_room(api, ada, bob)
    async with (
        open_client(onode.ws_url, ada.access_token) as a,
        open_client(onode.ws_url, bob.access_token) as b,
    ):
        await a.send_message(room, "hi bob")  # the room actor is live
        r = await api.http.post("/blocks", json={"user_id": bob.id}, headers=ada.headers)
        assert r.status_code == 204
        for client in (a, b):
            with pytest.raises(ServerError) as refused:
                await client.send_message(room, "still there?")
            assert refused.value.code == "forbidden"
        r = await api.http.delete(f"/blocks/{bob.id}", headers=ada.headers)
        assert r.status_code == 204
        assert (await b.send_message(room, "back")).text == "back"


async def test_a_block_stops_calls_and_presence_both_ways(onode: Node, api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    room = await direct_room(api, ada, bob)

    async def presence_seen(client: object, user_id: str) -> list[str]:
        reply = await client.request(  # type: ignore[attr-defined]
            PresenceGet(id=0, d=PresenceGetData(users=[user_id], sub=False))
        )
        return [state.user for state in reply.d.users]

    async with (
        open_client(onode.ws_url, ada.access_token) as a,
        open_client(onode.ws_url, bob.access_token) as b,
    ):
        assert await presence_seen(a, bob.id) == [bob.id]  # they share a room
        await api.http.post("/blocks", json={"user_id": ada.id}, headers=bob.headers)
        for client in (a, b):
            with pytest.raises(ServerError) as refused:
                await client.request(CallStart(id=0, d=CallStartData(room=room)))
            assert refused.value.code == "forbidden"
        assert await presence_seen(a, bob.id) == []
        assert await presence_seen(b, ada.id) == []


async def test_a_block_holds_for_a_room_that_starts_after_it(onode: Node, api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    room = await direct_room(api, ada, bob)
    await api.http.post("/blocks", json={"user_id": ada.id}, headers=bob.headers)
    async with open_client(onode.ws_url, ada.access_token) as a:
        with pytest.raises(ServerError) as refused:
            await a.send_message(room, "hello?")
        assert refused.value.code == "forbidden"


async def test_blocks_are_listed_and_bad_blocks_refused(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    assert (
        await api.http.post("/blocks", json={"user_id": bob.id}, headers=ada.headers)
    ).status_code == 204
    assert (
        await api.http.post("/blocks", json={"user_id": bob.id}, headers=ada.headers)
    ).status_code == 204
    r = await api.http.get("/blocks", headers=ada.headers)
    assert [u["id"] for u in r.json()["users"]] == [bob.id]
    assert_error(
        await api.http.post("/blocks", json={"user_id": ada.id}, headers=ada.headers),
        400,
        "invalid",
        "user_id",
    )
    assert_error(
        await api.http.post("/blocks", json={"user_id": "u_nobody"}, headers=ada.headers),
        404,
        "not_found",
    )
    assert_error(await api.http.delete("/blocks/u_nobody", headers=ada.headers), 404, "not_found")
    # A block hides photo and bio between the two, both ways.
    await api.http.patch("/me/profile", json={"bio": "secret bio"}, headers=bob.headers)
    r = await api.http.get(f"/users/{bob.id}/profile", headers=ada.headers)
    assert r.json()["blocked_by_me"] is True and "bio" not in r.json()
    r = await api.http.get(f"/users/{ada.id}/profile", headers=bob.headers)
    assert "blocked_by_me" not in r.json()


async def test_search_by_username_or_display_name_hides_people_who_blocked_me(api: Api) -> None:
    me = await api.phone_user(FR, "viewer")
    ada = await api.phone_user(FR2, "ada_l", "Ada Lovelace")
    adam = await api.phone_user(FR3, "adam", "Adam Smith")
    lady = await api.phone_user(UK, "lady", "The Lady ADA")
    r = await api.http.get("/users/search", params={"q": "ADA"}, headers=me.headers)
    assert r.status_code == 200, r.text
    assert [u["id"] for u in r.json()["users"]] == [ada.id, adam.id, lady.id]
    r = await api.http.get("/users/search", params={"q": "ada", "limit": 2}, headers=me.headers)
    assert [u["id"] for u in r.json()["users"]] == [ada.id, adam.id] and r.json()["has_more"]
    r = await api.http.get(
        "/users/search", params={"q": "ada", "limit": 2, "offset": 2}, headers=me.headers
    )
    assert [u["id"] for u in r.json()["users"]] == [lady.id] and not r.json()["has_more"]
    await api.http.post("/blocks", json={"user_id": me.id}, headers=adam.headers)
    r = await api.http.get("/users/search", params={"q": "ada"}, headers=me.headers)
    assert [u["id"] for u in r.json()["users"]] == [ada.id, lady.id]


async def test_search_input_is_checked_and_searches_are_rate_limited(
    start: Start, outside: Outside
) -> None:
    async with start(user_search_per_minute=3) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            api = Api(http, outside)
            me = await api.phone_user(FR, "viewer")
            for q in ("", " " * 3, "x" * 65):
                r = await http.get("/users/search", params={"q": q}, headers=me.headers)
                assert_error(r, 400, "invalid", "q")
            r = await http.get("/users/search", params={"q": "%_"}, headers=me.headers)
            assert r.json()["users"] == []  # wildcards are literal
            for _ in range(2):
                r = await http.get("/users/search", params={"q": "a"}, headers=me.headers)
                assert r.status_code == 200
            r = await http.get("/users/search", params={"q": "a"}, headers=me.headers)
            assert_error(r, 429, "rate_limited")
