"""Scenario *ai*: what the server adds per streamed delta, against the provider called directly.

Processes on one host: the local OpenAI-compatible provider
(``protocol.harness.openai_local``, a lean one-thread epoll server, model
``stamped``), the server under test (its only provider is that one), and
harness worker processes. Each delta's text is ``t<ns>``: the provider's
``time.time_ns()`` when it sent it, one clock for every process on the host.

For each concurrency level N (default 1, 50, 200), in one run, three phases
one after the other, each with the machine to itself:

- *openai*: N concurrent streams from the official ``openai`` client
  (``chat.completions.create(stream=True)``, the usual way) straight to the
  provider, in ``--procs`` worker processes. Latency is taken when the
  application gets the chunk: it includes the SDK's own work per chunk.
- *wire*: the same N streams read by a lean raw-socket SSE client (one epoll
  per worker, the kernel's receive timestamp per read): provider to client
  socket with no relay and no SDK, the floor.
- *project*: N users, each with its own AI conversation and socket (lean
  MessagePack WebSocket clients, several worker processes), ask at once; the
  server streams the provider's deltas to them as ``ai.delta``. Latency is
  the kernel's receive timestamp of the frame minus the provider's stamp.

*Added* per delta = project minus wire, at p50 and p99: what the relay costs
a delta, with no client-side parsing on either side (the harness's own
delay is reported apart, as ``read``). Added against the ``openai`` client is
printed too: what an app sees when it uses the socket instead of the SDK; at
high concurrency the SDK saturates the machine on its own (its CPU per chunk
is reported), and that comparison stops meaning anything.

Server CPU is read from ``/proc/<pid>/stat`` of the server process only:
for the whole phase (asks, storing the prompts and answers included) and over
the steady window in which every stream is streaming (sampled every 50 ms;
the deltas that arrived in that window divide it). The provider's and the
harness's CPU are reported beside it, so a saturated harness shows.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import selectors
import socket
import struct
import sys
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
import trio.lowlevel

from protocol import codec
from protocol.frames_ai import AiAsk, AiAskData
from protocol.harness.lean import SO_TIMESTAMPNS, LeanConn, Loop, _Envelope, masked_frame
from protocol.harness.report import Meter, ns_to_ms
from protocol.harness.server import ServerProcess, Target, profile, spawn_server
from protocol.harness.stamped_server import WARM_UP
from protocol.harness.users import BenchUser, create_users, note
from protocol.harness.workers import Control, Workers, process_cpu_seconds, split

NAME = "ai"
HELP = "AI streaming: added latency per delta vs the provider called directly; CPU per delta"
MODEL = "stamped"
_ANCILLARY = socket.CMSG_SPACE(16)
_STAMP = re.compile(rb'"content":"t(\d+) ')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--levels", default="1,50,200", help="concurrent generations, comma list (default 1,50,200)"
    )
    p.add_argument("--chunks", type=int, default=400, help="deltas per answer (default 400)")
    p.add_argument(
        "--interval",
        type=float,
        default=0.005,
        help="seconds between a stream's deltas (default 0.005: 200 deltas/s per stream)",
    )
    p.add_argument(
        "--baseline",
        metavar="DIR",
        help="also relay through a second server whose code is imported from DIR (e.g. "
        "`git archive main | tar -x -C DIR`), phase by phase in the same run: old vs new",
    )
    p.add_argument(
        "--skip-openai",
        action="store_true",
        help="leave out the direct openai client phase (it saturates the machine at high N)",
    )


@contextmanager
def server_env(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """Start the provider process; the spawned server gets it as its only provider."""
    import subprocess

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "protocol.harness.openai_local",
            "--chunks",
            str(args.chunks),
            "--interval",
            str(args.interval),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        args.provider_url = f"http://127.0.0.1:{port}/v1"
        args.provider_pid = proc.pid
        args.server_env = {
            "AI_PROVIDERS": (
                f'{{"local": {{"base_url": "{args.provider_url}", "api_key": "k",'
                f' "models": ["{MODEL}"]}}}}'
            ),
            "AI_DEFAULT_MODEL": MODEL,
            "AI_MAX_GENERATIONS": "100000",
            "PLAN_FREE_AI_MONTHLY": "1000000",
            "PLAN_FREE_AI_DAILY": "1000000",
            "PLAN_FREE_MODELS": "*",
        }
        yield args.server_env
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _stamp(text: str) -> int:
    return int(text[1:]) if text.startswith("t") and text[1:2].isdigit() else 0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ----- phase 1: the official openai client ----------------------------------------


def _openai_worker(control: Control, url: str, n: int, timeout: float) -> None:
    trio.run(_openai_streams, control, url, n, timeout)


async def _openai_streams(control: Control, url: str, n: int, seconds: float) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0, timeout=seconds)
    lat: list[int] = []
    first: list[int] = []
    counts: list[int] = []

    async def one(i: int, prompt: str, measure: bool) -> None:
        t0 = time.time_ns()
        got = 0
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            now = time.time_ns()
            if not chunk.choices or not chunk.choices[0].delta.content:
                continue
            sent = _stamp(chunk.choices[0].delta.content)
            if sent and measure:
                if got == 0:
                    first.append(now - t0)
                lat.append(now - sent)
            got += 1
        if measure:
            counts.append(got)

    async with trio.open_nursery() as nursery:  # connections and imports, unmeasured
        for i in range(n):
            nursery.start_soon(one, i, WARM_UP, False)
    control.reply(ready=True)
    await trio.to_thread.run_sync(control.wait)
    cpu0 = _cpu()
    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i, f"q{i}", True)
    cpu = _cpu() - cpu0
    await client.close()
    control.reply(lat=lat, first=first, counts=counts, cpu_s=cpu)


# ----- phase 2: the wire, read by a lean SSE client --------------------------------


@dataclass(eq=False)
class _SseStream:
    sock: socket.socket
    request: bytes
    measure: bool
    t0: int = 0
    carry: bytes = b""
    got: int = 0
    done: bool = False


def _sse_request(host: str, port: int, prompt: str) -> bytes:
    body = msgspec.json.encode(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: %b:%d\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (host.encode(), port, len(body), body)
    )


def _sse_round(
    host: str, port: int, n: int, prompt: str, timeout: float, measure: bool
) -> dict[str, Any]:
    sel = selectors.EpollSelector()
    arrival: list[int] = []
    read: list[int] = []
    first: list[int] = []
    streams = []
    for _ in range(n):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        s = _SseStream(sock, _sse_request(host, port, prompt), measure)
        streams.append(s)
        sel.register(sock, selectors.EVENT_READ, s)
    for s in streams:
        s.t0 = time.time_ns()
        s.sock.sendall(s.request)
    left = n
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            s = key.data
            data, ancillary, _, _ = s.sock.recvmsg(1 << 18, _ANCILLARY)
            now = time.time_ns()
            at = now
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack_from("qq", value)
                    at = sec * 1_000_000_000 + nsec
            buf = s.carry + data
            end = 0
            for m in _STAMP.finditer(buf):
                sent = int(m.group(1))
                if s.measure:
                    if s.got == 0:
                        first.append(at - s.t0)
                    arrival.append(at - sent)
                    read.append(now - sent)
                s.got += 1
                end = m.end()
            if b"data: [DONE]" in buf or not data:
                s.done = True
                left -= 1
                sel.unregister(s.sock)
                continue
            s.carry = buf[max(end, len(buf) - 200) :]
    for s in streams:
        s.sock.close()
    sel.close()
    return {
        "arrival": arrival,
        "read": read,
        "first": first,
        "counts": [s.got for s in streams if s.done],
    }


def _wire_worker(control: Control, host: str, port: int, n: int, timeout: float) -> None:
    _sse_round(host, port, n, WARM_UP, timeout, measure=False)
    control.reply(ready=True)
    control.wait()
    cpu0 = _cpu()
    result = _sse_round(host, port, n, "q", timeout, measure=True)
    control.reply(**result, cpu_s=_cpu() - cpu0)


# ----- phase 3: through the project, lean socket clients ----------------------------


class _Delta(msgspec.Struct):
    i: int
    text: str


class _End(msgspec.Struct):
    n: int = 0
    msg: Any = None
    code: str = ""
    text: str = ""


_decode_delta = msgspec.msgpack.Decoder(_Delta).decode
_decode_end = msgspec.msgpack.Decoder(_End).decode


@dataclass(eq=False)
class _Gen:
    room: str
    ask_id: int = 0
    t0: int = 0
    next_i: int = 0
    in_order: bool = True
    first_at: int = 0
    last_at: int = 0
    ended: bool = False
    stored: bool = False
    error: str = ""


class _AiLoop(Loop):
    """The lean loop, plus the AI frames: ask, and time every ``ai.delta``."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.gens: dict[int, _Gen] = {}  # by id(conn)
        self.measure = False
        # Per delta: arrival - stamp, read - stamp, and the absolute arrival.
        self.arrival: list[int] = []
        self.read: list[int] = []
        self.at: list[int] = []
        self.ended_gens = 0

    def ask(self, conn: LeanConn, text: str) -> None:
        gen = self.gens[id(conn)]
        gen.ask_id = rid = conn.next_id
        conn.next_id += 1
        gen.next_i, gen.in_order, gen.ended, gen.stored = 0, True, False, False
        gen.first_at = gen.last_at = 0
        frame = AiAsk(id=rid, d=AiAskData(room=gen.room, cid=f"c{time.time_ns()}", text=text))
        gen.t0 = time.time_ns()
        self.send(conn, masked_frame(0x2, codec.encode(frame), conn.key))

    def _on_frame(self, conn: LeanConn, env: _Envelope, arrival: int, now: int) -> None:
        t = env.t
        if t == "ai.delta":
            gen = self.gens[id(conn)]
            d = _decode_delta(env.d)
            if d.i != gen.next_i:
                gen.in_order = False
            gen.next_i = d.i + 1
            if not gen.first_at:
                gen.first_at = arrival
            gen.last_at = arrival
            if self.measure:
                sent = _stamp(d.text)
                if sent:
                    self.arrival.append(arrival - sent)
                    self.read.append(now - sent)
                    self.at.append(arrival)
        elif t in ("ai.done", "ai.error"):
            gen = self.gens[id(conn)]
            end = _decode_end(env.d)
            gen.ended = True
            gen.stored = t == "ai.done" and end.msg is not None and end.n == gen.next_i
            if t == "ai.error":
                gen.error = f"{end.code}: {end.text}"
            self.ended_gens += 1
        elif t == "err" and env.re == self.gens[id(conn)].ask_id:
            gen = self.gens[id(conn)]
            gen.ended, gen.error = True, f"{env.code}: {env.msg}"
            self.ended_gens += 1
        elif t != "ai.start":
            super()._on_frame(conn, env, arrival, now)

    def ask_all(self, text: str, timeout: float) -> bool:
        self.ended_gens = 0
        for conn in self.conns:
            self.ask(conn, text)
        return self.run_until(lambda: self.ended_gens >= len(self.conns), timeout)


