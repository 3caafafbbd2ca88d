"""Steady chat load over node processes that die and pause, and what it must leave.

A ``Member`` is one person in one room, online through the project's client
(``protocol.client``). It sends with cids and records every ack; it records
every ``msg.new`` it sees (live or replayed); when its connection drops it
reconnects, to its home node first, else to the next one that accepts, with
the resume cursor of what it holds (the highest seq below which it misses
nothing), and resends what was never answered with the same cid (the cid
rule). ``unavailable`` answers are retried the same way; any other error is
recorded and fails the test.

``check_room`` then compares every member's record with PostgreSQL.
"""

from __future__ import annotations

import itertools
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import trio
import trio_websocket

from protocol import frames
from protocol.client import Client, ClientError, ServerError, open_client
from protocol.errors import ErrorCode
from storage.base import StoredMessage
from tests.cluster.processes import NodeProcesses
from tests.e2e.helpers import Account

# What a connection to a node that died, is starting, or is frozen ends in.
CONNECTION_LOST = (ClientError, OSError, trio.BrokenResourceError, trio.TooSlowError)
CONNECT_ERRORS = (*CONNECTION_LOST, trio_websocket.HandshakeError)


@dataclass
class Member:
    account: Account
    room: str
    home: int  # the node it connects to first
    tag: str  # its cids start with this
    request_timeout: float = 10.0
    seen: dict[int, tuple[str, str]] = field(default_factory=dict)  # seq -> (sender, cid)
    acked: dict[str, int] = field(default_factory=dict)  # cid -> seq of its ok
    sent: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)  # no ok yet: to resend
    refused: int = 0  # ``unavailable`` answers
    connections: list[int] = field(default_factory=list)  # node of each connection
    errors: list[str] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def reconnected(self) -> bool:
        return len(self.connections) > 1

    def cursor(self) -> int:
        """The highest seq with every seq up to it held: what a resume asks after."""
        n = 0
        while n + 1 in self.seen:
            n += 1
        return n

    def record(self, m: frames.Message, how: str) -> None:
        if m.room != self.room:
            return
        key = (m.sender, m.cid)
        before = self.seen.setdefault(m.seq, key)
        if before != key:
            self.errors.append(f"{how}: seq {m.seq} of {self.room} was {before}, now {key}")

    # ----- one connection after another -----------------------------------

    def _open(self, nodes: NodeProcesses, index: int) -> AbstractAsyncContextManager[Client]:
        """A connection to node ``index`` resuming after what this member holds."""
        return open_client(
            nodes[index].ws_url,
            self.account.access_token,
            device=self.tag,
            cursors={self.room: self.cursor()},
            request_timeout=self.request_timeout,
        )

    async def run(self, nodes: NodeProcesses, stop: trio.Event, *, lanes: int, pace: float) -> None:
        """Send until ``stop``, through as many connections as it takes."""
        attempt = 0
        while not stop.is_set():
            index = (self.home + attempt) % len(nodes)
            try:
                async with self._open(nodes, index) as client:
                    self.connections.append(index)
                    attempt = 0
                    await self._session(client, stop, lanes, pace)
            except* CONNECT_ERRORS:
                attempt += 1
                await trio.sleep(0.05)

    async def _session(self, client: Client, stop: trio.Event, lanes: int, pace: float) -> None:
        async with trio.open_nursery() as reading:
            reading.start_soon(self._read, client)
            async with trio.open_nursery() as sending:
                for _ in range(lanes):
                    sending.start_soon(self._lane, client, stop, pace)
            reading.cancel_scope.cancel()

    async def _lane(self, client: Client, stop: trio.Event, pace: float) -> None:
        while not stop.is_set():
            if self.unanswered:
                cid = self.unanswered.pop()
            else:
                cid = f"{self.tag}-{next(self._numbers)}"
            await self.post(client, cid)
            await trio.sleep(pace)

    async def _read(self, client: Client) -> None:
        while True:
            frame = await client.next_push()
            if isinstance(frame, frames.MsgNew):
                self.record(frame.d, "msg.new")
            elif isinstance(frame, frames.ResumeGap):
                self.errors.append(f"resume.gap {frame.d}: more missed than a resume replays")

    async def post(self, client: Client, cid: str) -> None:
        """Send ``cid`` once; unanswered (refused or cut off) it waits for a resend."""
        self.sent.add(cid)
        self.in_flight.add(cid)
        message = None
        try:
            message = await client.send_message(self.room, f"load {cid}", cid)
        except ServerError as exc:
            if exc.code != ErrorCode.UNAVAILABLE:
                self.errors.append(f"{cid}: {exc.code} {exc}")
                self.sent.discard(cid)  # refused for good: nothing to find stored
                return
            self.refused += 1
        finally:
            self.in_flight.discard(cid)
            if message is None and cid in self.sent:
                self.unanswered.add(cid)
        if message is not None:
            self.unanswered.discard(cid)
            before = self.acked.setdefault(cid, message.seq)
            if before != message.seq:
                self.errors.append(f"{cid} acked as seq {before}, then as seq {message.seq}")
            self.record(message, "ok")

    # ----- the end: resolve what is unanswered, then one last resume -------

    async def resolve(self, nodes: NodeProcesses) -> None:
        """Resend every unanswered cid until each has its ``ok``."""
        attempt = 0
        while self.unanswered:
            index = (self.home + attempt) % len(nodes)
            try:
                async with self._open(nodes, index) as client:
                    self.connections.append(index)
                    async with trio.open_nursery() as reading:
                        reading.start_soon(self._read, client)
                        for cid in sorted(self.unanswered):
                            await self.post(client, cid)
                        reading.cancel_scope.cancel()
            except* CONNECT_ERRORS:
                pass
            if self.unanswered:
                attempt += 1
                await trio.sleep(0.1)

    async def final_resume(self, nodes: NodeProcesses) -> None:
        """Reconnect with the cursor of what it holds and take the replay to its end."""
        attempt = 0
        while True:
            index = (self.home + attempt) % len(nodes)
            try:
                async with self._open(nodes, index) as client:
                    while True:
                        frame = await client.next_push(timeout=self.request_timeout)
                        if isinstance(frame, frames.MsgNew):
                            self.record(frame.d, "replay")
                        elif isinstance(frame, frames.ResumeGap):
                            self.errors.append(f"final resume.gap {frame.d}")
                        elif isinstance(frame, frames.ResumeDone):
                            return
            except* CONNECT_ERRORS:
                attempt += 1
                await trio.sleep(0.1)


