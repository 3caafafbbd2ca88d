"""Bad input to the notification routes gets clear errors and changes nothing;
pages of notifications follow each other without gaps or repeats."""

from __future__ import annotations

import httpx

from realtime_server.node import Node
from tests.e2e.helpers import auth, create_group, register
from tests.notifications.helpers import notifications


async def test_unknown_and_someone_elses_ids_are_not_found_and_nothing_is_marked(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cy = await register(http), await register(http), await register(http)
    await create_group(http, ada, bob)
    await create_group(http, ada, cy)  # a notification of cy's alone
    [mine] = (await notifications(http, bob))["notifications"]
    [theirs] = (await notifications(http, cy))["notifications"]

    for nid in ("n_unknown", theirs["id"]):
        r = await http.post(f"/me/notifications/{nid}/read", headers=auth(bob))
        error = r.json()["error"]
        assert (r.status_code, error["code"]) == (404, "not_found")
        assert nid in error["message"] and "Nothing was marked" in error["message"]
    r = await http.post(
        "/me/notifications/read", json={"ids": [mine["id"], theirs["id"]]}, headers=auth(bob)
    )
    assert (r.status_code, theirs["id"] in r.json()["error"]["message"]) == (404, True)
    assert (await notifications(http, bob))["unread"] == 1  # all or nothing
    assert (await notifications(http, cy))["unread"] == 1  # and cy's untouched

    r = await http.post("/me/notifications/read", json={"ids": [mine["id"]]}, headers=auth(bob))
    assert (r.status_code, r.json()) == (200, {"unread": 0, "marked": 1})


async def test_malformed_requests_are_refused_with_the_field_to_blame(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada = await register(http)
    bad_bodies = [{"ids": []}, {"ids": ["x"] * 101}, {"ids": [""]}, {"ids": "n_1"}, {"all": True}]
    for body in bad_bodies:
        r = await http.post("/me/notifications/read", json=body, headers=auth(ada))
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid"), (body, r.text)
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "many"}, {"before": "x" * 65}):
        r = await http.get("/me/notifications", params=params, headers=auth(ada))
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid"), (params, r.text)
    assert (await http.get("/me/notifications")).status_code == 401


async def test_pages_follow_each_other_newest_first_and_unread_filters(
    node: Node, http: httpx.AsyncClient
) -> None:
    owner, bob = await register(http), await register(http)
    rooms = [await create_group(http, owner, bob, name=f"g{i}") for i in range(5)]
    seen: list[str] = []
    before = None
    while True:
        params = {"limit": 2} | ({"before": before} if before else {})
        page = await notifications(http, bob, **params)
        seen += [n["ref"]["room"] for n in page["notifications"]]
        assert page["unread"] == 5
        if (before := page["next"]) is None:
            break
    assert seen == rooms[::-1]
    newest = (await notifications(http, bob, limit=1))["notifications"][0]["id"]
    await http.post(f"/me/notifications/{newest}/read", headers=auth(bob))
    unread = await notifications(http, bob, unread="true")
    assert ([n["ref"]["room"] for n in unread["notifications"]], unread["unread"]) == (
        rooms[-2::-1],
        4,
    )
