"""Chaos over three real node processes (issue 13, "Done means").

(a) Under steady load from 32 clients in 8 rooms spread over 3 nodes, one
node after another is killed with SIGKILL and restarted. Clients reconnect
to any node with their resume cursors and resend what was never answered
with the same cid. Afterwards PostgreSQL holds every acknowledged message
exactly once, under the seq its ``ok`` carried, every room's seqs are
1..max, and every client, after one last resume, holds every message of its
room.

(b) The node that owns a room is frozen (SIGSTOP) past its lease while the
room's members on the other nodes keep sending (the room moves), then
continued (SIGCONT) with the sends it held still to process: it must commit
and acknowledge nothing as the room's writer any more. Checked the same way:
no seq twice, no gap, and every ``ok`` any client got, above all those on
the frozen node, is for a message stored under that seq.

The checks are in ``tests.cluster.load.check_room``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import httpx
import trio

from protocol.client import open_client
from storage.leases import Leases
from storage.sql.factory import open_store
from tests.cluster.load import Member, check_room
from tests.cluster.processes import NodeProcesses
from tests.cluster.processes_fixture import NodeProcessesFactory
from tests.e2e.helpers import Account, create_group, register

NODES = 3


async def _rooms(nodes: NodeProcesses, rooms: int, per_room: int) -> list[Member]:
    """``rooms`` groups of ``per_room`` fresh users; member j's home node is j % NODES,
    so every room has members on several nodes."""
    accounts: list[Account] = []
    for j in range(rooms * per_room):
        async with httpx.AsyncClient(base_url=nodes[j % NODES].http_url, timeout=10) as http:
            accounts.append(await register(http))
    members = []
    for r in range(rooms):
        group = accounts[r * per_room : (r + 1) * per_room]
        async with httpx.AsyncClient(base_url=nodes[r % NODES].http_url, timeout=10) as http:
            room = await create_group(http, group[0], *group[1:], name=f"chaos-{r}")
        for k, account in enumerate(group):
            j = r * per_room + k
            members.append(Member(account, room, home=j % NODES, tag=f"m{j}"))
    return members


async def _finish(nodes: NodeProcesses, members: list[Member]) -> None:
    """Every unanswered send resent until acknowledged, then one last resume each."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for member in members:
                nursery.start_soon(member.resolve, nodes)
        async with trio.open_nursery() as nursery:
            for member in members:
                nursery.start_soon(member.final_resume, nodes)


async def _holder(database_url: str, room: str) -> str:
    """The node (``nodeI``) holding the room's lease, "" when none does."""
    async with open_store(database_url) as store:
        holder = await Leases(store.db).holder(room)
    return "" if holder is None else holder.node_key.split("/")[0]


async def _problems(database_url: str, members: list[Member]) -> list[str]:
    problems: list[str] = []
    rooms = sorted({m.room for m in members})
    async with open_store(database_url) as store:
        for room in rooms:
            stored = await store.messages_after(room, 0, 1_000_000)
            problems += check_room(room, stored, [m for m in members if m.room == room])
    return problems


async def _until(
    ok: Callable[[], bool], failure: str | Callable[[], str], seconds: float = 20.0
) -> None:
    """Until ``ok()`` (the clients' tasks change what it reads); else fail with ``failure``."""
    with trio.move_on_after(seconds):
        while not ok():  # noqa: ASYNC110 - state the load's tasks change
            await trio.sleep(0.05)
        return
    raise AssertionError(failure if isinstance(failure, str) else failure())


def _acks(members: list[Member]) -> int:
    return sum(len(m.acked) for m in members)


def _stuck(members: list[Member], before: dict[str, int]) -> list[str]:
    """The rooms with no acknowledged send since ``before`` was counted."""
    return [room for room, n in _acks_by_room(members).items() if n <= before[room]]


def _acks_by_room(members: list[Member]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in members:
        counts[m.room] = counts.get(m.room, 0) + len(m.acked)
    return counts


async def test_nodes_killed_under_load_lose_no_acknowledged_message(
    node_processes: NodeProcessesFactory, cluster_url: str
) -> None:
    kills = 3
    with trio.fail_after(150):
        async with node_processes(NODES, rate_limit_frames_per_second=0) as nodes:
            members = await _rooms(nodes, rooms=8, per_room=4)
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for member in members:
                    nursery.start_soon(partial(member.run, nodes, stop, lanes=2, pace=0.2))
                # Waits for what must happen, not for a fixed time: a busy host
                # (a parallel suite) takes longer to get 32 clients going.
                await _until(lambda: _acks(members) > 100, "the load never got going")
                for k in range(kills):
                    victim = k % NODES
                    before = _acks_by_room(members)
                    await nodes.kill(victim)
                    await trio.sleep(3)  # its clients reconnect elsewhere, its rooms move
                    await nodes.restart(victim)
                    stuck = partial(_stuck, members, before)
                    failure = f"rooms stuck after node {victim} was killed: "
                    await _until(lambda: not stuck(), lambda: failure + str(stuck()))  # noqa: B023
                stop.set()
            await _finish(nodes, members)
    problems = await _problems(cluster_url, members)
    assert not problems, "\n".join(problems[:40])
    for member in members:
        if member.home < kills:  # its node was killed under it
            assert member.reconnected, f"{member.tag} never reconnected"
    assert sum(len(m.sent) for m in members) == _acks(members)


async def test_a_node_paused_past_its_lease_commits_and_acks_nothing_for_the_room(
    node_processes: NodeProcessesFactory, cluster_url: str
) -> None:
    lease = 1.0
    with trio.fail_after(60):
        async with node_processes(
            NODES, node_lease_seconds=lease, rate_limit_frames_per_second=0
        ) as nodes:
            members = await _rooms(nodes, rooms=1, per_room=6)
            frozen = [m for m in members if m.home == 0]
            others = [m for m in members if m.home != 0]
            # The room's first write happens on node 0, so node 0 holds its lease.
            owner = frozen[0]
            async with open_client(nodes[0].ws_url, owner.account.access_token) as client:
                await owner.post(client, f"{owner.tag}-owner")
            assert owner.acked, owner.errors
            assert await _holder(cluster_url, owner.room) == "node0"
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for member in members:
                    nursery.start_soon(partial(member.run, nodes, stop, lanes=3, pace=0.05))
                await trio.sleep(2)
                assert all(m.acked for m in members), "the load never got going"
                nodes.stop(0)  # frozen mid-batch: sends of its clients held, unanswered
                await trio.sleep(0.2)
                before = _acks(others)
                await trio.sleep(lease)
                # The room moves once another node notices the lease ran out;
                # on a loaded host that may take a few seconds more.
                for _ in range(40):  # up to 8 s
                    if _acks(others) > before and await _holder(cluster_url, owner.room) in {
                        "node1",
                        "node2",
                    }:
                        break
                    await trio.sleep(0.2)
                assert _acks(others) > before, "the room never moved off the frozen node"
                assert await _holder(cluster_url, owner.room) in {"node1", "node2"}
                await trio.sleep(0.5)  # the new leader commits a few batches meanwhile
                held = sum(len(m.in_flight) for m in frozen)
                nodes.cont(0)  # it runs on with a lease it no longer holds
                await trio.sleep(2)
                stop.set()
            await _finish(nodes, members)
    assert held > 0, "nothing was in flight on the frozen node: the test proved nothing"
    problems = await _problems(cluster_url, members)
    assert not problems, "\n".join(problems[:40])
    assert sum(len(m.sent) for m in members) == _acks(members)
