"""Scenario *plain*: fan-out latency as an outside client sees it, beside the peers.

``bench fanout`` times deliveries with our own lean clients (one epoll loop
per process, the kernel's receive timestamp). This scenario times them the way
an outside harness does, so that its figures can be checked and compared:

- ``--subscribers`` (200) plain WebSocket clients on the ``websockets``
  library (asyncio, one coroutine per connection), spread over ``--procs`` (2)
  processes; every ``--every``-th one (10) takes the time when its coroutine
  got the message, in user space (``time.time_ns()``), so every client-side
  delay (the library, the event loop, the other 19 of every 20 connections in
  the same process, the CPU the server leaves free) is in the figure;
- ``--client lean`` drives the same subscribers with our lean epoll loop
  instead (see ``lean``): then *arrival* (kernel timestamp) and *read* are
  both reported, as ``bench fanout`` does;
- one publisher, a process of its own, sends ``--rate`` (100) stamped
  messages/s into one room, after ``--warmup`` unmeasured ones.

Targets, measured one after the other in the same run (``--rounds`` repeats
the sequence, interleaved, so that drift on a shared host shows):

- ``project``: the server under test (spawned, or ``--url``); subscribers and
  publisher sign in over REST, ``hello`` on the socket, post with
  ``msg.send``, read ``msg.new``;
- ``ws``, ``trio``, ``nats``: the bare broadcasters of ``--peers DIR``
  (``ws_broadcast.py``, ``trio_raw_broadcast.py``, ``nats.conf``; default
  env ``BENCH_PEERS_DIR``), spawned here on a free port (NATS on the port its
  config names). They relay raw bytes; NATS speaks its text protocol
  (``SUB``/``PUB``/``MSG``) over WebSocket.

The report gives each target's p50/p95/p99/max, whether every subscriber got
every message (``complete``), the CPU the target and the harness spent, and
the project's p50/p99 as a ratio to each peer's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from protocol import codec, frames
from protocol.harness import lean
from protocol.harness.report import Meter, ns_to_ms
from protocol.harness.server import ServerProcess, Target, free_port, profile
from protocol.harness.users import create_group, create_users, note
from protocol.harness.workers import Control, Workers, split
from protocol.version import PROTOCOL_VERSION

NAME = "plain"
HELP = "fan-out latency timed by plain WebSocket clients, the project beside bare peers"
PEERS = ("ws", "trio", "nats")
NATS_SUBJECT = "bench"
# Seconds a run waits for stragglers (deliveries, acks) after the last message was sent.
GRACE = 15.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subscribers", type=int, default=200, help="subscribers (default 200)")
    p.add_argument("--every", type=int, default=10, help="time every n-th subscriber (default 10)")
    p.add_argument("--rate", type=float, default=100.0, help="messages/s, > 0 (default 100)")
    p.add_argument("--messages", type=int, default=1000, help="measured messages (default 1000)")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured messages first (default 20)")
    p.add_argument("--payload", type=int, default=32, help="text bytes after the stamp")
    p.add_argument(
        "--targets",
        default="",
        help="comma-separated, in order: project,ws,trio,nats "
        "(default: project, then the peers --peers holds)",
    )
    p.add_argument(
        "--peers",
        default=os.environ.get("BENCH_PEERS_DIR", ""),
        help="directory of the peer servers (default env BENCH_PEERS_DIR)",
    )
    p.add_argument("--rounds", type=int, default=1, help="repeat the target sequence (default 1)")
    p.add_argument(
        "--client",
        choices=("websockets", "lean"),
        default="websockets",
        help="subscriber clients: plain websockets coroutines (default) or our lean epoll loop",
    )


# ----- what goes over the wire ------------------------------------------------------


def stamped(index: int, pad: str) -> str:
    """A message text: the sender's wall clock (ns), the message's index, padding."""
    return f"{time.time_ns()} {index:08d} {pad}"


def parse_stamp(text: bytes | str) -> tuple[int, int] | None:
    """(sent_ns, index) at the head of a stamped text, or None."""
    if isinstance(text, str):
        text = text.encode()
    if len(text) < 28 or text[19:20] != b" ":
        return None
    try:
        return int(text[:19]), int(text[20:28])
    except ValueError:
        return None


class _Envelope(msgspec.Struct):
    t: str
    d: msgspec.Raw = msgspec.Raw()


class _Msg(msgspec.Struct):
    text: str = ""


_decode_envelope = msgspec.msgpack.Decoder(_Envelope).decode
_decode_msg = msgspec.msgpack.Decoder(_Msg).decode


def project_stamps(data: bytes) -> list[tuple[int, int]]:
    """The stamp of a ``msg.new`` frame (nothing for any other frame)."""
    env = _decode_envelope(data)
    if env.t != "msg.new":
        return []
    got = parse_stamp(_decode_msg(env.d).text)
    return [got] if got else []


class NatsParser:
    """The stamps of the ``MSG`` operations in a NATS byte stream; PINGs to answer."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pings = 0

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self.buf += data
        out: list[tuple[int, int]] = []
        buf = self.buf
        while True:
            end = buf.find(b"\r\n")
            if end < 0:
                break
            line = bytes(buf[:end])
            if line.startswith(b"MSG "):
                size = int(line.rsplit(b" ", 1)[1])
                if len(buf) < end + 2 + size + 2:
                    break
                got = parse_stamp(bytes(buf[end + 2 : end + 2 + size]))
                if got:
                    out.append(got)
                del buf[: end + 2 + size + 2]
                continue
            if line == b"PING":
                self.pings += 1
            del buf[: end + 2]
        return out


