"""Highlights keep chosen stories beyond 24 hours, for their original audience."""

from __future__ import annotations

import httpx

from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from tests.e2e.helpers import Account, auth
from tests.stories.helpers import DAY_MS, add_contacts, error, feed_ids, people, post_story


async def test_a_highlighted_story_outlives_its_day_for_its_original_audience_only(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    ada, bob, cem, stranger = await people(http, 4)
    await add_contacts(http, ada, bob, cem)
    trip = await post_story(http, ada, text="trip")
    clock.advance(1000)
    friends = await post_story(http, ada, text="friends", privacy="only", users=[bob.id])
    await post_story(http, ada, text="not kept")
    r = await http.post(
        "/me/highlights",
        json={"name": "Summer", "stories": [trip["id"], friends["id"]]},
        headers=auth(ada),
    )
    assert r.status_code == 201, r.text
    highlight = r.json()["highlight"]
    assert [s["id"] for s in highlight["stories"]] == [trip["id"], friends["id"]]

    clock.advance(2 * DAY_MS)
    assert await feed_ids(http, bob) == []  # gone from the feed

    async def shown_to(reader: Account) -> list[tuple[str, list[str]]]:
        r = await http.get(f"/users/{ada.id}/highlights", headers=auth(reader))
        assert r.status_code == 200, r.text
        return [(h["name"], [s["text"] for s in h["stories"]]) for h in r.json()["highlights"]]

    assert await shown_to(ada) == [("Summer", ["trip", "friends"])]
    assert await shown_to(bob) == [("Summer", ["trip", "friends"])]
    assert await shown_to(cem) == [("Summer", ["trip"])]  # not in the close friends' audience
    assert await shown_to(stranger) == []
    r = await http.get(f"/stories/{trip['id']}", headers=auth(cem))
    assert r.status_code == 200
    # kept, but its day is over: no more views, reactions or replies
    r = await http.post(f"/stories/{trip['id']}/view", headers=auth(cem))
    assert error(r)[:2] == (404, "not_found")

    r = await http.delete(f"/me/highlights/{highlight['id']}", headers=auth(bob))
    assert r.status_code == 404  # not bob's
    r = await http.delete(f"/me/highlights/{highlight['id']}", headers=auth(ada))
    assert r.status_code == 204
    assert await shown_to(bob) == []
    r = await http.get(f"/stories/{trip['id']}", headers=auth(cem))
    assert r.status_code == 404
