"""The feed, views, viewers, expiry on the node's clock and early deletion."""

from __future__ import annotations

import httpx

from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from tests.e2e.helpers import auth
from tests.stories.helpers import DAY_MS, add_contacts, feed, feed_ids, people, post_story


async def test_the_feed_puts_people_with_unseen_stories_first_each_in_posting_order(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    me, ada, bob = await people(http, 3)
    await add_contacts(http, ada, me)
    await add_contacts(http, bob, me)
    a1 = await post_story(http, ada, text="a1")
    clock.advance(1000)
    a2 = await post_story(http, ada, text="a2")
    clock.advance(1000)
    b1 = await post_story(http, bob, text="b1")
    # bob posted last: first while both are unseen
    assert [(p["user"], p["unseen"]) for p in await feed(http, me)] == [(bob.id, 1), (ada.id, 2)]
    assert await feed_ids(http, me) == [b1["id"], a1["id"], a2["id"]]
    r = await http.post(f"/stories/{b1['id']}/view", headers=auth(me))
    assert (r.status_code, r.json()["story"]["seen"]) == (200, True)
    # all of bob's are seen now: ada's unseen stories come first
    listed = await feed(http, me)
    assert [(p["user"], p["unseen"]) for p in listed] == [(ada.id, 2), (bob.id, 0)]
    assert [s["seen"] for s in listed[1]["stories"]] == [True]


async def test_the_author_sees_who_viewed_and_when_and_nobody_else_does(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    ada, bob, cem = await people(http, 3)
    await add_contacts(http, ada, bob, cem)
    story = await post_story(http, ada)
    clock.advance(5000)
    await http.post(f"/stories/{story['id']}/view", headers=auth(bob))
    clock.advance(5000)
    await http.post(f"/stories/{story['id']}/view", headers=auth(cem))
    await http.post(f"/stories/{story['id']}/view", headers=auth(bob))  # again: first view kept
    r = await http.get(f"/stories/{story['id']}/viewers", headers=auth(ada))
    assert r.status_code == 200, r.text
    assert [(v["user"], v["viewed_at"]) for v in r.json()["viewers"]] == [
        (bob.id, story["ts"] + 5000),
        (cem.id, story["ts"] + 10_000),
    ]
    r = await http.get(f"/stories/{story['id']}/viewers", headers=auth(bob))
    assert r.status_code == 404


async def test_a_story_expires_24_hours_after_posting_on_the_nodes_clock(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada)
    assert story["expires_at"] == story["ts"] + DAY_MS
    clock.advance(DAY_MS - 1)
    assert await feed_ids(http, bob) == [story["id"]]
    clock.advance(1)
    assert await feed_ids(http, bob) == []
    r = await http.get("/me/stories", headers=auth(ada))
    assert r.json()["stories"] == []
    for path in ("view", "reaction", "reply"):
        body = {"emoji": "🔥"} if path == "reaction" else {"text": "hi"}
        r = await http.post(f"/stories/{story['id']}/{path}", json=body, headers=auth(bob))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path


async def test_the_author_can_delete_a_story_early(node: Node, http: httpx.AsyncClient) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada)
    r = await http.delete(f"/stories/{story['id']}", headers=auth(bob))  # not bob's
    assert r.status_code == 404
    assert await feed_ids(http, bob) == [story["id"]]
    r = await http.delete(f"/stories/{story['id']}", headers=auth(ada))
    assert r.status_code == 204
    assert await feed_ids(http, bob) == []
    r = await http.delete(f"/stories/{story['id']}", headers=auth(ada))
    assert r.status_code == 404