def _socket_worker(
    control: Control, host: str, port: int, users: list[tuple[str, str]], timeout: float
) -> None:
    loop = _AiLoop(host, port)
    conns = [LeanConn(token) for token, _ in users]
    for conn, (_, room) in zip(conns, users, strict=True):
        loop.gens[id(conn)] = _Gen(room)
    loop.connect_all(conns, concurrency=100, timeout=timeout)
    if loop.live != len(conns):
        raise RuntimeError(f"{loop.live}/{len(conns)} connected: {loop.summary()['first_error']}")
    loop.ask_all(WARM_UP, timeout)  # rooms, sessions and provider connections, unmeasured
    control.reply(ready=True)
    control.wait(loop)
    loop.measure = True
    cpu0 = _cpu()
    loop.ask_all("q", timeout)
    cpu = _cpu() - cpu0
    gens = [loop.gens[id(c)] for c in conns]
    control.reply(
        arrival=loop.arrival,
        read=loop.read,
        at=loop.at,
        first=[g.first_at - g.t0 for g in gens if g.first_at],
        starts=[g.first_at for g in gens if g.first_at],
        ends=[g.last_at for g in gens if g.last_at],
        counts=[g.next_i for g in gens if g.ended],
        stored=sum(g.stored for g in gens),
        in_order=sum(g.in_order for g in gens),
        errors=[g.error for g in gens if g.error][:3],
        cpu_s=cpu,
    )
    control.finish(loop)


