"""Domain helpers for the story tests: people, contacts, blocks, stories."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.helpers import Account, auth, register

DAY_MS = 86_400_000


async def people(http: httpx.AsyncClient, n: int) -> list[Account]:
    return [await register(http) for _ in range(n)]


async def add_contacts(http: httpx.AsyncClient, owner: Account, *others: Account) -> None:
    for other in others:
        r = await http.post("/contacts", json={"user_id": other.id}, headers=auth(owner))
        assert r.status_code in (200, 201), r.text


async def block(http: httpx.AsyncClient, blocker: Account, blocked: Account) -> None:
    r = await http.post("/blocks", json={"user_id": blocked.id}, headers=auth(blocker))
    assert r.status_code in (200, 201, 204), r.text


async def post_story(http: httpx.AsyncClient, author: Account, **body: Any) -> dict[str, Any]:
    """A text story unless told otherwise; returns the posted story."""
    body = {"kind": "text", "text": "hello", "bg": "#1e88e5", "font": "serif", **body}
    r = await http.post("/stories", json=body, headers=auth(author))
    assert r.status_code == 201, r.text
    story: dict[str, Any] = r.json()["story"]
    return story


async def feed(http: httpx.AsyncClient, reader: Account) -> list[dict[str, Any]]:
    r = await http.get("/stories/feed", headers=auth(reader))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["people"]
    return found


async def feed_ids(http: httpx.AsyncClient, reader: Account) -> list[str]:
    """Every story id in the reader's feed, in feed order."""
    return [s["id"] for p in await feed(http, reader) for s in p["stories"]]


def error(r: httpx.Response) -> tuple[int, str, str | None]:
    e = r.json()["error"]
    return r.status_code, e["code"], e.get("field")


async def direct_room(http: httpx.AsyncClient, a: Account, b: Account) -> str:
    r = await http.post("/rooms", json={"kind": "direct", "user_id": b.id}, headers=auth(a))
    assert r.status_code in (200, 201), r.text
    return str(r.json()["room"]["id"])
