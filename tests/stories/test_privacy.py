"""Who sees a story: the privacy chosen when it was posted, never blocked users."""

from __future__ import annotations

import httpx

from realtime_server.node import Node
from tests.e2e.helpers import auth
from tests.stories.helpers import add_contacts, block, feed_ids, people, post_story


async def test_contacts_privacy_shows_the_story_to_every_contact_only(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cem, stranger = await people(http, 4)
    await add_contacts(http, ada, bob, cem)
    story = await post_story(http, ada)
    assert await feed_ids(http, bob) == [story["id"]]
    assert await feed_ids(http, cem) == [story["id"]]
    assert await feed_ids(http, stranger) == []
    r = await http.get(f"/stories/{story['id']}", headers=auth(stranger))
    assert r.status_code == 404


async def test_except_privacy_hides_it_from_the_listed_contacts(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cem = await people(http, 3)
    await add_contacts(http, ada, bob, cem)
    story = await post_story(http, ada, privacy="except", users=[cem.id])
    assert await feed_ids(http, bob) == [story["id"]]
    assert await feed_ids(http, cem) == []


async def test_only_privacy_shows_it_to_the_listed_close_friends_only(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cem = await people(http, 3)
    await add_contacts(http, ada, bob, cem)
    story = await post_story(http, ada, privacy="only", users=[cem.id])
    assert await feed_ids(http, bob) == []
    assert await feed_ids(http, cem) == [story["id"]]


async def test_the_audience_is_fixed_when_the_story_is_posted(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, late = await people(http, 3)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada)
    await add_contacts(http, ada, late)  # a contact added after the story
    assert await feed_ids(http, late) == []
    assert await feed_ids(http, bob) == [story["id"]]


async def test_blocked_users_never_see_a_story_whoever_blocked_and_whenever(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cem, dan = await people(http, 4)
    await add_contacts(http, ada, bob, cem, dan)
    await block(http, ada, bob)  # the author blocked bob before posting
    await block(http, cem, ada)  # cem blocked the author
    story = await post_story(http, ada, privacy="only", users=[bob.id, cem.id, dan.id])
    assert await feed_ids(http, bob) == []
    assert await feed_ids(http, cem) == []
    assert await feed_ids(http, dan) == [story["id"]]
    await block(http, dan, ada)  # a block after posting hides it too
    assert await feed_ids(http, dan) == []
    r = await http.get(f"/stories/{story['id']}", headers=auth(dan))
    assert r.status_code == 404