# ----- the run ----------------------------------------------------------------------


def _cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        return process_cpu_seconds(pid)
    except OSError:
        return 0.0


class ThreadCpu:
    """A process's CPU time in nanoseconds, from each thread's ``schedstat``.

    ``/proc/<pid>/stat`` counts 10 ms ticks: too coarse for one stream's few
    dozen milliseconds. ``/proc/<pid>/task/<tid>/schedstat`` counts
    nanoseconds per thread; a thread that ends keeps the last value sampled.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._first: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._sampled = False

    def sample(self) -> int:
        """CPU ns used by the process since the first sample."""
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            # A thread born after the first sample spent all its time in the phase.
            self._first.setdefault(tid, ns if not self._sampled else 0)
            self._last[tid] = ns
        self._sampled = True
        return sum(self._last[t] - self._first[t] for t in self._last)


async def _phase(
    fn: Callable[..., None],
    jobs: list[tuple[Any, ...]],
    server: ServerProcess | None,
    provider_pid: int | None,
    seconds: float,
    profile_to: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one phase: workers warm up, then go at once; CPU of every party."""
    samples: list[tuple[int, float]] = []
    async with Workers(fn, jobs) as workers:
        await workers.gather_async(seconds)
        meter = Meter(server, lambda: workers.pids)
        provider0 = _cpu_of(provider_pid)
        cpu = ThreadCpu(server.pid) if server is not None else None
        with profile(server, profile_to):
            meter.start()
            async with trio.open_nursery() as nursery:
                if cpu is not None:
                    nursery.start_soon(_sample_cpu, cpu, samples)
                    await trio.lowlevel.checkpoint()  # the first sample before the go
                workers.send("go")
                replies = await workers.gather_async(seconds)
                nursery.cancel_scope.cancel()
            if cpu is not None:
                samples.append((time.time_ns(), cpu.sample() / 1e9))
            usage = meter.stop()
    out = usage.as_dict()
    if samples:
        # The server's CPU from its threads' nanosecond counters (see ThreadCpu).
        out["server_cpu_s"] = samples[-1][1]
        out["server_cores"] = round(samples[-1][1] / usage.wall_s, 2) if usage.wall_s else None
    return replies, {
        **out,
        "provider_cpu_s": round(_cpu_of(provider_pid) - provider0, 2),
        "cpu_samples": samples,
    }


