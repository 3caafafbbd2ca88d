"""Domain helpers for the notification tests: the CLI, the list, the pushes."""

from __future__ import annotations

import os
import sys
from typing import Any, TypeVar

import httpx
import trio

from protocol.client import Client
from tests.e2e.helpers import Account, auth

F = TypeVar("F")


async def run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """``realtime-server ARGS`` against the node's database: (exit code, stdout, stderr).

    The CLI's ``main`` in a process of its own, as an operator runs it: it
    starts its own ``trio.run`` (and on PostgreSQL its own asyncio bridge),
    which cannot share this test's thread or process state.
    """
    env = {**os.environ, "DATABASE_URL": database_url}
    done = await trio.run_process(
        [sys.executable, "-m", "realtime_server.cli", *args],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def make_admin(database_url: str, account: Account) -> None:
    code, out, err = await run_cli(
        database_url, "admin", "grant", f"{account.username}@example.test"
    )
    assert code == 0, err
    assert "now an admin" in out


async def notifications(http: httpx.AsyncClient, who: Account, **params: Any) -> dict[str, Any]:
    r = await http.get("/me/notifications", params=params, headers=auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def next_of(client: Client, kind: type[F], timeout: float = 5) -> F:  # noqa: ASYNC109
    """The next push of type ``kind``, skipping other features' pushes."""
    with trio.fail_after(timeout):
        while True:
            frame = await client.next_push()
            if isinstance(frame, kind):
                return frame


async def no_push_of(client: Client, kind: type, wait: float = 0.3) -> None:
    """No push of type ``kind`` arrives within ``wait`` seconds."""
    with trio.move_on_after(wait):
        while True:
            frame = await client.next_push()
            assert not isinstance(frame, kind), frame
