"""Storage outages are an expected condition (issue 12, items 18, 19 and 20).

While storage is unavailable every request gets exactly one answer, and for
storage work that answer is ``unavailable`` (retryable, as docs/protocol.md
promises), never ``internal``; no frame takes the connection or the node
down; rooms do not crash, and they work again by themselves when storage is
back; the log says once that the outage began and once that it ended.

The outage is real (tests/e2e/outage.py): PostgreSQL behind a relay whose
connections are cut, SQLite with its write lock held by another connection.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from PIL import Image

import storage.sql.driver_sqlite
from protocol import frames
from protocol.client import Client, ServerError, open_client
from protocol.frames_ai import AiAsk, AiAskData
from protocol.frames_calls import CallStart, CallStartData
from protocol.frames_chat import (
    Delete,
    DeleteData,
    Edit,
    EditData,
    Forward,
    ForwardData,
    React,
    ReactData,
    ReceiptData,
    ReceiptSet,
)
from protocol.frames_presence import PresenceGet, PresenceGetData, TypingData, TypingStart
from protocol.harness.openai_local import open_fake_openai, providers_setting
from realtime_server.node import Node, open_node
from tests.conftest import test_settings as node_settings
from tests.e2e.helpers import auth, create_group, register
from tests.e2e.outage import Outage, open_outage
from tests.messaging.helpers import send


@pytest.fixture
async def outage(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Outage]:
    # SQLite waits this long for a held write lock before it fails; the
    # default (5 s) would make every refused write cost 5 s of test time.
    monkeypatch.setattr(storage.sql.driver_sqlite, "BUSY_TIMEOUT_MS", 300)
    async with open_outage(database_url) as o:
        yield o


@pytest.fixture
async def node(outage: Outage, tmp_path: Path, _real_io_deadline: None) -> AsyncIterator[Node]:
    async with open_fake_openai() as fake:
        settings = node_settings(
            outage.url,
            tmp_path / "data",
            ai_providers=providers_setting(fake),
            ai_default_model="test-model",
            plan_free_models="*",
            # Answers during an outage come back at once, so the load test's
            # senders outrun the per-connection frame limit; that limit is
            # not what these tests are about.
            rate_limit_frames_per_second=1_000_000.0,
            rate_limit_burst=1_000_000,
        )
        async with open_node(settings) as n:
            yield n


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        yield client


async def answers(client: Client, requests: list[Any]) -> list[str]:
    """Send every request at once; each one's answer: ``ok`` or the ``err`` code."""
    got: list[str] = [""] * len(requests)

    async def one(i: int, frame: Any) -> None:
        try:
            reply = await client.request(frame)
        except ServerError as exc:
            got[i] = exc.code
        else:
            got[i] = "ok" if isinstance(reply, frames.Ok) else type(reply).__name__

    async with trio.open_nursery() as nursery:
        for i, frame in enumerate(requests):
            nursery.start_soon(one, i, frame)
    return got


async def assert_no_second_answer(client: Client) -> None:
    """A round trip, then nothing that answers a request may be left over."""
    await client.ping()
    while True:
        try:
            frame = client.next_push_nowait()
        except trio.WouldBlock:
            return
        assert not isinstance(frame, frames.Ok | frames.Err), f"a second answer: {frame!r}"


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "storage.outage"]