async def _sample_cpu(cpu: ThreadCpu, samples: list[tuple[int, float]]) -> None:
    while True:
        samples.append((time.time_ns(), cpu.sample() / 1e9))
        await trio.sleep(0.05)


def _cpu_at(samples: list[tuple[int, float]], t: int) -> float:
    """The server's CPU seconds at ``t``, interpolated between the samples around it."""
    times = [s[0] for s in samples]
    i = bisect_left(times, t)
    if i <= 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def _steady_cpu_per_delta(
    samples: list[tuple[int, float]], starts: list[int], ends: list[int], at: list[int]
) -> tuple[float | None, float]:
    """µs of server CPU per delta over the window where every stream is streaming."""
    if len(samples) < 2 or not starts or not ends:
        return None, 0.0
    lo, hi = max(starts), min(ends)
    if hi - lo < 200_000_000:  # under 0.2 s: a few samples, not a window
        return None, 0.0
    ordered = sorted(at)
    deltas = bisect_right(ordered, hi) - bisect_left(ordered, lo)
    cpu = _cpu_at(samples, hi) - _cpu_at(samples, lo)
    return (round(1e6 * cpu / deltas, 1) if deltas else None), round((hi - lo) / 1e9, 2)


def _direct_summary(
    replies: list[dict[str, Any]], usage: dict[str, Any], n: int, chunks: int, key: str
) -> dict[str, Any]:
    lat = [x for r in replies for x in r[key]]
    counts = [c for r in replies for c in r["counts"]]
    cpu = sum(r["cpu_s"] for r in replies)
    out = {
        "delta_ms": ns_to_ms(lat),
        "first_delta_ms": ns_to_ms([x for r in replies for x in r["first"]]),
        "complete": f"{sum(c == chunks for c in counts)}/{n}",
        "client_us_per_delta": round(1e6 * cpu / len(lat), 1) if lat else None,
        "client_cores": round(cpu / usage["wall_s"], 2) if usage["wall_s"] else None,
        "provider_cpu_s": usage["provider_cpu_s"],
        "wall_s": usage["wall_s"],
    }
    if key == "arrival":
        out["read_delta_ms"] = ns_to_ms([x for r in replies for x in r["read"]])
    return out


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    url = getattr(args, "provider_url", None)
    if url is None:
        raise SystemExit("bench ai spawns its own provider: run it without --url")
    provider_pid = getattr(args, "provider_pid", None)
    users = await _ai_users(target, max(levels))
    with ExitStack() as stack:
        base: tuple[Target, list[tuple[BenchUser, str]]] | None = None
        if args.baseline:
            note(f"baseline server: code from {args.baseline}")
            env = {**args.server_env, "PYTHONPATH": str(Path(args.baseline).resolve())}  # noqa: ASYNC240
            base_target = stack.enter_context(spawn_server(args.database, env))
            base = (base_target, await _ai_users(base_target, max(levels)))
        return await _levels(args, levels, url, provider_pid, target, users, base)


