"""SIGTERM drains (issue 12, item 21): stop accepting, finish what is in flight,
send the answers, then close every socket with 1001 GOING_AWAY.

The server runs as a real ``realtime-server serve`` process; clients keep
posting while it receives SIGTERM. Afterwards storage is read directly: every
acknowledged message is there, and every stored message was acknowledged
(nothing committed went unanswered).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
import time
from functools import partial
from pathlib import Path

import httpx
import trio
import trio.testing

from protocol.client import ClientError, open_client
from protocol.errors import CloseCode
from storage.sql.factory import open_store
from tests.e2e.helpers import create_group, register
from tests.e2e.served import serve_process

CLIENTS = 4
BURST = 500  # requests each client has read by the server when SIGTERM comes


async def test_sigterm_answers_everything_in_flight_before_closing(
    database_url: str, tmp_path: Path
):
    results: dict[str, str] = {}
    closes: list[int] = []
    async with serve_process(
        database_url, tmp_path / "node", shutdown_timeout=10, rate_limit_frames_per_second=0
    ) as served:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as http:
            users = [await register(http) for _ in range(CLIENTS)]
            room = await create_group(http, users[0], *users[1:])
        read_by_server = [trio.Event() for _ in range(CLIENTS)]

        async def burst_then_wait_for_close(index: int) -> None:
            async with open_client(
                served.ws_url, users[index].access_token, request_timeout=30
            ) as client:

                async def post(cid: str) -> None:
                    try:
                        message = await client.send_message(room, "load " + cid, cid)
                        results[cid] = "ok" if message.cid == cid else "wrong message"
                    except ClientError as exc:
                        results[cid] = repr(exc)

                async with trio.open_nursery() as requests:
                    for n in range(BURST):
                        requests.start_soon(post, f"c{index}-{n}")
                    # Every request is written (each task now waits for its
                    # reply); the pong says the server has read them all.
                    await trio.testing.wait_all_tasks_blocked(0.01)
                    await client.ping()
                    read_by_server[index].set()
                closes.append((await client.wait_closed()).code)

        with trio.fail_after(45):
            async with trio.open_nursery() as nursery:
                for i in range(CLIENTS):
                    nursery.start_soon(burst_then_wait_for_close, i)
                for event in read_by_server:
                    await event.wait()
                # Most posts are still on their way to storage now.
                served.process.send_signal(signal.SIGTERM)
            exit_code = await served.process.wait()
        log = served.output()
    assert exit_code == 0, log
    assert "drained" in log, log
    # Every request the server had read got its answer before the close...
    failed = {cid: why for cid, why in results.items() if why != "ok"}
    assert not failed, (
        f"{len(failed)} of {len(results)} unanswered, e.g. {next(iter(failed.items()))}"
    )
    assert len(results) == CLIENTS * BURST
    # ...then the socket was closed with the documented code.
    assert closes == [CloseCode.GOING_AWAY] * CLIENTS, log
    async with open_store(database_url) as store:
        stored = {m.cid for m in await store.messages_after(room, 0, 1_000_000)}
    assert stored == set(results), "acknowledged and stored differ"


def hold_storage(database_url: str, seconds: float, locked: threading.Event) -> None:
    """Keep the messages table locked for ``seconds`` (from a thread): every
    post the server takes meanwhile stays in flight, unacknowledged."""
    if database_url.startswith("sqlite:///"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(seconds)
            db.execute("COMMIT")
        finally:
            db.close()
        return

    async def hold() -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE messages IN EXCLUSIVE MODE")
                locked.set()
                await asyncio.sleep(seconds)
        finally:
            await conn.close()

    asyncio.run(hold())


async def test_sigterm_while_storage_is_slow_still_sends_every_ack(
    database_url: str, tmp_path: Path
):
    results: dict[str, str] = {}
    closes: list[int] = []
    async with serve_process(
        database_url, tmp_path / "node", shutdown_timeout=10, rate_limit_frames_per_second=0
    ) as served:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as http:
            users = [await register(http) for _ in range(CLIENTS)]
            room = await create_group(http, users[0], *users[1:])
        connected = [trio.Event() for _ in range(CLIENTS)]
        read_by_server = [trio.Event() for _ in range(CLIENTS)]
        go = trio.Event()

        async def post_then_wait_for_close(index: int) -> None:
            async with open_client(
                served.ws_url, users[index].access_token, request_timeout=30
            ) as client:
                connected[index].set()
                await go.wait()

                async def post(cid: str) -> None:
                    try:
                        await client.send_message(room, "slow " + cid, cid)
                        results[cid] = "ok"
                    except ClientError as exc:
                        results[cid] = repr(exc)

                async with trio.open_nursery() as requests:
                    for n in range(50):
                        requests.start_soon(post, f"s{index}-{n}")
                    await trio.testing.wait_all_tasks_blocked(0.01)
                    await client.ping()
                    read_by_server[index].set()
                closes.append((await client.wait_closed()).code)

        with trio.fail_after(45):
            async with trio.open_nursery() as nursery:
                for i in range(CLIENTS):
                    nursery.start_soon(post_then_wait_for_close, i)
                for event in connected:
                    await event.wait()
                locked = threading.Event()
                nursery.start_soon(
                    partial(trio.to_thread.run_sync, hold_storage, database_url, 2.0, locked)
                )
                await trio.to_thread.run_sync(locked.wait)
                go.set()
                for event in read_by_server:
                    await event.wait()
                # Every post is read and waiting for storage: stop the server now.
                served.process.send_signal(signal.SIGTERM)
            exit_code = await served.process.wait()
        log = served.output()
    assert exit_code == 0, log
    unanswered = {cid: why for cid, why in results.items() if why != "ok"}
    assert not unanswered, f"{len(unanswered)} posts read by the server got no answer"
    assert len(results) == CLIENTS * 50
    assert closes == [CloseCode.GOING_AWAY] * CLIENTS, log
    async with open_store(database_url) as store:
        stored = {m.cid for m in await store.messages_after(room, 0, 1_000_000)}
    assert set(results) <= stored
