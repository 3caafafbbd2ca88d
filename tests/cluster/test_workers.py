"""``serve --workers N`` (issue 13, item 4): node processes on one port, supervised.

Real processes throughout: the CLI as an operator runs it, the ``Supervisor``
driving real node processes, and short-lived Python processes where only the
restart rules are under test.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio

from protocol.client import open_client
from protocol.errors import CloseCode
from realtime_server.base.settings import Settings
from realtime_server.cluster.workers import (
    SQLITE_ONE_PROCESS,
    SUPERVISOR_ENV,
    Backoff,
    Supervisor,
    reserve_port,
    worker_command,
    worker_count,
)
from tests.e2e.helpers import register

SERVE = [sys.executable, "-m", "realtime_server.cli", "serve"]
Running = trio.Process | None  # the server process under test, if it is one


def _env(database_url: str, data_dir: Path, **settings: object) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "NODE_ID", "WORKERS", "PORT", SUPERVISOR_ENV}
    }
    env.update(
        HOST="127.0.0.1",
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        JWT_SECRET="test-secret-" + "x" * 32,
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        SQLITE_SYNCHRONOUS="NORMAL",
        LOG_LEVEL="INFO",
        SHUTDOWN_TIMEOUT="3",
        CLOSE_TIMEOUT="2",
    )
    env.update({k.upper(): str(v) for k, v in settings.items()})
    return env


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux).

    Read from every process's parent id: /proc/PID/task/TID/children is per
    thread, and trio starts processes from a worker thread."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # gone meanwhile
        if fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _health(port: int) -> str:
    """The NODE_ID of whichever worker answers a fresh connection."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        r = await http.get("/health")
    assert r.status_code == 200, r.text
    return str(r.json().get("node", ""))


async def _wait_for_nodes(port: int, wanted: set[str], running: Running = None) -> None:
    """Until fresh connections have reached every node of ``wanted``;
    ``running`` stops the wait early when the process under test exited."""
    seen: set[str] = set()
    with trio.fail_after(60):
        while not wanted <= seen:
            assert running is None or running.poll() is None, "the server exited"
            try:
                seen.add(await _health(port))
            except httpx.TransportError:
                await trio.sleep(0.1)


async def _spread_and_restart(
    port: int, node_ids: set[str], workers: Callable[[], set[int]], running: Running = None
) -> None:
    """Short connections land on every worker; a worker killed with SIGKILL comes
    back under its NODE_ID while the others keep the port answering."""
    await _wait_for_nodes(port, node_ids, running)
    answered = [await _health(port) for _ in range(40)]
    assert set(answered) == node_ids, answered

    before = workers()
    assert len(before) == len(node_ids), before
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    with trio.fail_after(10):
        while _alive(victim):  # noqa: ASYNC110 - another process's state
            await trio.sleep(0.02)
    # While its slot is down (restart backoff, start-up), the survivors answer.
    for _ in range(20):
        assert await _health(port) in node_ids
    with trio.fail_after(60):
        while len(after := workers()) < len(node_ids):  # noqa: ASYNC110
            await trio.sleep(0.1)
    assert victim not in after and len(after - before) == 1, (before, after)
    await _wait_for_nodes(port, node_ids, running)


async def _sessions_drained(port: int, n: int, stop: Callable[[], None]) -> list[int]:
    """Open ``n`` WebSocket sessions on the shared port, call ``stop``, and
    return the close code each session got."""
    name = f"drain{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        account = await register(http, name)
    codes: list[int] = []
    up = trio.Semaphore(0)

    async def session(i: int) -> None:
        url = f"ws://127.0.0.1:{port}/ws"
        async with open_client(url, account.access_token, device=f"d{i}") as client:
            await client.ping()
            up.release()
            codes.append((await client.wait_closed()).code)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(session, i)
            for _ in range(n):
                await up.acquire()
            stop()
    return codes


# ----- (b) the embedded SQLite default stays one process -------------------------------