# ----- targets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One server to measure: how to reach it and what it speaks."""

    name: str
    kind: str  # project | raw | nats
    url: str  # ws://...
    process: ServerProcess | None
    subscriber_tokens: tuple[str, ...] = ()
    publisher_token: str = ""
    room: str = ""


def _wait_listening(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0, errors: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            # The peers need their own packages (websockets, uvloop): say which one is missing.
            said = errors.read_text(errors="replace").strip()[-400:] if errors else ""
            raise RuntimeError(f"peer exited with {proc.returncode}: {said or 'no output'}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"peer did not listen on {port} within {timeout:g}s")


@contextlib.contextmanager
def spawn_peer(name: str, peers: Path) -> Iterator[Endpoint]:
    """Run one bare broadcaster of ``peers`` until the block ends."""
    if name == "nats":
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        conf = peers / "nats.conf"
        port = _nats_ws_port(conf)
        cmd, kind = [exe, "-c", str(conf)], "nats"
    else:
        script = {"ws": "ws_broadcast.py", "trio": "trio_raw_broadcast.py"}[name]
        port = free_port()
        cmd, kind = [sys.executable, str(peers / script), str(port)], "raw"
    errors = tempfile.NamedTemporaryFile(prefix=f"peer-{name}-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=peers, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        _wait_listening(port, proc, errors=Path(errors.name))
        yield Endpoint(name, kind, f"ws://127.0.0.1:{port}", ServerProcess(proc.pid))
    finally:
        errors.close()
        Path(errors.name).unlink(missing_ok=True)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _nats_ws_port(conf: Path) -> int:
    text = conf.read_text()
    block = text[text.index("websocket") :]
    listen = block[block.index("listen") :].split('"')[1]
    return int(listen.rsplit(":", 1)[1])


# ----- the worker processes ----------------------------------------------------------


async def _parent_word(control: Control) -> Any:
    """The parent's next word, without blocking the event loop meanwhile."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = control.fileno()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return control.wait(None, 0.0)


async def _open(endpoint: Endpoint, token: str, patience: float) -> Any:
    """A connected plain client, signed in and subscribed, ready to read."""
    import websockets.asyncio.client as wsclient

    ws = await wsclient.connect(
        endpoint.url + ("/ws" if endpoint.kind == "project" else ""),
        compression=None,
        max_size=None,
        ping_interval=None,
        open_timeout=patience,
    )
    if endpoint.kind == "project":
        hello = frames.Hello(id=1, d=frames.HelloData(token=token, v=PROTOCOL_VERSION))
        await ws.send(codec.encode(hello))
        while True:
            env = _decode_envelope(await ws.recv(decode=False))
            if env.t == "resume.done":
                break
            if env.t == "err":
                raise RuntimeError(f"hello refused: {env}")
    elif endpoint.kind == "nats":
        await ws.send(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        if token:  # subscribers subscribe; the publisher only publishes
            await ws.send(f"SUB {NATS_SUBJECT} 1\r\nPING\r\n".encode())
            buf = b""
            while b"PONG" not in buf:  # the SUB is in place once the PING is answered
                got = await ws.recv()
                buf += got.encode() if isinstance(got, str) else got
    return ws


async def _subscribe(
    control: Control,
    endpoint: Endpoint,
    subs: list[tuple[str, bool]],
    total: int,
    warmup: int,
    rate: float,
    patience: float,
) -> None:
    samples: list[int] = []
    counts = [0] * len(subs)
    done = asyncio.Event()
    left = len(subs)
    errors: list[str] = []

    async def one(i: int, ws: Any, timed: bool) -> None:
        nonlocal left
        nats = NatsParser() if endpoint.kind == "nats" else None
        try:
            while counts[i] < total:
                data = await ws.recv()
                now = time.time_ns()
                if isinstance(data, str):
                    data = data.encode()
                if nats is not None:
                    got = nats.feed(data)
                    if nats.pings:
                        nats.pings = 0
                        await ws.send(b"PONG\r\n")
                elif endpoint.kind == "project":
                    got = project_stamps(data)
                else:
                    got = [s] if (s := parse_stamp(data)) else []
                for sent, index in got:
                    counts[i] += 1
                    if timed and index >= warmup:
                        samples.append(now - sent)
        except Exception as exc:  # reported: a run with a lost subscriber is incomplete
            errors.append(repr(exc))
        finally:
            left -= 1
            if not left:
                done.set()

    sem = asyncio.Semaphore(50)

    async def connect(token: str) -> Any:
        async with sem:
            return await _open(endpoint, token or "x", patience)

    conns = await asyncio.gather(*(connect(t) for t, _ in subs))
    control.reply(connected=len(conns))
    await _parent_word(control)  # "go"
    # Bounded: the publisher's run, then a grace for stragglers; a lost
    # delivery makes the run incomplete instead of hanging it.
    patience = total / rate + GRACE
    tasks = [
        asyncio.ensure_future(one(i, ws, timed))
        for i, (ws, (_, timed)) in enumerate(zip(conns, subs, strict=True))
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), patience)
    for task in tasks:
        task.cancel()
    control.reply(
        deliveries=sum(counts),
        expected=total * len(subs),
        samples=samples,
        first_error=errors[0] if errors else "",
    )
    await _parent_word(control)  # "exit" ends the worker (Control raises)


def _subscriber_worker(
    control: Control,
    endpoint: Endpoint,
    subs: list[tuple[str, bool]],
    total: int,
    warmup: int,
    rate: float,
    timeout: float,
) -> None:
    asyncio.run(_subscribe(control, endpoint, subs, total, warmup, rate, timeout))


async def _publish(
    control: Control,
    endpoint: Endpoint,
    messages: int,
    warmup: int,
    rate: float,
    pad: str,
    patience: float,
) -> None:
    ws = await _open(endpoint, endpoint.publisher_token, patience)
    acked = 0
    all_acked = asyncio.Event()
    total = warmup + messages

    async def read_acks() -> None:
        nonlocal acked
        async for data in ws:
            if _decode_envelope(data).t == "ok":
                acked += 1
                if acked == total:
                    all_acked.set()

    async def send(i: int) -> None:
        text = stamped(i, pad)
        if endpoint.kind == "project":
            # Fresh cids every run: a repeated cid is a resend, answered, not fanned out.
            d = frames.SendData(room=endpoint.room, cid=f"{run}-{i}", text=text)
            await ws.send(codec.encode(frames.Send(id=i + 2, d=d)))
        elif endpoint.kind == "nats":
            body = text.encode()
            await ws.send(b"PUB %s %d\r\n%s\r\n" % (NATS_SUBJECT.encode(), len(body), body))
        else:
            await ws.send(text.encode())

    run = os.urandom(4).hex()
    reader = asyncio.ensure_future(read_acks()) if endpoint.kind == "project" else None
    control.reply(ready=True)
    await _parent_word(control)  # "go"
    loop = asyncio.get_running_loop()
    # Warm-up: the first message may start the room; let it settle before the clock starts.
    for i in range(warmup):
        await send(i)
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(0.5)
    start = loop.time()
    for i in range(warmup, total):
        await asyncio.sleep(max(0.0, start + (i - warmup) / rate - loop.time()))
        await send(i)
    if reader is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_acked.wait(), GRACE)
        reader.cancel()
    control.reply(acked=acked if reader is not None else None)
    await _parent_word(control)


def _publisher_worker(
    control: Control,
    endpoint: Endpoint,
    messages: int,
    warmup: int,
    rate: float,
    pad: str,
    timeout: float,
) -> None:
    asyncio.run(_publish(control, endpoint, messages, warmup, rate, pad, timeout))


def _lean_worker(
    control: Control,
    endpoint: Endpoint,
    subs: list[tuple[str, bool]],
    total: int,
    warmup: int,
    rate: float,
    timeout: float,
) -> None:
    """The same subscribers on our lean epoll loop: every delivery timed twice."""
    host, port = endpoint.url.removeprefix("ws://").rsplit(":", 1)
    speaks = "project" if endpoint.kind == "project" else endpoint.kind
    loop = lean.Loop(host, int(port), speaks=speaks)
    conns = [lean.LeanConn(token or "x") for token, _ in subs]
    loop.connect_all(conns, concurrency=100, timeout=timeout)
    if loop.live != len(conns):
        raise RuntimeError(f"{loop.live}/{len(conns)} connected: {loop.summary()['first_error']}")
    control.reply(connected=loop.live)
    control.wait(loop)  # "go"
    # Warm-up deliveries are counted, then forgotten (the publisher pauses after them).
    loop.run_until(lambda: loop.msgs >= warmup * len(conns) or loop.ended > 0, timeout)
    loop.reset_counters()
    expected = (total - warmup) * len(conns)
    loop.run_until(lambda: loop.msgs >= expected or loop.ended > 0, total / rate + GRACE)
    summary = loop.summary()
    control.reply(
        deliveries=summary["msgs"] + warmup * len(conns),
        expected=total * len(conns),
        samples=loop.arrival_ns,
        read_samples=loop.read_ns,
        first_error=summary["first_error"],
    )
    control.finish(loop)


# ----- the run ----------------------------------------------------------------------


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    names = [n.strip() for n in args.targets.split(",") if n.strip()] if args.targets else []
    peers = Path(args.peers) if args.peers else None
    if not names:
        names = ["project", *(PEERS if peers else ())]
    if args.rate <= 0:
        raise SystemExit("--rate must be above 0: this scenario measures latency at a steady load")
    for name in names:
        if name not in ("project", *PEERS):
            raise SystemExit(f"unknown target {name!r} (project, ws, trio, nats)")
        if name in PEERS and peers is None:
            raise SystemExit(f"target {name!r} needs --peers DIR (or env BENCH_PEERS_DIR)")

    project: Endpoint | None = None
    if "project" in names:
        async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
            users = await create_users(http, args.subscribers + 1)
            room = await create_group(http, users[0], users[1:])
        project = Endpoint(
            "project",
            "project",
            f"ws://{target.host}:{target.port}",
            target.process,
            tuple(u.token for u in users[1:]),
            users[0].token,
            room,
        )

    results: dict[str, Any] = {
        "client": args.client,
        "subscribers": args.subscribers,
        "timed_every": args.every,
        "rate": args.rate,
        "messages": args.messages,
        "procs": args.procs,
    }
    pooled: dict[str, list[int]] = {name: [] for name in names}
    for round_ in range(max(1, args.rounds)):
        for name in names:
            key = name if args.rounds <= 1 else f"{name}#{round_ + 1}"
            note(f"plain: {key}")
            if name == "project":
                assert project is not None
                results[key] = await _measure(project, args, pooled[name])
            else:
                assert peers is not None
                with spawn_peer(name, peers) as endpoint:
                    results[key] = await _measure(endpoint, args, pooled[name])
    if args.rounds > 1:
        # Every round's samples together: the figure to compare across targets.
        results["pooled_ms"] = {name: ns_to_ms(samples) for name, samples in pooled.items()}
    results["ratios"] = _ratios(results, names, args.rounds)
    return results


async def _measure(
    endpoint: Endpoint, args: argparse.Namespace, keep: list[int] | None = None
) -> dict[str, Any]:
    """One target, one round; its timed samples (ns) are added to ``keep`` too."""
    total = args.warmup + args.messages
    tokens = endpoint.subscriber_tokens or ("",) * args.subscribers
    # Every --every-th subscriber is timed (lean: every delivery, by the kernel's clock).
    subs = [(t, i % max(1, args.every) == 0) for i, t in enumerate(tokens)]
    worker = _lean_worker if args.client == "lean" else _subscriber_worker
    jobs = [
        (endpoint, part, total, args.warmup, args.rate, args.timeout)
        for part in split(subs, args.procs)
    ]
    pad = "x" * args.payload
    async with Workers(worker, jobs) as subscribers:
        await subscribers.gather_async(args.timeout)
        pub_job = (endpoint, args.messages, args.warmup, args.rate, pad, args.timeout)
        async with Workers(_publisher_worker, [pub_job]) as publisher:
            await publisher.gather_async(args.timeout)
            meter = Meter(endpoint.process, lambda: [*subscribers.pids, *publisher.pids])
            # --profile samples the project only (the peers are not ours to tune).
            sampled = endpoint.process if endpoint.kind == "project" else None
            with profile(sampled, args.profile):
                meter.start()
                subscribers.send("go")
                publisher.send("go")
                replies = await subscribers.gather_async(total / args.rate + 2 * GRACE)
                usage = meter.stop()
            (published,) = await publisher.gather_async(2 * GRACE)
    samples = [x for r in replies for x in r["samples"]]
    if keep is not None:
        keep.extend(samples)
    deliveries = sum(r["deliveries"] for r in replies)
    expected = sum(r["expected"] for r in replies)
    acked = published["acked"]
    out: dict[str, Any] = {
        "deliveries": deliveries,
        "expected": expected,
        "complete": deliveries == expected and acked in (None, total),
        "first_error": next((r["first_error"] for r in replies if r["first_error"]), ""),
        "latency_ms": ns_to_ms(samples),
    }
    if args.client == "lean":
        out["read_latency_ms"] = ns_to_ms([x for r in replies for x in r["read_samples"]])
    return {**out, **usage.as_dict()}


def _ratios(results: dict[str, Any], names: list[str], rounds: int) -> dict[str, Any]:
    """The project's p50 and p99 over each peer's, round by round, and their
    median over the rounds (on a shared host one round can be an outlier)."""
    ratios: dict[str, Any] = {}
    if "project" not in names:
        return ratios
    per_peer: dict[str, list[float]] = {}
    for round_ in range(max(1, rounds)):
        suffix = "" if rounds <= 1 else f"#{round_ + 1}"
        mine = results["project" + suffix]["latency_ms"]
        for peer in names:
            theirs = results.get(peer + suffix, {}).get("latency_ms")
            if peer == "project" or not theirs or not mine:
                continue
            for q in ("p50", "p99"):
                if theirs[q]:
                    ratio = round(mine[q] / theirs[q], 2)
                    ratios[f"{q}_vs_{peer}{suffix}"] = ratio
                    per_peer.setdefault(f"{q}_vs_{peer}", []).append(ratio)
    if rounds > 1:
        for key, values in per_peer.items():
            ratios[f"{key}_median"] = statistics.median(values)
        pooled = results.get("pooled_ms", {})
        mine = pooled.get("project")
        for peer in names:
            theirs = pooled.get(peer)
            if peer == "project" or not theirs or not mine:
                continue
            for q in ("p50", "p99"):
                if theirs[q]:
                    ratios[f"{q}_vs_{peer}_pooled"] = round(mine[q] / theirs[q], 2)
    return ratios
