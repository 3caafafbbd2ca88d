"""Group management over real HTTP and sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from protocol.client import ServerError, open_client
from protocol.frames import MsgNew, Send, SendData
from protocol.frames_presence import TypingData, TypingStart
from realtime_server.node import Node
from tests.e2e.helpers import Account, auth, create_group, register
from tests.rich.live import assert_no_push_of, next_of, system_events
from tests.rich.test_media import png, upload


async def group(http: httpx.AsyncClient, room: str, who: Account) -> dict:
    r = await http.get(f"/rooms/{room}/group", headers=auth(who))
    assert r.status_code == 200, r.text
    return dict(r.json()["group"])


def roles(g: dict) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in g["members"]}


async def test_admins_manage_the_group_and_every_change_is_a_system_message(
    node: Node, http: httpx.AsyncClient
) -> None:
    owner, bob, cid, dan = [await register(http) for _ in range(4)]
    room = await create_group(http, owner, bob)
    async with open_client(node.ws_url, owner.access_token) as watcher:
        h = auth(owner)
        r = await http.post(
            f"/rooms/{room}/members", json={"user_ids": [cid.id, dan.id]}, headers=h
        )
        assert r.status_code == 200, r.text
        assert roles(r.json()["group"]) == {
            owner.id: "owner",
            bob.id: "member",
            cid.id: "member",
            dan.id: "member",
        }
        r = await http.post(f"/rooms/{room}/members/{bob.id}/promote", headers=h)
        assert roles(r.json()["group"])[bob.id] == "admin"
        # The new admin manages plain members.
        r = await http.delete(f"/rooms/{room}/members/{cid.id}", headers=auth(bob))
        assert r.status_code == 200 and cid.id not in roles(r.json()["group"])
        r = await http.post(f"/rooms/{room}/leave", headers=auth(dan))
        assert r.status_code == 204
        avatar = (await upload(http, bob, png(64, 64), ctype="image/png")).json()["media"]["id"]
        r = await http.patch(
            f"/rooms/{room}/group",
            json={"name": "Climbers", "description": "Sundays at 9", "avatar_media_id": avatar},
            headers=auth(bob),
        )
        assert r.status_code == 200, r.text
        g = r.json()["group"]
        assert (g["name"], g["description"], g["avatar_media_id"]) == (
            "Climbers",
            "Sundays at 9",
            avatar,
        )
        r = await http.post(f"/rooms/{room}/members/{bob.id}/demote", headers=h)
        assert roles(r.json()["group"])[bob.id] == "member"

        events = [json.loads(t) for t in await system_events(watcher, 8)]
    assert [e["ev"] for e in events] == [
        "members.added",
        "member.promoted",
        "member.removed",
        "member.left",
        "group.renamed",
        "group.description",
        "group.avatar",
        "member.demoted",
    ]
    assert events[0] == {"ev": "members.added", "by": owner.id, "users": [cid.id, dan.id]}
    assert events[2] == {"ev": "member.removed", "by": bob.id, "user": cid.id}
    # The stored history holds them too, as kind "system" from sender "system".
    page = (await http.get(f"/rooms/{room}/messages", headers=h)).json()["messages"]
    assert [m["kind"] for m in page] == ["system"] * 8
    assert {m["sender"] for m in page} == {"system"}
    # Members of the room may read the avatar; it was private to bob before.
    assert (await http.get(f"/media/{avatar}", headers=h)).status_code == 200


async def test_non_admins_cannot_manage_and_nothing_changes(
    node: Node, http: httpx.AsyncClient
) -> None:
    owner, bob, cid, eve = [await register(http) for _ in range(4)]
    room = await create_group(http, owner, bob, cid, name="Original")
    before = await group(http, room, owner)
    b = auth(bob)
    attempts = [
        http.post(f"/rooms/{room}/members", json={"user_ids": [eve.id]}, headers=b),
        http.delete(f"/rooms/{room}/members/{cid.id}", headers=b),
        http.post(f"/rooms/{room}/members/{cid.id}/promote", headers=b),
        http.post(f"/rooms/{room}/members/{bob.id}/promote", headers=b),
        http.patch(f"/rooms/{room}/group", json={"name": "Hijacked"}, headers=b),
        http.patch(f"/rooms/{room}/group", json={"description": "spam"}, headers=b),
    ]
    for attempt in attempts:
        r = await attempt
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    # An outsider cannot even see the group exists.
    r = await http.post(f"/rooms/{room}/members", json={"user_ids": [eve.id]}, headers=auth(eve))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert await group(http, room, owner) == before
    page = (await http.get(f"/rooms/{room}/messages", headers=auth(owner))).json()["messages"]
    assert page == []  # no system message for a refused change


async def test_the_owner_cannot_be_removed_demoted_or_leave(
    node: Node, http: httpx.AsyncClient
) -> None:
    owner, bob, cid = await register(http), await register(http), await register(http)
    room = await create_group(http, owner, bob, cid)
    await http.post(f"/rooms/{room}/members/{bob.id}/promote", headers=auth(owner))
    await http.post(f"/rooms/{room}/members/{cid.id}/promote", headers=auth(owner))
    before = await group(http, room, owner)
    cases = [
        (http.delete(f"/rooms/{room}/members/{owner.id}", headers=auth(bob)), "owner"),
        (http.post(f"/rooms/{room}/members/{owner.id}/demote", headers=auth(bob)), "owner"),
        (http.delete(f"/rooms/{room}/members/{owner.id}", headers=auth(owner)), "owner"),
        (http.post(f"/rooms/{room}/leave", headers=auth(owner)), "owner"),
        # Admins do not act on each other: only the owner does.
        (http.delete(f"/rooms/{room}/members/{cid.id}", headers=auth(bob)), "admin"),
        (http.post(f"/rooms/{room}/members/{cid.id}/demote", headers=auth(bob)), "admin"),
    ]
    for attempt, about in cases:
        r = await attempt
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        assert about in r.json()["error"]["message"]
    assert await group(http, room, owner) == before


async def test_bad_group_requests_get_clear_codes(node: Node, http: httpx.AsyncClient) -> None:
    owner, bob = await register(http), await register(http)
    room = await create_group(http, owner, bob)
    h = auth(owner)
    r = await http.post(f"/rooms/{room}/members", json={"user_ids": ["u_nobody"]}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["field"] == "user_ids"
    r = await http.post(f"/rooms/{room}/members/{bob.id}/demote", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = await http.delete(f"/rooms/{room}/members/u_nobody", headers=h)
    assert r.status_code == 404
    r = await http.patch(f"/rooms/{room}/group", json={}, headers=h)
    assert r.status_code == 400
    r = await http.patch(f"/rooms/{room}/group", json={"avatar_media_id": "f_nope"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["field"] == "avatar_media_id"
    direct = await http.post("/rooms", json={"kind": "direct", "user_id": bob.id}, headers=h)
    r = await http.post(f"/rooms/{direct.json()['room']['id']}/leave", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    assert len((await group(http, room, owner))["members"]) == 2


async def test_a_nul_in_a_name_or_description_is_invalid_on_every_backend(
    node: Node, http: httpx.AsyncClient
) -> None:
    """Issue 12: SQLite stored a NUL, PostgreSQL answered 503; both now say 400 invalid."""
    owner, bob = await register(http), await register(http)
    room = await create_group(http, owner, bob)
    before = await group(http, room, owner)
    h = auth(owner)
    for body in ({"name": "x\x00y"}, {"name": "\x00"}, {"description": "a\x00b"}):
        r = await http.patch(f"/rooms/{room}/group", json=body, headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid", (body, r.text)
    r = await http.post(
        "/rooms", json={"kind": "group", "name": "n\x00", "members": [bob.id]}, headers=h
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid", r.text
    r = await http.patch("/me/profile", json={"display_name": "Ada\x00"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid", r.text
    assert await group(http, room, owner) == before
    # Names with a visible character and no NUL still pass, spaces included.
    r = await http.patch(f"/rooms/{room}/group", json={"name": " Le café ☕ "}, headers=h)
    assert r.status_code == 200 and r.json()["group"]["name"] == " Le café ☕ "


async def test_a_removed_member_stops_receiving_immediately(
    node: Node, http: httpx.AsyncClient
) -> None:
    owner, bob, cid = await register(http), await register(http), await register(http)
    room = await create_group(http, owner, bob, cid)
    async with (
        open_client(node.ws_url, owner.access_token) as o,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cid.access_token) as c,
    ):
        await o.send_message(room, "before")  # the room actor is live with bob in it
        assert (await next_of(b, MsgNew)).d.text == "before"
        r = await http.delete(f"/rooms/{room}/members/{bob.id}", headers=auth(owner))
        assert r.status_code == 200
        await o.send_message(room, "after")
        # cid, still a member, gets the removal notice and the message...
        assert (await next_of(c, MsgNew)).d.text == "before"
        seen = [(await next_of(c, MsgNew)).d for _ in range(2)]
        assert [m.kind for m in seen] == ["system", "text"]
        # ...bob hears of his removal, then nothing more, and may not post or type.
        notice = await next_of(b, MsgNew)
        assert notice.d.kind == "system" and json.loads(notice.d.text)["user"] == bob.id
        await assert_no_push_of(b, MsgNew, 0.3)
        with pytest.raises(ServerError) as err:
            await b.request(Send(id=0, d=SendData(room=room, cid=uuid.uuid4().hex, text="hi")))
        assert err.value.code == "not_member"
        with pytest.raises(ServerError) as err:
            await b.request(TypingStart(id=0, d=TypingData(room=room)))
        assert err.value.code == "not_member"


async def test_an_added_member_receives_at_once(node: Node, http: httpx.AsyncClient) -> None:
    owner, bob = await register(http), await register(http)
    room = await create_group(http, owner)
    async with (
        open_client(node.ws_url, owner.access_token) as o,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        await o.send_message(room, "before bob")  # the room actor is live without bob
        r = await http.post(
            f"/rooms/{room}/members", json={"user_ids": [bob.id]}, headers=auth(owner)
        )
        assert r.status_code == 200
        await o.send_message(room, "welcome bob")
        first, second = (await next_of(b, MsgNew)).d, (await next_of(b, MsgNew)).d
        assert json.loads(first.text) == {"ev": "members.added", "by": owner.id, "users": [bob.id]}
        assert second.text == "welcome bob"
        await b.send_message(room, "thanks")
