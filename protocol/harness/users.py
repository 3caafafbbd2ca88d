"""Create benchmark users and rooms through the REST API, as a real app would."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import trio


@dataclass(frozen=True)
class BenchUser:
    id: str
    token: str


def note(text: str) -> None:
    """Progress for a human watching a long set-up; stderr keeps stdout parseable."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


async def create_users(
    http: httpx.AsyncClient, count: int, *, concurrency: int = 32, progress: bool = False
) -> list[BenchUser]:
    """Register ``count`` fresh users; each costs the server one (cheap) argon2 hash."""
    run = secrets.token_hex(4)
    users: list[BenchUser | None] = [None] * count
    limiter = trio.CapacityLimiter(concurrency)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        async with limiter:
            name = f"b{run}_{i}"
            r = await http.post(
                "/auth/register",
                json={
                    "email": f"{name}@bench.test",
                    "username": name,
                    "password": "bench-password-1",
                },
            )
            r.raise_for_status()
            body = r.json()
            users[i] = BenchUser(body["user"]["id"], body["access_token"])
            done += 1
            if progress and done % 2000 == 0:
                note(f"{done}/{count} users registered")

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return [u for u in users if u is not None]


async def create_group(
    http: httpx.AsyncClient, owner: BenchUser, members: Sequence[BenchUser], name: str = "bench"
) -> str:
    r = await http.post(
        "/rooms",
        json={"kind": "group", "name": name, "members": [m.id for m in members]},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    r.raise_for_status()
    return str(r.json()["room"]["id"])


async def create_groups(
    http: httpx.AsyncClient, groups: Sequence[Sequence[BenchUser]], *, concurrency: int = 32
) -> list[str]:
    """One group room per list of users (the first one creates it); ids in the same order."""
    ids: list[str] = [""] * len(groups)
    limiter = trio.CapacityLimiter(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            owner, *others = groups[i]
            ids[i] = await create_group(http, owner, others, name=f"bench-{i}")

    async with trio.open_nursery() as nursery:
        for i in range(len(groups)):
            nursery.start_soon(one, i)
    return ids