async def test_sqlite_runs_one_process_and_says_why(tmp_path: Path) -> None:
    port, placeholders = reserve_port("127.0.0.1", 0)
    for sock in placeholders:
        sock.close()  # a plain node binds without SO_REUSEPORT: only the number is wanted
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "serve.log"
    env = _env(f"sqlite:///{data}/x.db", data, port=port)
    with log.open("wb") as out:
        proc = await trio.lowlevel.open_process(
            [*SERVE, "--workers", "3"], env=env, stdout=out, stderr=out, cwd=str(tmp_path)
        )
    try:
        await _wait_for_nodes(port, {""}, proc)
        assert _children(proc.pid) == set()  # no worker processes: it serves itself
        text = log.read_text()
        assert SQLITE_ONE_PROCESS in text and "running one process (WORKERS=3 asked)" in text
        assert "supervising" not in text
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await proc.wait() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            await proc.wait()


def test_worker_count_follows_redis_and_the_cores(caplog: pytest.LogCaptureFixture) -> None:
    pg = "postgresql://u@h/db"
    redis = "redis://127.0.0.1:6379/0"
    assert worker_count(Settings(), cpus=8) == 1
    assert worker_count(Settings(database_url=pg, redis_url=redis), cpus=8) == 8
    assert worker_count(Settings(database_url=pg, redis_url=redis, workers=3), cpus=8) == 3
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        assert worker_count(Settings(database_url=pg, workers=4), cpus=8) == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{SQLITE_ONE_PROCESS}; running one process (WORKERS=4 asked)"
    ]


@pytest.mark.parametrize("count", ["-1", "two"])
def test_a_bad_worker_count_is_refused_by_the_cli(tmp_path: Path, count: str) -> None:
    import subprocess

    done = subprocess.run(
        [*SERVE, "--workers", count],
        env=_env(f"sqlite:///{tmp_path}/x.db", tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers: must be 0 (one per core with REDIS_URL) or positive" in done.stderr


# ----- the supervisor's rules ----------------------------------------------------------


def test_backoff_doubles_then_holds_past_the_budget() -> None:
    backoff = Backoff(first=0.25, most=30, window=60, budget=5)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.25, 0.5, 1, 2, 4, 30, 30]
    assert Backoff(first=1, most=3, budget=10).delay(4) == 3


async def test_a_worker_that_keeps_dying_is_restarted_with_backoff_never_spinning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    false = shutil.which("false")
    assert false, "the false utility (coreutils) is needed"
    supervisor = Supervisor(
        [false], [dict(os.environ)], backoff=Backoff(first=0.05, most=0.6, window=60, budget=3)
    )
    with caplog.at_level(logging.INFO, logger="realtime_server.cluster.workers"):
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(supervisor.run)
                # Stopped while it waits out a back-off (the 7th worker died and
                # none runs): a stop that lands while one runs would end it with
                # SIGTERM, which is not a clean exit (and a busy host often does).
                while supervisor.started < 7 or supervisor.pids:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                supervisor.stop("test over")
    starts = [r.created for r in caplog.records if r.getMessage().startswith("worker 0 started")]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    # Each restart waits its delay at least: 0.05, 0.1, 0.2 s for the first
    # three deaths (the budget), then 0.6 s each. The program dies at once:
    # without the backoff these gaps would be a few milliseconds.
    wanted = [0.05, 0.1, 0.2, 0.6, 0.6, 0.6]
    assert len(gaps) == len(wanted)
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, wanted, strict=True)), gaps
    messages = [r.getMessage() for r in caplog.records]
    restarts = [m for m in messages if "exited with code 1; restarting in" in m]
    assert [m.rsplit(" ", 1)[1] for m in restarts] == ["0.05s", "0.1s", "0.2s"]
    over = [m for m in messages if "over the restart budget (3); restarting in 0.6s" in m]
    # Every death past the third; the last start may have been stopped instead.
    assert len(over) in {3, 4}
    assert supervisor.exit_code == 0


async def test_a_configuration_error_stops_every_worker_and_exits_2() -> None:
    env = dict(os.environ)
    # Slot 0 sleeps; slot 1 exits 2 (the CLI's code for a bad setting) after a moment.
    script = "import os, sys, time; time.sleep(float(os.environ['DELAY'])) or sys.exit(2)"
    supervisor = Supervisor(
        [sys.executable, "-c", script],
        [{**env, "DELAY": "120"}, {**env, "DELAY": "0.3"}],
    )
    with trio.fail_after(15):
        assert await supervisor.run() == 2
    assert supervisor.started == 2 and supervisor.pids == {}


