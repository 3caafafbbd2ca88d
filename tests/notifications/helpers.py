"""Domain helpers for the notification tests: the CLI, the list, the pushes."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pytest
import trio

from protocol.client import Client
from realtime_server import cli
from tests.e2e.helpers import Account, auth

F = TypeVar("F")


async def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    *args: str,
) -> tuple[int, str, str]:
    """``realtime-server ARGS`` against the node's database: (exit code, stdout, stderr).

    In a thread: the CLI runs its own ``trio.run``.
    """
    monkeypatch.setenv("DATABASE_URL", database_url)
    capsys.readouterr()
    code = await trio.to_thread.run_sync(cli.main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def make_admin(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    account: Account,
) -> None:
    code, out, err = await run_cli(
        monkeypatch, capsys, database_url, "admin", "grant", f"{account.username}@example.test"
    )
    assert code == 0, err
    assert "now an admin" in out


async def notifications(
    http: httpx.AsyncClient, who: Account, **params: Any
) -> dict[str, Any]:
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
