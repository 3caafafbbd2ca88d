"""Harness worker processes: each drives one lean ``Loop``; the parent steers them.

A scenario's worker is a module-level function ``fn(control, *args)`` run in
a fresh (spawned) process. It reports with ``control.reply(...)`` and waits for
the parent's next word with ``control.wait(loop)``, which keeps serving the
loop's sockets meanwhile (pings are answered, deliveries counted), and ends
with ``control.finish(loop)``: serve until the parent says "exit", then close
every connection politely. The parent holds a ``Workers`` (``async with``)
and calls ``gather_async`` to collect one reply from each.

Rules:
- A worker that raises sends ``{"error": traceback}`` instead of a reply; the
  parent's ``gather`` raises ``WorkerError`` with it, so a run never hangs on a
  dead worker and never reports numbers from a partial one.
- Workers are daemonic: if the parent dies they die with it. An "exit" that
  comes early (the parent gave up) ends a worker quietly.
- Each worker raises its own open-files soft limit to the hard limit, so one
  process can hold thousands of connections.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import resource
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import trio

from protocol.harness.lean import Loop


class WorkerError(RuntimeError):
    """A worker failed or did not answer in time."""


class _Exit(Exception):
    """The parent said "exit" before the worker was done: it is giving up on the run."""


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Control:
    """The worker's end of its pipe."""

    def __init__(self, conn: mp.connection.Connection) -> None:
        self._conn = conn

    def fileno(self) -> int:
        """The pipe's descriptor: readable when the parent has said something
        (an asyncio worker waits on it with ``add_reader``)."""
        return self._conn.fileno()

    def reply(self, **data: Any) -> None:
        self._conn.send(data)

    def wait(self, loop: Loop | None = None, timeout: float = 3600.0) -> Any:
        """The parent's next command; ``loop`` keeps running until it arrives."""
        if loop is not None:
            loop.run_until(self._conn.poll, timeout)
        if not self._conn.poll(0 if loop is not None else timeout):
            raise WorkerError("no word from the parent")
        command = self._conn.recv()
        if command == "exit":
            raise _Exit
        return command

    def finish(self, loop: Loop, timeout: float = 30.0) -> None:
        """Serve ``loop`` until the parent says "exit", then close every connection politely."""
        try:
            self.wait(loop)
        except _Exit:
            pass
        loop.close_all(timeout)


def _worker_main(
    conn: mp.connection.Connection, fn: Callable[..., None], args: tuple[Any, ...]
) -> None:
    raise_open_files_limit()
    try:
        fn(Control(conn), *args)
    except _Exit:
        pass
    except BaseException:  # report, never leave the parent waiting
        try:
            conn.send({"error": traceback.format_exc()})
        except OSError:
            pass


class Workers:
    """A few worker processes running ``fn(control, *args)``, one per args tuple."""

    def __init__(self, fn: Callable[..., None], jobs: Sequence[tuple[Any, ...]]) -> None:
        ctx = mp.get_context("spawn")
        self._pipes: list[mp.connection.Connection] = []
        self._procs: list[Any] = []
        for args in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, fn, args), daemon=True)
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)

    async def __aenter__(self) -> Workers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # In a thread: the workers close their connections politely, and the
        # server answering them may be running in this very trio loop (tests).
        await trio.to_thread.run_sync(self.close)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                total += process_cpu_seconds(pid)
            except OSError:
                pass
        return total

    def send(self, command: Any) -> None:
        for pipe in self._pipes:
            pipe.send(command)

    def gather(self, timeout: float) -> list[dict[str, Any]]:
        """One reply from every worker, in worker order; raises ``WorkerError``."""
        deadline = time.monotonic() + timeout
        replies: list[dict[str, Any]] = []
        for i, pipe in enumerate(self._pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise WorkerError(f"worker {i} did not answer within {timeout:g}s")
            try:
                reply = pipe.recv()
            except EOFError:
                raise WorkerError(f"worker {i} died") from None
            if "error" in reply:
                raise WorkerError(f"worker {i} failed:\n{reply['error']}")
            replies.append(reply)
        return replies

    async def gather_async(self, seconds: float) -> list[dict[str, Any]]:
        """``gather`` from trio; ``seconds`` bounds it (a blocked pipe read cannot be cancelled)."""
        return await trio.to_thread.run_sync(self.gather, seconds)

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send("exit")
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self._pipes:
            pipe.close()


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``parts`` non-empty lists (fewer if too few items)."""
    parts = max(1, min(parts, len(items)))
    return [list(items[i::parts]) for i in range(parts)]