# Exits 0 on SIGTERM (as a draining node does), or ignores it with IGNORE=1.
_WORKER = (
    "import os, signal, sys, time\n"
    "ignore = os.environ.get('IGNORE') == '1'\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore else lambda *_: sys.exit(0))\n"
    "open(os.path.join(os.environ['READY_DIR'], str(os.getpid())), 'w').close()\n"
    "time.sleep(120)\n"
)


async def _until_running(supervisor: Supervisor, n: int, ready: Path) -> None:
    """Until ``n`` workers run and each has set its SIGTERM handler."""
    with trio.fail_after(30):
        while len(pids := set(supervisor.pids.values())) < n or not all(  # noqa: ASYNC110
            (ready / str(pid)).exists() for pid in pids
        ):
            await trio.sleep(0.02)


async def test_sigint_to_the_supervisor_is_forwarded_as_sigterm_to_every_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {**os.environ, "READY_DIR": str(tmp_path)}
    supervisor = Supervisor([sys.executable, "-c", _WORKER], [env, env])
    with caplog.at_level(logging.INFO, logger="realtime_server.cluster.workers"):
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(supervisor.run)
                await _until_running(supervisor, 2, tmp_path)
                before = supervisor.pids
                pids = set(before.values())
                # The supervisor's signal receiver takes it (here: this very process).
                os.kill(os.getpid(), signal.SIGINT)
    assert supervisor.exit_code == 0 and supervisor.started == 2
    messages = [r.getMessage() for r in caplog.records]
    assert "SIGINT: stopping 2 workers (draining)" in messages
    assert {m for m in messages if m.endswith("exited with code 0")} == {
        f"worker {slot} (pid {pid}) exited with code 0" for slot, pid in before.items()
    }
    assert not any(_alive(pid) for pid in pids)


async def test_a_worker_that_does_not_drain_in_time_is_killed(tmp_path: Path) -> None:
    env = {**os.environ, "IGNORE": "1", "READY_DIR": str(tmp_path)}
    supervisor = Supervisor([sys.executable, "-c", _WORKER], [env], stop_timeout=0.5)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            await _until_running(supervisor, 1, tmp_path)
            (pid,) = supervisor.pids.values()
            supervisor.stop("test")
    assert supervisor.exit_code == 1  # it did not drain cleanly
    assert not _alive(pid)


