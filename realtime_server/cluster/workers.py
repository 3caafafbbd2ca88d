"""``serve --workers N``: N node processes on one port, supervised (issue 13, item 4).

Workers are started with ``subprocess`` as ``python -m realtime_server.cli
serve``, not with ``multiprocessing``: a worker is then exactly the
single-node process an operator starts (same settings loading, logging,
signal handling and drain), it inherits nothing but its environment (no
pickled state, no forked trio run, no resource-tracker helper), and the
supervisor stays a small trio program that only spawns, waits and signals.

- **One port.** The supervisor first binds a placeholder socket on HOST:PORT
  with ``SO_REUSEPORT`` and never listens on it. PORT=0 is resolved there to
  one free port that every worker is given; a fixed port that is taken fails
  at once, before any worker starts. While workers restart, the port stays
  reserved (a socket without ``SO_REUSEPORT`` cannot bind it), and the kernel
  hands connections only to listening sockets: the workers'.
- **Workers.** Each gets ``REALTIME_SERVER_SUPERVISOR=<pid>`` (it is a worker:
  it binds with ``SO_REUSEPORT``, and drains if that process disappears), its
  own ``NODE_ID`` (``<NODE_ID or host name>-w<i>``), ``PORT`` and
  ``WORKERS=1``. They run in their own process group, so a Ctrl-C reaches the
  supervisor only.
- **Stopping.** SIGTERM or SIGINT to the supervisor is forwarded as SIGTERM
  to every worker, each drains as a single node does, and the supervisor
  exits when all have exited. A worker still running ``stop_timeout`` later
  (the drain budget, SHUTDOWN_TIMEOUT + CLOSE_TIMEOUT, and a margin), or a
  second signal, gets SIGKILL.
- **Restarts.** A worker that dies is started again after a backoff that
  doubles with each death of its slot within ``Backoff.window`` (0.25 s,
  0.5 s, 1 s ...). More than ``Backoff.budget`` deaths in the window is
  logged as an error and every further restart waits ``Backoff.most``: a
  worker that cannot stay up never makes the supervisor spin. Exit code 2 is
  a configuration error (restarting cannot help): every worker is stopped
  and the supervisor exits 2.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from realtime_server.base.settings import Settings

log = logging.getLogger(__name__)

# Set in a worker's environment to the supervisor's pid: marks the process a worker.
SUPERVISOR_ENV = "REALTIME_SERVER_SUPERVISOR"
# A worker's exit code for a configuration error (as the CLI's for bad settings).
CONFIG_ERROR = 2
SQLITE_ONE_PROCESS = (
    "WORKERS>1 needs REDIS_URL and PostgreSQL: several processes cannot share "
    "one SQLite file and in-process bus"
)


def worker_count(settings: Settings, cpus: int | None = None) -> int:
    """How many node processes ``serve`` runs; says why when it runs fewer than asked.

    WORKERS=0 means one per core with REDIS_URL, one without."""
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    wanted = settings.workers or (cores if settings.redis_url else 1)
    if wanted > 1 and not settings.redis_url:
        log.warning("%s; running one process (WORKERS=%d asked)", SQLITE_ONE_PROCESS, wanted)
        return 1
    return wanted


def worker_node_id(settings: Settings, slot: int) -> str:
    return f"{settings.node_id or socket.gethostname()}-w{slot}"


def worker_command() -> list[str]:
    return [sys.executable, "-m", "realtime_server.cli", "serve"]


def reserve_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Bind (never listen) ``SO_REUSEPORT`` placeholders on every address of
    ``host``: the port every worker will share, and the sockets that hold it."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    held: list[socket.socket] = []
    chosen = port
    try:
        for family, type_, proto, _, address in infos:
            sock = socket.socket(family, type_, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], chosen, *address[2:]))
            chosen = sock.getsockname()[1]
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return chosen, held


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays of one worker slot."""

    first: float = 0.25  # seconds before the first restart
    most: float = 30.0  # never longer; every restart once the budget is spent
    window: float = 60.0  # deaths older than this are forgotten
    budget: int = 5  # deaths within the window before the supervisor gives up hurrying

    def delay(self, recent_deaths: int) -> float:
        if recent_deaths > self.budget:
            return self.most
        return min(self.most, self.first * 2.0 ** (recent_deaths - 1))


