"""Call history, one call, and quality feedback over REST."""

from __future__ import annotations

import httpx
import trio

from protocol import frames_calls as fc
from protocol.client import open_client
from realtime_server.node import Node
from tests.calls.helpers import (
    accept,
    decline,
    direct_room,
    expect,
    expect_state,
    hangup,
    history,
    start,
)
from tests.e2e.helpers import auth, create_group, register


async def test_history_pages_newest_first_and_shows_only_my_calls(
    node: Node, http: httpx.AsyncClient
):
    ada, bob, cy = await register(http), await register(http), await register(http)
    ada_bob = await direct_room(http, ada, bob)
    ada_cy = await direct_room(http, ada, cy)
    made = []
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token),
        open_client(node.ws_url, cy.access_token),
    ):
        for room in (ada_bob, ada_cy, ada_bob):
            call = await start(a, room)
            await hangup(a, call.id)
            made.append(call.id)
            # Call ids order by their millisecond; calls within one are unordered.
            await trio.sleep(0.002)

    r = await http.get("/calls", params={"limit": 2}, headers=auth(ada))
    body = r.json()
    assert [c["id"] for c in body["calls"]] == [made[2], made[1]] and body["has_more"]
    r = await http.get("/calls", params={"before": made[1]}, headers=auth(ada))
    assert [c["id"] for c in r.json()["calls"]] == [made[0]] and not r.json()["has_more"]
    assert [c["id"] for c in await history(http, ada, room=ada_bob)] == [made[2], made[0]]
    assert [c["id"] for c in await history(http, cy)] == [made[1]]
    assert [c["outcome"] for c in await history(http, bob)] == ["cancelled", "cancelled"]

    r = await http.get(f"/calls/{made[1]}", headers=auth(cy))
    assert r.status_code == 200 and r.json()["call"]["caller_id"] == ada.id
    for who, call_id in ((bob, made[1]), (ada, "c_nope")):
        r = await http.get(f"/calls/{call_id}", headers=auth(who))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = await http.get("/calls", params={"limit": 0}, headers=auth(ada))
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid")
    assert (await http.get("/calls")).status_code == 401


async def test_participants_rate_an_ended_call(node: Node, http: httpx.AsyncClient):
    ada, bob, cy, eve = [await register(http) for _ in range(4)]
    room = await create_group(http, ada, bob, cy)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, cy.access_token) as c,
    ):
        call = await start(a, room, "video")
        await expect(b, fc.CallRing)
        await expect(c, fc.CallRing)
        await accept(b, call.id)
        await expect_state(b, "joined")
        url = f"/calls/{call.id}/feedback"
        r = await http.post(url, json={"rating": 5}, headers=auth(bob))
        assert (r.status_code, r.json()["error"]["code"]) == (409, "conflict")
        await decline(c, call.id)
        await hangup(b, call.id)
        await expect_state(b, "declined")
        await expect_state(b, "ended")

    r = await http.post(url, json={"rating": 4, "comment": "echo at the start"}, headers=auth(bob))
    assert r.status_code == 200, r.text
    assert (r.json()["rating"], r.json()["comment"]) == (4, "echo at the start")
    r = await http.post(url, json={"rating": 2}, headers=auth(ada))
    assert r.status_code == 200
    r = await http.post(url, json={"rating": 5, "comment": "better now"}, headers=auth(bob))
    assert r.status_code == 200  # a second rating replaces the first

    for body, field in (
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 3, "comment": "x" * 1001}, "comment"),
        ({"rating": 3, "comment": "nul\x00"}, "comment"),
        ({"rating": 3, "mood": "happy"}, "mood"),
    ):
        r = await http.post(url, json=body, headers=auth(bob))
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid"), body
        assert r.json()["error"].get("field") == field, body
    r = await http.post(url, json={"rating": 3}, headers=auth(cy))  # declined: never in it
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = await http.post(url, json={"rating": 3}, headers=auth(eve))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")

    bob_view = (await http.get(f"/calls/{call.id}", headers=auth(bob))).json()["call"]
    assert (bob_view["feedback"]["rating"], bob_view["feedback"]["comment"]) == (5, "better now")
    ada_view = (await http.get(f"/calls/{call.id}", headers=auth(ada))).json()["call"]
    assert ada_view["feedback"]["rating"] == 2
    cy_view = (await http.get(f"/calls/{call.id}", headers=auth(cy))).json()["call"]
    assert cy_view["feedback"] is None
    assert (cy_view["outcome"], cy_view["group"], cy_view["kind"]) == ("answered", True, "video")


async def test_the_openapi_document_describes_the_call_routes(http: httpx.AsyncClient):
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"/calls", "/calls/ice-servers", "/calls/{call_id}", "/calls/{call_id}/feedback"} <= set(
        paths
    )
    assert "409" in paths["/calls/{call_id}/feedback"]["post"]["responses"]
