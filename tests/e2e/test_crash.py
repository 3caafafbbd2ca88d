"""A server killed with SIGKILL under load loses no acknowledged message.

The delivery promise: an ``ok`` is sent only after the group commit, so
whatever a client saw acknowledged is in storage even when the process dies
mid-batch, with no time to drain. After a restart on the same database the
room's seqs are gap-free, every acknowledged cid is there exactly once, and a
client that resends what was left unanswered (the cid rule) ends with each of
its messages stored once.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import trio

from protocol.client import ClientError, open_client
from storage.sql.factory import open_store
from tests.e2e.helpers import create_group, register
from tests.e2e.served import serve_process

CLIENTS = 4
IN_FLIGHT = 50  # unacknowledged posts each client keeps going
KILL_AFTER = 400  # acknowledged messages in all before the SIGKILL


async def test_a_killed_server_keeps_every_acknowledged_message(database_url: str, tmp_path: Path):
    acked: set[str] = set()
    sent: set[str] = set()
    enough = trio.Event()
    async with serve_process(
        database_url, tmp_path / "node", rate_limit_frames_per_second=0, sqlite_synchronous="FULL"
    ) as served:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as http:
            users = [await register(http) for _ in range(CLIENTS)]
            room = await create_group(http, users[0], *users[1:])

        async def load(index: int) -> None:
            try:
                async with open_client(served.ws_url, users[index].access_token) as client:

                    async def post_forever(lane: int) -> None:
                        n = 0
                        while True:
                            cid = f"c{index}-{lane}-{n}"
                            n += 1
                            sent.add(cid)
                            await client.send_message(room, "load " + cid, cid)
                            acked.add(cid)
                            if len(acked) >= KILL_AFTER:
                                enough.set()

                    async with trio.open_nursery() as lanes:
                        for lane in range(IN_FLIGHT):
                            lanes.start_soon(post_forever, lane)
            except* (ClientError, OSError, trio.BrokenResourceError):
                pass  # the server died under us: expected

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(CLIENTS):
                    nursery.start_soon(load, i)
                await enough.wait()
                served.process.send_signal(signal.SIGKILL)
                await served.process.wait()
    assert served.process.returncode == -signal.SIGKILL
    assert len(acked) >= KILL_AFTER
    unanswered = sent - acked
    assert unanswered, "the kill came after every post was answered: nothing was in flight"

    async with open_store(database_url) as store:
        stored = await store.messages_after(room, 0, 1_000_000)
    cids = [m.cid for m in stored]
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1)), "a gap in the seqs"
    assert len(cids) == len(set(cids)), "a cid stored twice"
    assert acked <= set(cids), f"{len(acked - set(cids))} acknowledged messages were lost"

    # The clients resend what they never heard about, on a restarted server.
    async with serve_process(
        database_url, tmp_path / "node", rate_limit_frames_per_second=0, sqlite_synchronous="FULL"
    ) as served:
        by_sender: dict[str, list[str]] = {}
        for cid in sorted(unanswered):
            by_sender.setdefault(cid.split("-")[0], []).append(cid)
        for index in range(CLIENTS):
            async with open_client(served.ws_url, users[index].access_token) as client:
                for cid in by_sender.get(f"c{index}", []):
                    await client.send_message(room, "load " + cid, cid)

    async with open_store(database_url) as store:
        stored = await store.messages_after(room, 0, 1_000_000)
    cids = [m.cid for m in stored]
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
    assert sorted(cids) == sorted(sent), "after the resends every message is stored exactly once"