async def _ai_users(target: Target, n: int) -> list[tuple[BenchUser, str]]:
    """``n`` fresh users, each with its own AI conversation (a room of kind "ai")."""
    async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
        note(f"registering {n} users, one AI conversation each")
        accounts = await create_users(http, n)
        users: list[tuple[BenchUser, str]] = []
        for u in accounts:
            r = await http.post(
                "/ai/conversations",
                json={"title": "bench"},
                headers={"Authorization": f"Bearer {u.token}"},
            )
            r.raise_for_status()
            users.append((u, r.json()["conversation"]["id"]))
    return users


async def _levels(
    args: argparse.Namespace,
    levels: list[int],
    url: str,
    provider_pid: int | None,
    target: Target,
    users: list[tuple[BenchUser, str]],
    base: tuple[Target, list[tuple[BenchUser, str]]] | None,
) -> dict[str, Any]:
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80
    procs = max(1, args.procs)
    result: dict[str, Any] = {
        "chunks": args.chunks,
        "interval_ms": args.interval * 1000,
        "deltas_per_s_per_stream": round(1 / args.interval, 1) if args.interval else None,
        "procs": procs,
    }
    timeout = args.timeout
    rows: list[tuple[int, dict[str, Any]]] = []
    jobs: list[tuple[Any, ...]]
    for n in levels:
        level: dict[str, Any] = {}
        if not args.skip_openai:
            note(f"{n} concurrent generations: direct, official openai client")
            jobs = [(url, len(part), timeout) for part in split(range(n), procs)]
            replies, usage = await _phase(_openai_worker, jobs, None, provider_pid, timeout)
            level["openai"] = _direct_summary(replies, usage, n, args.chunks, "lat")
        note(f"{n} concurrent generations: direct, lean SSE reader (the floor)")
        jobs = [(host, port, len(part), timeout) for part in split(range(n), procs)]
        replies, usage = await _phase(_wire_worker, jobs, None, provider_pid, timeout)
        level["wire"] = _direct_summary(replies, usage, n, args.chunks, "arrival")
        if base is not None:
            note(f"{n} concurrent generations: through the baseline server")
            base_target, base_users = base
            jobs = [
                (base_target.host, base_target.port, [(u.token, r) for u, r in part], timeout)
                for part in split(base_users[:n], procs)
            ]
            replies, usage = await _phase(
                _socket_worker, jobs, base_target.process, provider_pid, timeout
            )
            level["baseline"] = _project_summary(replies, usage, n, args.chunks)
            level["baseline_added_ms"] = _added(level["baseline"], level["wire"], "delta_ms")
        note(f"{n} concurrent generations: through the project to socket clients")
        # --profile samples the server during the last level's relay phase.
        profile_to = args.profile if n == levels[-1] else None
        jobs = [
            (target.host, target.port, [(u.token, room) for u, room in part], timeout)
            for part in split(users[:n], procs)
        ]
        replies, usage = await _phase(
            _socket_worker, jobs, target.process, provider_pid, timeout, profile_to
        )
        level["project"] = _project_summary(replies, usage, n, args.chunks)
        level["added_ms"] = _added(level["project"], level["wire"], "delta_ms")
        if base is not None:
            level["baseline_over_project"] = _ratios(level["baseline"], level["project"])
        if "openai" in level:
            level["added_vs_openai_ms"] = _added(level["project"], level["openai"], "read_delta_ms")
        result[f"n{n}"] = level
        rows.append((n, level))
    if not getattr(args, "json", False):
        print(summary_table(result, rows), file=sys.stderr)
    return result


