"""Create benchmark users and rooms through the REST API, as a real app would."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx
import trio


@dataclass(frozen=True)
class BenchUser:
    id: str
    token: str


async def create_users(
    http: httpx.AsyncClient, count: int, *, concurrency: int = 16
) -> list[BenchUser]:
    run = secrets.token_hex(4)
    users: list[BenchUser | None] = [None] * count
    limiter = trio.CapacityLimiter(concurrency)

    async def one(i: int) -> None:
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

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return [u for u in users if u is not None]


async def create_group(http: httpx.AsyncClient, owner: BenchUser, members: list[BenchUser]) -> str:
    r = await http.post(
        "/rooms",
        json={"kind": "group", "name": "bench", "members": [m.id for m in members]},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    r.raise_for_status()
    return str(r.json()["room"]["id"])
