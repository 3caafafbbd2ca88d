"""Real ``realtime-server serve`` node processes on loopback (issue 13).

``NodeProcesses`` runs N nodes, each on its own port, sharing one PostgreSQL
schema, one Redis (under a prefix unique to the test) and one JWT secret: a
token from one node is good on every other, as behind a load balancer. What
the chaos tests do to a node is what happens to a real one: ``kill`` is
SIGKILL (no drain, no lease release), ``stop``/``cont`` are SIGSTOP/SIGCONT
(a paused process: its leases expire while it cannot notice), ``restart``
starts it again on the same port.

Each node writes stdout and stderr to ``<root>/nodeI.log`` (every start
appends, after a marker line); ``log_tails`` is what a failing test shows.

Nothing outlives the owner: every process is started in its own session and
``terminate_all`` (run by ``NodeProcesses.running`` whatever happens) continues
a paused node, asks each to stop with SIGTERM, and SIGKILLs what has not
exited in time.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from protocol.harness.server import serve_command

JWT_SECRET = "test-secret-" + "x" * 32
START_TIMEOUT = 30.0  # a node's start: imports, migrations (locked), listening
STOP_TIMEOUT = 10.0  # SIGTERM drains; past this a node is killed


class NodeStartError(RuntimeError):
    """A node exited or did not answer /health in time; the message holds its log's tail."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports nothing listens on (all bound at once, then freed)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_env(
    *,
    port: int,
    database_url: str,
    data_dir: Path,
    node_id: str,
    redis_url: str | None,
    redis_prefix: str,
    overrides: Mapping[str, object],
) -> dict[str, str]:
    """A test node's environment: cheap hashing, no per-address sign-up limits
    (every test user comes from 127.0.0.1), and ``overrides`` as SETTING=value."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "JWT_SECRET", "NODE_ID"}
    }
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        NODE_ID=node_id,
        JWT_SECRET=JWT_SECRET,
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        REGISTER_PER_IP="1000000",
        LOGIN_PER_IP="1000000",
        REFRESH_PER_IP="1000000",
        LOG_LEVEL="INFO",
        # One process per node: a node is what the tests kill, pause and count.
        WORKERS="1",
    )
    if redis_url:
        env.update(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    env.update({name.upper(): str(value) for name, value in overrides.items()})
    return env


@dataclass
class NodeProcess:
    """One node: its port is kept across restarts, its process changes."""

    index: int
    port: int
    log: Path
    env: dict[str, str]
    process: trio.Process | None = None
    starts: int = 0
    paused: bool = False

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        return self.process_or_raise().pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def process_or_raise(self) -> trio.Process:
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError(f"node {self.index} is not running")
        return self.process

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class NodeProcesses:
    nodes: list[NodeProcess]
    data_root: Path
    _serve: list[str] = field(default_factory=serve_command)

    def __getitem__(self, i: int) -> NodeProcess:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    async def start(self, i: int) -> NodeProcess:
        """Start node ``i`` (not running) and return once it answers /health."""
        node = self.nodes[i]
        if node.running:
            raise RuntimeError(f"node {i} is already running")
        node.starts += 1
        node.paused = False
        data_dir = self.data_root / f"node{i}"
        data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a mkdir before a start
        with node.log.open("ab") as out:  # noqa: ASYNC230 - the child gets the descriptor
            out.write(f"===== start #{node.starts} of node {i} =====\n".encode())
            out.flush()
            node.process = await trio.lowlevel.open_process(
                self._serve,
                env=node.env,
                stdout=out,
                stderr=out,
                cwd=str(data_dir),
                # Its own session: a Ctrl-C in the terminal reaches pytest,
                # which stops the nodes itself (terminate_all).
                start_new_session=True,
            )
        try:
            await self._wait_healthy(node)
        except BaseException:
            await self.kill(i)
            raise
        return node

    async def _wait_healthy(self, node: NodeProcess) -> None:
        assert node.process is not None
        with trio.move_on_after(START_TIMEOUT) as waited:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=2) as http:
                while True:
                    if node.process.poll() is not None:
                        raise NodeStartError(
                            f"node {node.index} exited with {node.process.returncode} "
                            f"while starting:\n{node.tail()}"
                        )
                    try:
                        if (await http.get("/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)
        if waited.cancelled_caught:
            raise NodeStartError(
                f"node {node.index} did not answer /health in {START_TIMEOUT:g}s:\n{node.tail()}"
            )

    async def start_all(self) -> None:
        """Start every node at once (migrations take a lock: concurrent starts are safe)."""
        async with trio.open_nursery() as nursery:
            for i in range(len(self.nodes)):
                nursery.start_soon(self.start, i)

    async def kill(self, i: int) -> None:
        """SIGKILL node ``i`` and reap it: a crash, with no drain and no goodbye."""
        node = self.nodes[i]
        if node.process is None:
            return
        if node.process.returncode is None:
            node.process.send_signal(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            await node.process.wait()
        node.paused = False

    def stop(self, i: int) -> None:
        """SIGSTOP node ``i``: frozen mid-whatever, its sockets open, its leases ageing."""
        self.nodes[i].process_or_raise().send_signal(signal.SIGSTOP)
        self.nodes[i].paused = True

    def cont(self, i: int) -> None:
        """SIGCONT node ``i``: it runs on from where it was frozen."""
        self.nodes[i].process_or_raise().send_signal(signal.SIGCONT)
        self.nodes[i].paused = False

    async def restart(self, i: int) -> NodeProcess:
        """Kill node ``i`` if it runs, then start it again on the same port."""
        await self.kill(i)
        return await self.start(i)

    async def terminate_all(self) -> None:
        """SIGTERM every node (a paused one is continued first), SIGKILL stragglers."""
        with trio.CancelScope(shield=True):
            for node in self.nodes:
                if node.running:
                    assert node.process is not None
                    if node.paused:
                        node.process.send_signal(signal.SIGCONT)
                        node.paused = False
                    node.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_TIMEOUT):
                for node in self.nodes:
                    if node.process is not None:
                        await node.process.wait()
            for i in range(len(self.nodes)):
                await self.kill(i)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[NodeProcesses]:
        """Start every node, yield, and stop every one of them whatever happens."""
        self.data_root.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before any start
        try:
            await self.start_all()
            yield self
        finally:
            await self.terminate_all()

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- node {n.index} (port {n.port}), last {lines} lines of {n.log} -----\n"
            + n.tail(lines)
            for n in self.nodes
        )


def create_node_processes(
    n: int,
    *,
    database_url: str,
    root: Path,
    redis_url: str | None,
    redis_prefix: str,
    **overrides: object,
) -> NodeProcesses:
    """``n`` nodes, none started yet (``running()`` starts them)."""
    nodes = [
        NodeProcess(
            index=i,
            port=port,
            log=root / f"node{i}.log",
            env=node_env(
                port=port,
                database_url=database_url,
                data_dir=root / f"node{i}",
                node_id=f"node{i}",
                redis_url=redis_url,
                redis_prefix=redis_prefix,
                overrides=overrides,
            ),
        )
        for i, port in enumerate(free_ports(n))
    ]
    return NodeProcesses(nodes, root)