async def test_a_worker_that_cannot_be_started_is_retried_like_one_that_died(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(
        [str(tmp_path / "no-such-program")],
        [dict(os.environ)],
        backoff=Backoff(first=0.05, most=0.2, budget=2),
    )
    with caplog.at_level(logging.WARNING, logger="realtime_server.cluster.workers"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            await trio.sleep(1)
            supervisor.stop("test over")
    messages = [r.getMessage() for r in caplog.records]
    assert supervisor.started == 0
    assert messages[0].startswith("worker 0 could not be started ([Errno 2]")
    assert messages[0].endswith("; restarting in 0.05s")
    assert any("over the restart budget (2); restarting in 0.2s" in m for m in messages)


# ----- real node processes on one port -------------------------------------------------


async def test_the_supervisor_keeps_real_nodes_on_one_port(
    cluster_url: str, tmp_path: Path
) -> None:
    """Without the Redis bus each worker is a node of its own on the shared
    PostgreSQL: enough for what is under test here (one port, restarts, drain),
    not for messaging across them (the CLI refuses it without REDIS_URL)."""
    port, placeholders = reserve_port("127.0.0.1", 0)
    node_ids = {"t-w0", "t-w1"}
    base = _env(cluster_url, tmp_path / "data", port=port)
    envs = [
        {**base, SUPERVISOR_ENV: str(os.getpid()), "NODE_ID": f"t-w{i}", "WORKERS": "1"}
        for i in range(2)
    ]
    supervisor = Supervisor(worker_command(), envs, stop_timeout=15)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            try:
                await _spread_and_restart(port, node_ids, lambda: set(supervisor.pids.values()))
                pids = set(supervisor.pids.values())
                stopped: list[float] = []

                def stop() -> None:
                    stopped.append(trio.current_time())
                    supervisor.stop("test")

                codes = await _sessions_drained(port, 6, stop)
            except BaseException:
                supervisor.kill("test failed")
                raise
        assert trio.current_time() - stopped[0] < 10
    finally:
        for sock in placeholders:
            sock.close()
    # Each worker drained: its sessions were told 1001 GOING_AWAY, it exited 0.
    assert codes == [CloseCode.GOING_AWAY] * 6
    assert supervisor.exit_code == 0 and supervisor.pids == {}
    assert not any(_alive(pid) for pid in pids)


async def test_a_worker_whose_supervisor_is_killed_drains_and_exits(
    cluster_url: str, tmp_path: Path
) -> None:
    """Nothing would stop or restart it any more, and it would hold the port."""
    port, placeholders = reserve_port("127.0.0.1", 0)
    log = tmp_path / "worker.log"
    # A stand-in supervisor: starts one worker the way Supervisor does, then waits.
    parent = (
        "import os, subprocess, sys, time\n"
        f"env = {{**os.environ, {SUPERVISOR_ENV!r}: str(os.getpid())}}\n"
        f"out = open({str(log)!r}, 'wb')\n"
        "child = subprocess.Popen(sys.argv[1:], env=env, stdout=out, stderr=out, process_group=0)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = _env(cluster_url, tmp_path / "data", port=port, node_id="orphan-w0")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", parent, *worker_command()], env=env, stdout=-1
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(10):
            worker = int((await proc.stdout.receive_some()).decode())
        await _wait_for_nodes(port, {"orphan-w0"})
        proc.kill()
        await proc.wait()
        with trio.fail_after(15):
            while _alive(worker):  # noqa: ASYNC110 - another process's state
                await trio.sleep(0.05)
    finally:
        proc.kill()  # the worker follows: that is what is under test
        await proc.wait()
        for sock in placeholders:
            sock.close()
    text = log.read_text()
    assert f"supervisor (pid {proc.pid}) is gone: shutting down (draining)" in text
    assert "shutdown: drained in" in text


# ----- (a) `serve --workers 2` on Redis and PostgreSQL, as an operator runs it ----------


async def test_serve_workers_share_the_port_restart_and_drain_on_sigterm(
    redis_url: str, cluster_url: str, tmp_path: Path
) -> None:
    port, placeholders = reserve_port("127.0.0.1", 0)
    for sock in placeholders:
        sock.close()  # the supervisor reserves the port itself; only the number is wanted
    log = tmp_path / "serve.log"
    env = _env(
        cluster_url,
        tmp_path / "data",
        port=port,
        redis_url=redis_url,
        redis_prefix=f"t{secrets.token_hex(4)}:",
        node_id="edge",
    )
    with log.open("wb") as out:
        proc = await trio.lowlevel.open_process(
            [*SERVE, "--workers", "2"], env=env, stdout=out, stderr=out, cwd=str(tmp_path)
        )
    pids: set[int] = set()
    try:
        try:
            workers = {"edge-w0", "edge-w1"}
            await _spread_and_restart(port, workers, lambda: _children(proc.pid), proc)
        except BaseException as exc:
            raise AssertionError(log.read_text()) from exc
        pids = _children(proc.pid)
        stopped: list[float] = []

        def stop() -> None:
            stopped.append(trio.current_time())
            proc.send_signal(signal.SIGTERM)

        codes = await _sessions_drained(port, 6, stop)
        with trio.fail_after(10):
            assert await proc.wait() == 0, log.read_text()
        assert trio.current_time() - stopped[0] < 10
    finally:
        if proc.poll() is None:
            proc.kill()  # its workers follow (they watch it)
            await proc.wait()
    assert codes == [CloseCode.GOING_AWAY] * 6
    assert not any(_alive(pid) for pid in pids)
    text = log.read_text()
    assert f"supervising 2 workers on 127.0.0.1:{port}" in text
    assert "was killed by SIGKILL; restarting in 0.25s" in text
    assert "SIGTERM: stopping 2 workers (draining)" in text