def _project_summary(
    replies: list[dict[str, Any]], usage: dict[str, Any], n: int, chunks: int
) -> dict[str, Any]:
    arrival = [x for r in replies for x in r["arrival"]]
    counts = [c for r in replies for c in r["counts"]]
    deltas = len(arrival)
    server_cpu = usage["server_cpu_s"] or 0.0
    steady, window = _steady_cpu_per_delta(
        usage["cpu_samples"],
        [x for r in replies for x in r["starts"]],
        [x for r in replies for x in r["ends"]],
        [x for r in replies for x in r["at"]],
    )
    harness_cpu = sum(r["cpu_s"] for r in replies)
    return {
        "delta_ms": ns_to_ms(arrival),
        "read_delta_ms": ns_to_ms([x for r in replies for x in r["read"]]),
        "first_delta_ms": ns_to_ms([x for r in replies for x in r["first"]]),
        "complete": f"{sum(c == chunks for c in counts)}/{n}",
        "stored": sum(r["stored"] for r in replies),
        "in_order": sum(r["in_order"] for r in replies),
        "errors": [e for r in replies for e in r["errors"]][:3],
        "server_cpu_s": round(server_cpu, 3),
        "server_us_per_delta": round(1e6 * server_cpu / deltas, 1) if deltas else None,
        "server_us_per_delta_streaming": steady,
        "steady_window_s": window,
        "server_cores": usage["server_cores"],
        "client_us_per_delta": round(1e6 * harness_cpu / deltas, 1) if deltas else None,
        "client_cores": round(harness_cpu / usage["wall_s"], 2) if usage["wall_s"] else None,
        "provider_cpu_s": usage["provider_cpu_s"],
        "deltas_per_s": round(deltas / usage["wall_s"], 1) if usage["wall_s"] else 0.0,
        "wall_s": usage["wall_s"],
    }


