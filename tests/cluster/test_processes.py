"""Three real node processes on loopback, Redis and PostgreSQL (issue 13, "Done means").

The first test checks the process handling the other cluster tests stand on
(start, /health, SIGKILL, restart on the same port, SIGSTOP/SIGCONT, nothing
left running). The others spread the members of one room, and the devices of
one user, over different nodes and check what each client sees.
"""

from __future__ import annotations

import os

import httpx
import pytest
import trio

from protocol import frames
from protocol.client import Client, open_client
from tests.cluster.processes import NodeProcesses
from tests.cluster.processes_fixture import NodeProcessesFactory
from tests.e2e.helpers import Account, create_group, login, register

PUSH_WAIT = 10.0  # seconds a cross-node delivery may take before the test says it never came


async def live(client: Client) -> Client:
    """Wait for ``resume.done``: from then on the client's node listens for its rooms."""
    while True:
        frame = await client.next_push(timeout=PUSH_WAIT)
        if isinstance(frame, frames.ResumeDone):
            return client


async def next_message(client: Client) -> frames.Message:
    """The next ``msg.new``, skipping other pushes (presence, receipts)."""
    while True:
        frame = await client.next_push(timeout=PUSH_WAIT)
        if isinstance(frame, frames.MsgNew):
            return frame.d


async def health(node_url: str) -> int:
    async with httpx.AsyncClient(base_url=node_url, timeout=1) as http:
        return (await http.get("/health")).status_code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_node_processes_start_answer_survive_a_kill_and_leave_nothing_behind(
    node_processes: NodeProcessesFactory,
) -> None:
    # Without the bus: this checks the process handling only (each node alone
    # on the shared schema), so it holds before the Redis bus exists.
    with trio.fail_after(60):
        async with node_processes(3, bus=False) as nodes:
            assert len({n.port for n in nodes.nodes}) == 3
            for node in nodes.nodes:
                assert await health(node.http_url) == 200
            # One schema and one JWT secret: an account made on node 0 signs in on node 2.
            async with httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http:
                alice = await register(http)
            async with httpx.AsyncClient(base_url=nodes[2].http_url, timeout=10) as http:
                token = await login(http, alice, device="tablet")
            async with open_client(nodes[1].ws_url, token) as client:
                assert client.welcome.user == alice.id

            first_pid = nodes[1].pid
            await nodes.kill(1)
            assert not nodes[1].running and not alive(first_pid)
            with pytest.raises(httpx.TransportError):
                await health(nodes[1].http_url)
            await nodes.restart(1)
            assert nodes[1].pid != first_pid and nodes[1].starts == 2
            assert await health(nodes[1].http_url) == 200

            nodes.stop(2)
            with pytest.raises(httpx.TimeoutException):
                await health(nodes[2].http_url)  # frozen: the kernel accepts, nobody answers
            nodes.cont(2)
            assert await health(nodes[2].http_url) == 200
            nodes.stop(0)  # left paused: terminate_all must still end it
            pids = [n.pid for n in nodes.nodes]
        assert not any(alive(pid) for pid in pids)
        assert "start #2 of node 1" in nodes[1].log.read_text()


async def _accounts(nodes: NodeProcesses, count: int) -> list[Account]:
    """``count`` accounts, account i registered through node i % 3."""
    accounts = []
    for i in range(count):
        async with httpx.AsyncClient(base_url=nodes[i % len(nodes)].http_url, timeout=10) as http:
            accounts.append(await register(http))
    return accounts


async def test_a_message_sent_on_one_node_reaches_members_on_the_others(
    node_processes: NodeProcessesFactory,
) -> None:
    with trio.fail_after(60):
        async with node_processes(3) as nodes:
            alice, bob, carol = await _accounts(nodes, 3)
            async with httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http:
                room = await create_group(http, alice, bob, carol)
            async with (
                open_client(nodes[0].ws_url, alice.access_token) as a,
                open_client(nodes[1].ws_url, bob.access_token) as b,
                open_client(nodes[2].ws_url, carol.access_token) as c,
            ):
                for client in (a, b, c):
                    await live(client)
                sent = await a.send_message(room, "hello from node 0", cid="n0-1")
                assert (sent.room, sent.seq, sent.sender) == (room, 1, alice.id)
                assert await next_message(b) == sent
                assert await next_message(c) == sent

                # Each node fans out every later batch too, in seq order.
                more = [await a.send_message(room, f"more {i}") for i in range(5)]
                assert [m.seq for m in more] == [2, 3, 4, 5, 6]
                for client in (b, c):
                    assert [await next_message(client) for _ in more] == more


async def test_a_user_with_devices_on_two_nodes_gets_the_message_on_both(
    node_processes: NodeProcessesFactory,
) -> None:
    with trio.fail_after(60):
        async with node_processes(3) as nodes:
            alice, bob = await _accounts(nodes, 2)
            async with httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http:
                room = await create_group(http, alice, bob)
            async with httpx.AsyncClient(base_url=nodes[2].http_url, timeout=10) as http:
                laptop = await login(http, bob, device="laptop")
            async with (
                open_client(nodes[0].ws_url, alice.access_token) as a,
                open_client(nodes[1].ws_url, bob.access_token, device="phone") as phone,
                open_client(nodes[2].ws_url, laptop, device="laptop") as desk,
            ):
                for client in (a, phone, desk):
                    await live(client)
                sent = await a.send_message(room, "to both of your devices")
                assert await next_message(phone) == sent
                assert await next_message(desk) == sent
                # And what one of bob's devices sends reaches his other device and alice.
                reply = await phone.send_message(room, "seen on my phone")
                assert reply.seq == sent.seq + 1
                assert await next_message(desk) == reply
                assert await next_message(a) == reply


async def test_a_sender_on_a_node_that_does_not_own_the_room_gets_its_ack(
    node_processes: NodeProcessesFactory,
) -> None:
    with trio.fail_after(60):
        async with node_processes(3) as nodes:
            alice, bob, carol = await _accounts(nodes, 3)
            async with httpx.AsyncClient(base_url=nodes[0].http_url, timeout=10) as http:
                room = await create_group(http, alice, bob, carol)
            async with (
                open_client(nodes[0].ws_url, alice.access_token) as a,
                open_client(nodes[1].ws_url, bob.access_token) as b,
                open_client(nodes[2].ws_url, carol.access_token) as c,
            ):
                for client in (a, b, c):
                    await live(client)
                # The room's first write happens on node 0: node 0 takes its lease.
                first = await a.send_message(room, "node 0 writes first")
                assert await next_message(c) == first
                # Carol's post on node 2 is forwarded to the owner; she never knows.
                forwarded = await c.send_message(room, "from node 2", cid="carol-1")
                assert (forwarded.seq, forwarded.sender, forwarded.text) == (
                    2,
                    carol.id,
                    "from node 2",
                )
                assert await next_message(a) == forwarded
                assert await next_message(b) == first
                assert await next_message(b) == forwarded
                # A resend with the same cid answers the stored message, not a new one.
                again = await c.send_message(room, "from node 2", cid="carol-1")
                assert again == forwarded
                # Pipelined forwarded posts keep the room gap-free and in order.
                with trio.fail_after(20):
                    acks: list[int] = []

                    async def post(i: int) -> None:
                        acks.append((await c.send_message(room, f"burst {i}")).seq)

                    async with trio.open_nursery() as nursery:
                        for i in range(30):
                            nursery.start_soon(post, i)
                assert sorted(acks) == list(range(3, 33))
                seen = [(await next_message(a)).seq for _ in range(30)]
                assert seen == list(range(3, 33))