def our_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record logged with a traceback (asyncpg's reconnect notices included)."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]


def send_frame(room: str, cid: str, text: str) -> frames.Send:
    return frames.Send(id=0, d=frames.SendData(room=room, cid=cid, text=text))


async def test_during_an_outage_every_request_is_answered_once_unavailable_and_rooms_recover(
    node: Node, http: httpx.AsyncClient, outage: Outage, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        first = await send(a, room, "before")
        cids = [uuid.uuid4().hex for _ in range(4)]
        outage.begin()
        from_alice = [send_frame(room, cid, f"during {i}") for i, cid in enumerate(cids)] + [
            Edit(id=0, d=EditData(room=room, seq=first.seq, text="edited")),
            Delete(id=0, d=DeleteData(room=room, seq=first.seq, all=True)),
        ]
        from_bob = [
            React(id=0, d=ReactData(room=room, seq=first.seq, emoji="👍")),
            ReceiptSet(id=0, d=ReceiptData(room=room, read=first.seq)),
        ]
        async with trio.open_nursery() as nursery:
            results: dict[str, list[str]] = {}

            async def collect(name: str, client: Client, requests: list[Any]) -> None:
                results[name] = await answers(client, requests)

            nursery.start_soon(collect, "alice", a, from_alice)
            nursery.start_soon(collect, "bob", b, from_bob)
        assert results == {"alice": ["unavailable"] * 6, "bob": ["unavailable"] * 2}
        await assert_no_second_answer(a)
        await assert_no_second_answer(b)
        assert node.system.statistics().crashes == 0

        outage.end()
        # The same room, without a restart, takes the resends (same cids) and changes.
        again = await answers(
            a, [send_frame(room, cid, f"during {i}") for i, cid in enumerate(cids)]
        )
        assert again == ["ok"] * 4
        assert await answers(b, from_bob) == ["ok", "ok"]
        # One after the other: an edit after the delete would rightly be refused.
        assert [await answers(a, [frame]) for frame in from_alice[4:]] == [["ok"], ["ok"]]
        await assert_no_second_answer(a)
    r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
    stored = r.json()["messages"]
    assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5]
    assert sorted(m["text"] for m in stored[1:]) == [f"during {i}" for i in range(4)]
    assert node.system.statistics().crashes == 0
    # One line when the outage began, one when it ended; no tracebacks.
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("storage unavailable") and lines[1].startswith(
        "storage available again"
    )
    assert our_tracebacks(caplog) == []


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def test_no_frame_takes_the_connection_or_the_node_down_while_storage_is_unavailable(
    node: Node, http: httpx.AsyncClient, outage: Outage, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    other = await create_group(http, alice, bob)
    r = await http.post(
        "/media", files={"file": ("p.png", png(), "image/png")}, headers=auth(alice)
    )
    assert r.status_code == 201, r.text
    media = r.json()["media"]["id"]
    r = await http.post("/ai/conversations", json={}, headers=auth(alice))
    assert r.status_code == 201, r.text
    conversation = r.json()["conversation"]["id"]
    async with open_client(node.ws_url, alice.access_token) as a:
        first = await send(a, room, "before")
        outage.begin()
        requests = [
            AiAsk(id=0, d=AiAskData(room=conversation, cid=uuid.uuid4().hex, text="hi")),
            frames.Send(
                id=0,
                d=frames.SendData(room=room, cid=uuid.uuid4().hex, kind="image", media=media),
            ),
            Forward(
                id=0, d=ForwardData(room=room, seq=first.seq, to=[other], cid=uuid.uuid4().hex)
            ),
            PresenceGet(id=0, d=PresenceGetData(users=[bob.id])),
            TypingStart(id=0, d=TypingData(room=other)),
            CallStart(id=0, d=CallStartData(room=other)),
        ]
        got = await answers(a, requests)
        # Each frame is answered, on a connection that stays open; what needed
        # storage is refused as retryable, never as our bug.
        assert "internal" not in got, got
        assert got[:3] == ["unavailable"] * 3, got
        assert all(code in {"ok", "unavailable", "PresenceList", "CallOk"} for code in got), got
        await assert_no_second_answer(a)
        assert (await http.get("/health")).status_code == 200
        outage.end()
        assert await a.ping() > 0
    # The node serves new connections as before.
    async with open_client(node.ws_url, bob.access_token) as b:
        assert await b.ping() > 0
    assert our_tracebacks(caplog) == []


async def test_under_load_three_outages_leave_no_request_unanswered_and_lose_no_ack(
    node: Node, http: httpx.AsyncClient, outage: Outage, caplog: pytest.LogCaptureFixture
):
    """The outside review's run, shortened: senders keep sending through three outages.

    Every request gets exactly one answer (``ok`` or ``unavailable``), every
    ``ok`` is in storage under its seq, and the log has two lines per outage.
    """
    caplog.set_level(logging.WARNING)
    people = [await register(http) for _ in range(3)]
    rooms = [await create_group(http, people[0], *people[1:], name=f"r{i}") for i in range(2)]
    answers_by_code: dict[str, int] = {}
    acked: list[frames.Message] = []
    sending = True

    async def sender(client: Client, room: str) -> None:
        while sending:
            frame = send_frame(room, uuid.uuid4().hex, "load")
            try:
                reply = await client.request(frame)
            except ServerError as exc:
                code = exc.code
            else:
                assert isinstance(reply, frames.Ok) and reply.d is not None
                acked.append(reply.d)
                code = "ok"
            answers_by_code[code] = answers_by_code.get(code, 0) + 1
            await trio.sleep(0.002)

    async with trio.open_nursery() as nursery:
        clients = []
        for person in people:
            client = await nursery.start(_client_task, node.ws_url, person.access_token)
            clients.append(client)
        async with trio.open_nursery() as senders:
            for client in clients:
                for room in rooms:
                    for _ in range(3):
                        senders.start_soon(sender, client, room)
            for _ in range(3):
                await trio.sleep(0.5)
                outage.begin()
                await trio.sleep(1.0)
                outage.end()
            await trio.sleep(0.5)
            sending = False
        for client in clients:
            await assert_no_second_answer(client)
        nursery.cancel_scope.cancel()

    assert set(answers_by_code) <= {"ok", "unavailable"}, answers_by_code
    assert answers_by_code.get("ok", 0) > 0 and answers_by_code.get("unavailable", 0) > 0
    assert node.system.statistics().crashes == 0
    stored: dict[tuple[str, int], str] = {}
    for room in rooms:
        rows = await node.store.messages_after(room, 0, 1_000_000)
        assert [m.seq for m in rows] == list(range(1, len(rows) + 1))  # gap-free
        stored.update({(room, m.seq): m.id for m in rows})
    assert all(stored.get((m.room, m.seq)) == m.id for m in acked), "an ok without its message"
    lines = outage_lines(caplog)
    assert len(lines) == 6, lines
    assert our_tracebacks(caplog) == []


async def _client_task(
    url: str, token: str, *, task_status: trio.TaskStatus[Client] = trio.TASK_STATUS_IGNORED
) -> None:
    async with open_client(url, token) as client:
        task_status.started(client)
        await trio.sleep_forever()