def _ratios(old: dict[str, Any], new: dict[str, Any]) -> dict[str, float | None]:
    """old / new for the figures that should fall: above 1 means the new code is better."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    return {
        "p50": ratio(old["delta_ms"].get("p50"), new["delta_ms"].get("p50")),
        "p99": ratio(old["delta_ms"].get("p99"), new["delta_ms"].get("p99")),
        "first_delta_p50": ratio(
            old["first_delta_ms"].get("p50"), new["first_delta_ms"].get("p50")
        ),
        "server_cpu_per_delta": ratio(old["server_us_per_delta"], new["server_us_per_delta"]),
    }


def _added(project: dict[str, Any], direct: dict[str, Any], key: str) -> dict[str, float]:
    src = project[key]
    base = direct["delta_ms"]
    added = {q: round(src.get(q, 0) - base.get(q, 0), 3) for q in ("p50", "p99")}
    added["first_delta_p50"] = round(
        project["first_delta_ms"].get("p50", 0) - direct["first_delta_ms"].get("p50", 0), 3
    )
    return added


def _x(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "-"


def summary_table(result: dict[str, Any], rows: list[tuple[int, dict[str, Any]]]) -> str:
    """The figures side by side, one block per concurrency level."""

    def ms(d: dict[str, Any], q: str) -> str:
        return f"{d[q]:.3f}" if q in d else "-"

    def signed(x: float) -> str:
        return f"{x:+.3f}"

    lines = [
        f"AI relay: {result['chunks']} deltas per answer, one every {result['interval_ms']:g} ms"
        f" per stream ({result['deltas_per_s_per_stream']:g}/s); latency = receive time"
        " minus the provider's send stamp",
        f"{'gens':>5}  {'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'1st p50 ms':>10}"
        f" {'CPU/delta ms':>24} {'complete':>9}  cores: server client provider",
    ]
    for n, level in rows:
        for name, label in (
            ("openai", "direct: openai client (read)"),
            ("wire", "direct: wire (kernel rx)"),
            ("baseline", "baseline: socket (kernel rx)"),
            ("project", "project: socket (kernel rx)"),
        ):
            if name not in level:
                continue
            d = level[name]
            if name in ("project", "baseline"):
                steady = d["server_us_per_delta_streaming"]
                cpu = f"server {d['server_us_per_delta'] / 1000:.3f}" + (
                    f" ({steady / 1000:.3f} st.)" if steady is not None else ""
                )
            else:
                cpu = (
                    f"client {d['client_us_per_delta'] / 1000:.3f}"
                    if d["client_us_per_delta"] is not None
                    else "-"
                )
            wall = d["wall_s"] or 1.0
            cores = (
                f"{d.get('server_cores') or 0:.2f} {d['client_cores'] or 0:.2f}"
                f" {d['provider_cpu_s'] / wall:.2f}"
            )
            lines.append(
                f"{n:>5}  {label:<28} {ms(d['delta_ms'], 'p50'):>8} {ms(d['delta_ms'], 'p99'):>8}"
                f" {ms(d['first_delta_ms'], 'p50'):>10} {cpu:>24} {d['complete']:>9}  {cores}"
            )
        if "baseline_added_ms" in level:
            a = level["baseline_added_ms"]
            lines.append(
                f"{n:>5}  {'added by the baseline':<28} {signed(a['p50']):>8}"
                f" {signed(a['p99']):>8} {signed(a['first_delta_p50']):>10}"
            )
        a = level["added_ms"]
        lines.append(
            f"{n:>5}  {'added by the project':<28} {signed(a['p50']):>8} {signed(a['p99']):>8}"
            f" {signed(a['first_delta_p50']):>10}"
        )
        if "baseline_over_project" in level:
            r = level["baseline_over_project"]
            lines.append(
                f"{n:>5}  {'baseline / project':<28} {_x(r['p50']):>8} {_x(r['p99']):>8}"
                f" {_x(r['first_delta_p50']):>10} {_x(r['server_cpu_per_delta']):>24}"
            )
        if "added_vs_openai_ms" in level:
            a = level["added_vs_openai_ms"]
            lines.append(
                f"{n:>5}  {'socket read vs openai read':<28} {signed(a['p50']):>8}"
                f" {signed(a['p99']):>8} {signed(a['first_delta_p50']):>10}"
            )
    return "\n".join(lines)
