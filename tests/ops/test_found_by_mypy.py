"""Bugs `mypy --strict` pointed at, pinned down as behaviour (issue 17, item 5)."""

from __future__ import annotations

import httpx

from storage.base import Store, User, new_id, now_ms
from tests.e2e.helpers import auth, create_group, register


async def test_promoting_someone_who_is_not_a_member_is_404_not_a_conflict(
    http: httpx.AsyncClient,
) -> None:
    owner, bob, stranger = [await register(http) for _ in range(3)]
    room = await create_group(http, owner, bob)
    for action in ("promote", "demote"):
        r = await http.post(f"/rooms/{room}/members/{stranger.id}/{action}", headers=auth(owner))
        assert r.status_code == 404, r.text
        error = r.json()["error"]
        assert error["request_id"] == r.headers["X-Request-Id"]
        del error["request_id"]
        assert error == {
            "code": "not_found",
            "message": "That user is not a member of this group.",
            "field": "user_id",
        }


async def test_a_user_without_email_or_username_can_be_stored(store: Store) -> None:
    # Phone and Google sign-ups have neither until the profile is complete
    # (migration 0003 made both columns nullable); create_user folded None.
    user = User(new_id("u_"), None, None, "Ada", None, now_ms())
    await store.create_user(user)
    assert await store.get_user(user.id) == user