@dataclass
class Supervisor:
    """Runs ``count`` copies of ``command`` and keeps them running until told to stop.

    ``envs[i]`` is slot i's whole environment."""

    command: Sequence[str]
    envs: Sequence[Mapping[str, str]]
    stop_timeout: float = 20.0
    backoff: Backoff = field(default_factory=Backoff)
    exit_code: int = 0
    started: int = 0  # processes started, restarts included
    _running: dict[int, trio.Process] = field(default_factory=dict)
    _stopping: trio.Event = field(default_factory=trio.Event)

    @property
    def pids(self) -> dict[int, int]:
        """Slot -> pid of the workers running now."""
        return {slot: proc.pid for slot, proc in self._running.items()}

    async def run(self) -> int:
        """Until every worker has exited after ``stop``, a signal or a configuration error."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as watchers:
                watchers.start_soon(self._on_signals, signals)
                watchers.start_soon(self._kill_after_timeout)
                async with trio.open_nursery() as slots:
                    for slot in range(len(self.envs)):
                        slots.start_soon(self._keep_running, slot)
                watchers.cancel_scope.cancel()
        log.info("all workers exited")
        return self.exit_code

    def stop(self, why: str) -> None:
        """Ask every worker to drain (SIGTERM); no restart from now on."""
        if self._stopping.is_set():
            return
        log.info("%s: stopping %d workers (draining)", why, len(self._running))
        self._stopping.set()
        for proc in self._running.values():
            _signal(proc, signal.SIGTERM)

    def kill(self, why: str) -> None:
        self._stopping.set()
        for slot, proc in self._running.items():
            log.warning("%s: killing worker %d (pid %d)", why, slot, proc.pid)
            _signal(proc, signal.SIGKILL)

    async def _on_signals(self, signals: AsyncIterator[int]) -> None:
        async for sig in signals:
            name = signal.Signals(sig).name
            if self._stopping.is_set():
                self.kill(f"{name} while stopping")
            else:
                self.stop(name)

    async def _kill_after_timeout(self) -> None:
        await self._stopping.wait()
        await trio.sleep(self.stop_timeout)
        self.kill(f"still running {self.stop_timeout:g}s after SIGTERM")

    async def _keep_running(self, slot: int) -> None:
        deaths: deque[float] = deque()
        while not self._stopping.is_set():
            try:
                proc = await trio.lowlevel.open_process(
                    list(self.command), env=dict(self.envs[slot]), process_group=0
                )
            except OSError as exc:  # no such executable, no memory, too many processes
                what = f"could not be started ({exc})"
            else:
                code = await self._watch(slot, proc)
                if self._stopping.is_set():
                    log.info("worker %d (pid %d) %s", slot, proc.pid, _status(code))
                    if code != 0 and self.exit_code == 0:
                        self.exit_code = 1  # it did not drain cleanly
                    return
                if code == CONFIG_ERROR:
                    log.error("worker %d exited with a configuration error (code 2)", slot)
                    self.exit_code = CONFIG_ERROR
                    self.stop("configuration error")
                    return
                what = f"(pid {proc.pid}) {_status(code)}"
            now = trio.current_time()
            deaths.append(now)
            while deaths and deaths[0] < now - self.backoff.window:
                deaths.popleft()
            delay = self.backoff.delay(len(deaths))
            if len(deaths) > self.backoff.budget:
                log.error(
                    "worker %d %s: %d deaths in %gs, over the restart budget (%d); "
                    "restarting in %gs",
                    slot,
                    what,
                    len(deaths),
                    self.backoff.window,
                    self.backoff.budget,
                    delay,
                )
            else:
                log.warning("worker %d %s; restarting in %gs", slot, what, delay)
            with trio.move_on_after(delay):
                await self._stopping.wait()

    async def _watch(self, slot: int, proc: trio.Process) -> int:
        """Until ``proc`` exits: its exit code (negative: the signal that ended it)."""
        self.started += 1
        self._running[slot] = proc
        if self._stopping.is_set():  # a stop that came while it was being started
            _signal(proc, signal.SIGTERM)
        log.info("worker %d started (pid %d)", slot, proc.pid)
        try:
            return await proc.wait()
        except BaseException:
            # The supervisor is failing or being cancelled: the worker must not
            # go on unattended; it drains and exits.
            _signal(proc, signal.SIGTERM)
            raise
        finally:
            del self._running[slot]


def _signal(proc: trio.Process, sig: signal.Signals) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass  # exited already; its wait() is about to return


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def supervise(settings: Settings, count: int) -> int:
    """``serve`` with ``count`` > 1 workers; the process's exit code."""
    from realtime_server.base.settings import resolve_jwt_secret

    # Created once here: workers racing to create DATA_DIR/jwt.secret could
    # each keep a different one, and a token from one would fail on another.
    resolve_jwt_secret(settings)
    try:
        port, placeholders = reserve_port(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot bind %s:%d for the workers: %s", settings.host, settings.port, exc)
        return 1
    try:
        envs = [
            {
                **os.environ,
                SUPERVISOR_ENV: str(os.getpid()),
                "NODE_ID": worker_node_id(settings, slot),
                "HOST": settings.host,
                "PORT": str(port),
                "WORKERS": "1",
            }
            for slot in range(count)
        ]
        log.info("supervising %d workers on %s:%d (SO_REUSEPORT)", count, settings.host, port)
        supervisor = Supervisor(
            worker_command(),
            envs,
            stop_timeout=settings.shutdown_timeout + settings.close_timeout + 5,
        )
        return trio.run(supervisor.run)
    finally:
        for sock in placeholders:
            sock.close()
