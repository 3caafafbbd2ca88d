"""Domain helpers for end-to-end tests: accounts and rooms made through REST."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx

_names = itertools.count(1)


@dataclass
class Account:
    id: str
    username: str
    password: str
    access_token: str
    refresh_token: str


async def register(
    http: httpx.AsyncClient, name: str | None = None, device: str = "phone"
) -> Account:
    name = name or f"user{next(_names)}"
    password = "correct horse battery"
    r = await http.post(
        "/auth/register",
        json={
            "email": f"{name}@example.test",
            "username": name,
            "password": password,
            "device": device,
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return Account(body["user"]["id"], name, password, body["access_token"], body["refresh_token"])


async def login(http: httpx.AsyncClient, account: Account, device: str) -> str:
    r = await http.post(
        "/auth/login",
        json={"login": account.username, "password": account.password, "device": device},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def create_group(
    http: httpx.AsyncClient, owner: Account, *members: Account, name: str = "g"
) -> str:
    r = await http.post(
        "/rooms",
        json={"kind": "group", "name": name, "members": [m.id for m in members]},
        headers=auth(owner),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["room"]["id"])


def auth(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_token}"}
