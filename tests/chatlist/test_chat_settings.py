"""Per-user chat settings (issue 18, items 1 and 5): mute, pin, archive, mark
unread, notification choice; on every device, against the node's clock."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from protocol.client import open_client
from protocol.frames import MsgNew
from protocol.frames_chatlist import ChatSettingsChanged
from realtime_server.node import Node
from tests.chatlist.conftest import ManualClock
from tests.e2e.helpers import Account, auth, create_group, login, register
from tests.messaging.helpers import next_of, receipt, send

HOUR = 3600 * 1000


async def _patch(http: httpx.AsyncClient, who: Account, room: str, **body: Any) -> httpx.Response:
    return await http.patch(f"/rooms/{room}/settings", json=body, headers=auth(who))


async def _settings(http: httpx.AsyncClient, who: Account, room: str) -> dict[str, Any]:
    r = await http.get(f"/rooms/{room}/settings", headers=auth(who))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _list(http: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/rooms", params=params, headers=auth(who))
    assert r.status_code == 200, r.text
    return list(r.json()["rooms"])


async def test_a_mute_for_8_hours_ends_by_itself_on_the_node_clock_and_unread_still_counts(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    r = await _patch(http, bob, room, mute="8h")
    assert r.status_code == 200, r.text
    muted = r.json()
    assert muted["muted"] is True and muted["mute_forever"] is False
    assert abs(muted["muted_until"] - (clock() + 8 * HOUR)) < 60_000
    async with open_client(node.ws_url, alice.access_token) as a:
        await send(a, room, "while you were muted")
    [listed] = await _list(http, bob)
    assert (listed["unread"], listed["settings"]["muted"]) == (1, True)

    clock.advance(8 * HOUR - 60_000)
    assert (await _settings(http, bob, room))["muted"] is True
    clock.advance(61_000)
    after = await _settings(http, bob, room)
    assert (after["muted"], after["muted_until"]) == (False, None)


async def test_mute_always_a_week_until_a_time_and_off(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    alice = await register(http)
    room = await create_group(http, alice)
    always = (await _patch(http, alice, room, mute="always")).json()
    assert (always["muted"], always["mute_forever"], always["muted_until"]) == (True, True, None)
    clock.advance(10 * 365 * 24 * HOUR)
    assert (await _settings(http, alice, room))["muted"] is True

    week = (await _patch(http, alice, room, mute="1w")).json()
    assert abs(week["muted_until"] - (clock() + 7 * 24 * HOUR)) < 60_000
    until = clock() + 3 * HOUR
    assert (await _patch(http, alice, room, mute_until=until)).json()["muted_until"] == until
    off = (await _patch(http, alice, room, mute="off")).json()
    assert (off["muted"], off["muted_until"], off["mute_forever"]) == (False, None, False)


async def test_unknown_mute_durations_and_past_times_are_refused_and_nothing_changes(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    alice = await register(http)
    room = await create_group(http, alice)
    for body, field in (
        ({"mute": "3 days"}, "mute"),
        ({"mute_until": clock() - 1}, "mute_until"),
        ({"mute": "8h", "mute_until": clock() + HOUR}, "mute_until"),
        ({"pinned": True, "archived": True}, "archived"),
    ):
        r = await _patch(http, alice, room, **body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid"
        assert r.json()["error"].get("field") == field
    r = await _patch(http, alice, room, notify="sometimes")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid")
    assert (await _settings(http, alice, room))["muted"] is False


async def test_pinned_chats_come_first_newest_pin_on_top_and_a_sixth_pin_is_refused(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice = await register(http)
    rooms = [await create_group(http, alice, name=f"g{i}") for i in range(7)]
    for room in rooms[:5]:
        r = await _patch(http, alice, room, pinned=True)
        assert r.status_code == 200, r.text
    r = await _patch(http, alice, rooms[5], pinned=True)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "too_many_pinned"
    # Pinning an already pinned chat again is not a sixth pin.
    assert (await _patch(http, alice, rooms[0], pinned=True)).status_code == 200

    listed = [room["id"] for room in await _list(http, alice)]
    # Pinned first, newest pin on top; then the rest by activity (newest room first).
    assert listed == [*reversed(rooms[:5]), rooms[6], rooms[5]]

    assert (await _patch(http, alice, rooms[2], pinned=False)).status_code == 200
    assert (await _patch(http, alice, rooms[5], pinned=True)).status_code == 200
    listed = [room["id"] for room in await _list(http, alice)]
    assert listed[:5] == [rooms[5], rooms[4], rooms[3], rooms[1], rooms[0]]
    assert [room["settings"]["pinned"] for room in await _list(http, alice)] == [True] * 5 + [
        False
    ] * 2


async def test_an_archived_chat_comes_back_with_a_new_message_unless_it_is_muted(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    loud = await create_group(http, alice, bob, name="loud")
    quiet = await create_group(http, alice, bob, name="quiet")
    assert (await _patch(http, bob, loud, archived=True)).json()["archived"] is True
    assert (await _patch(http, bob, quiet, archived=True, mute="always")).status_code == 200
    assert await _list(http, bob) == []
    assert {r["id"] for r in await _list(http, bob, archived="true")} == {loud, quiet}

    async with open_client(node.ws_url, alice.access_token) as a:
        await send(a, loud, "back you come")
        await send(a, quiet, "you stay archived")
    assert [r["id"] for r in await _list(http, bob)] == [loud]
    assert (await _settings(http, bob, loud))["archived"] is False
    assert [r["id"] for r in await _list(http, bob, archived="true")] == [quiet]


async def test_archiving_unpins_and_pinning_unarchives(node: Node, http: httpx.AsyncClient) -> None:
    alice = await register(http)
    room = await create_group(http, alice)
    assert (await _patch(http, alice, room, pinned=True)).json()["pinned"] is True
    archived = (await _patch(http, alice, room, archived=True)).json()
    assert (archived["archived"], archived["pinned"]) == (True, False)
    pinned = (await _patch(http, alice, room, pinned=True)).json()
    assert (pinned["archived"], pinned["pinned"]) == (False, True)


async def test_marked_unread_is_cleared_by_reading_over_rest_and_over_the_socket(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice = await register(http)
    room = await create_group(http, alice)
    async with open_client(node.ws_url, alice.access_token) as a:
        await send(a, room, "one")
        r = await _patch(http, alice, room, marked_unread=True)
        assert r.json()["marked_unread"] is True
        [listed] = await _list(http, alice)
        assert listed["settings"]["marked_unread"] is True
        read = await http.post(f"/rooms/{room}/read", json={"seq": 1}, headers=auth(alice))
        assert read.status_code == 200, read.text
        assert (await _settings(http, alice, room))["marked_unread"] is False

        await _patch(http, alice, room, marked_unread=True)
        await receipt(a, room, read=1)
        assert (await _settings(http, alice, room))["marked_unread"] is False


async def test_notification_choice_is_stored_per_chat(node: Node, http: httpx.AsyncClient) -> None:
    alice = await register(http)
    one, two = await create_group(http, alice), await create_group(http, alice)
    assert (await _patch(http, alice, one, notify="mentions")).json()["notify"] == "mentions"
    assert (await _settings(http, alice, one))["notify"] == "mentions"
    assert (await _settings(http, alice, two))["notify"] == "all"


async def test_someone_elses_room_looks_like_no_room_at_all(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, eve = await register(http), await register(http)
    room = await create_group(http, alice)
    for r in (
        await http.get(f"/rooms/{room}/settings", headers=auth(eve)),
        await _patch(http, eve, room, pinned=True),
        await _patch(http, eve, "r_nope", pinned=True),
    ):
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert (await _settings(http, alice, room))["pinned"] is False


async def test_a_settings_change_reaches_the_users_other_devices_and_a_late_device_reads_it(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    tablet = await login(http, alice, "tablet")
    async with (
        open_client(node.ws_url, tablet, device="tablet") as t,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        assert (await _patch(http, alice, room, pinned=True, notify="none")).status_code == 200
        pushed = await next_of(t, ChatSettingsChanged)
        assert (pushed.d.room, pushed.d.pinned, pushed.d.notify) == (room, True, "none")
        # Reading clears marked-unread: also pushed.
        await _patch(http, alice, room, marked_unread=True)
        assert (await next_of(t, ChatSettingsChanged)).d.marked_unread is True
        # Another member's settings are theirs alone: the first thing bob
        # hears after both changes is the tablet's next message, not a push.
        await send(t, room, "after the changes")
        heard = await b.next_push(timeout=5)
        while not isinstance(heard, (MsgNew, ChatSettingsChanged)):
            heard = await b.next_push(timeout=5)  # resume.done, presence
        assert isinstance(heard, MsgNew) and heard.d.text == "after the changes", heard
    # A device that was offline gets the current state from the room list.
    [listed] = await _list(http, alice)
    assert (listed["settings"]["pinned"], listed["settings"]["notify"]) == (True, "none")


async def test_six_devices_pinning_at_once_still_make_only_five_pins(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice = await register(http)
    rooms = [await create_group(http, alice, name=f"g{i}") for i in range(6)]
    answers: list[int] = []

    async def pin(room: str) -> None:
        answers.append((await _patch(http, alice, room, pinned=True)).status_code)

    async with trio.open_nursery() as nursery:
        for room in rooms:
            nursery.start_soon(pin, room)
    assert sorted(answers) == [200] * 5 + [409]
    assert sum(r["settings"]["pinned"] for r in await _list(http, alice)) == 5


async def test_the_openapi_document_describes_the_chat_list(
    node: Node, http: httpx.AsyncClient
) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    patch = paths["/rooms/{room_id}/settings"]["patch"]
    assert "too_many_pinned" in str(patch["responses"]["409"])
    assert "404" in patch["responses"] and "400" in patch["responses"]
    assert {"put", "delete"} <= set(paths["/rooms/{room_id}/messages/{seq}/star"])
    assert "get" in paths["/me/starred"]
    params = {p["name"] for p in paths["/rooms"]["get"]["parameters"]}
    assert {"archived", "limit", "offset"} <= params