def check_room(room: str, stored: list[StoredMessage], members: list[Member]) -> list[str]:
    """What is wrong in ``room`` after the run (an empty list: nothing)."""
    problems: list[str] = []
    seqs = [m.seq for m in stored]
    if seqs != list(range(1, len(stored) + 1)):
        problems.append(f"{room}: seqs are not 1..{len(stored)}: {_ranges(seqs)}")
    by_key: dict[tuple[str, str], list[int]] = {}
    for m in stored:
        by_key.setdefault((m.sender_id, m.cid), []).append(m.seq)
    twice = {k: v for k, v in by_key.items() if len(v) > 1}
    if twice:
        problems.append(f"{room}: {len(twice)} (sender, cid) stored more than once: {twice}")
    at_seq = {m.seq: (m.sender_id, m.cid) for m in stored}
    top = max(seqs, default=0)
    for member in members:
        who = f"{room} member {member.tag} (connections on nodes {member.connections})"
        for cid, seq in member.acked.items():
            found = by_key.get((member.account.id, cid))
            if not found:
                problems.append(f"{who}: acked {cid} (seq {seq}) is not stored")
            elif found != [seq]:
                problems.append(f"{who}: acked {cid} as seq {seq}, stored as {found}")
        lost = {c for c in member.sent if (member.account.id, c) not in by_key}
        if lost:
            problems.append(f"{who}: {len(lost)} sent cids never stored: {sorted(lost)[:5]}")
        wrong = {s: k for s, k in member.seen.items() if at_seq.get(s) != k}
        if wrong:
            sample = {s: (k, at_seq.get(s)) for s, k in list(wrong.items())[:5]}
            problems.append(f"{who}: {len(wrong)} seqs seen differ from storage: {sample}")
        missing = set(range(1, top + 1)) - set(member.seen)
        if missing:
            problems.append(
                f"{who}: {len(missing)} of {top} messages never received: {_ranges(missing)}"
            )
        problems.extend(f"{who}: {e}" for e in member.errors)
    return problems


def _ranges(numbers: list[int] | set[int]) -> str:
    """1,2,3,7,8 -> '1-3,7-8' (at most 10 ranges shown)."""
    out: list[str] = []
    ordered = sorted(numbers)
    start = prev = None
    for n in [*ordered, None]:
        if start is None:
            start = prev = n
        elif n is not None and prev is not None and n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    text = ",".join(out[:10])
    return text + (f",... ({len(out)} ranges)" if len(out) > 10 else "")
