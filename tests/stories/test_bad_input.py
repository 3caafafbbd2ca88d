"""Bad story requests answer clear errors and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from realtime_server.node import Node
from tests.e2e.helpers import auth
from tests.stories.helpers import add_contacts, error, feed_ids, people, post_story


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"text": "x" * 51}, 400, "message_too_long", "text"),  # STORY_MAX_CHARS=50 here
        ({"text": "   "}, 400, "invalid", "text"),
        ({"bg": "blue"}, 400, "invalid", "bg"),
        ({"kind": "image"}, 400, "invalid", "media"),
        ({"kind": "video", "media": "f_nope", "bg": ""}, 400, "invalid", "media"),
        ({"privacy": "only", "users": []}, 400, "invalid", "users"),
        ({"privacy": "contacts", "users": ["u_x"]}, 400, "invalid", "users"),
        ({"privacy": "except", "users": ["u_nobody"]}, 400, "invalid", "users"),
        ({"privacy": "friends"}, 400, "invalid", None),
    ],
)
async def test_a_bad_story_is_refused_with_its_field(
    node: Node,
    http: httpx.AsyncClient,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    full = {"kind": "text", "text": "hello", "bg": "#000000", **body}
    r = await http.post("/stories", json=full, headers=auth(ada))
    got = error(r)
    assert got[:2] == (status, code), r.text
    if field is not None:
        assert got[2] == field, r.text
    assert await feed_ids(http, bob) == []


async def test_someone_elses_story_ids_are_not_found(node: Node, http: httpx.AsyncClient) -> None:
    ada, bob, eve = await people(http, 3)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada, privacy="only", users=[bob.id])
    sid = story["id"]
    for method, path, body in [
        ("GET", f"/stories/{sid}", None),
        ("POST", f"/stories/{sid}/view", None),
        ("POST", f"/stories/{sid}/reaction", {"emoji": "🔥"}),
        ("POST", f"/stories/{sid}/reply", {"text": "hi"}),
        ("GET", f"/stories/{sid}/viewers", None),
        ("DELETE", f"/stories/{sid}", None),
    ]:
        r = await http.request(method, path, json=body, headers=auth(eve))
        assert error(r)[:2] == (404, "not_found"), (method, path, r.text)
    r = await http.post("/me/highlights", json={"name": "x", "stories": [sid]}, headers=auth(eve))
    assert error(r) == (400, "invalid", "stories")


async def test_a_reaction_must_be_one_emoji(node: Node, http: httpx.AsyncClient) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada)
    for bad in ("nice", "🔥🔥", ":fire:"):
        r = await http.post(
            f"/stories/{story['id']}/reaction", json={"emoji": bad}, headers=auth(bob)
        )
        assert error(r) == (400, "invalid", "emoji"), bad
    r = await http.get(f"/stories/{story['id']}/viewers", headers=auth(ada))
    assert r.json() == {"viewers": [], "reactions": {}}


async def test_you_cannot_view_react_to_or_reply_to_your_own_story(
    node: Node, http: httpx.AsyncClient
) -> None:
    (ada,) = await people(http, 1)
    story = await post_story(http, ada)
    r = await http.post(f"/stories/{story['id']}/view", headers=auth(ada))
    assert error(r)[:2] == (400, "invalid")
