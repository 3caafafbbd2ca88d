"""Scenario *ai*: what the server adds per streamed token, against the provider called directly.

Three processes on one host: the local OpenAI-compatible provider
(``protocol.harness.openai_local``, model ``stamped``), the server under test
(its only provider is that one), and this harness. Each delta's text is
``t<ns>``: the provider's ``perf_counter_ns()`` when it sent it. On Linux that
is CLOCK_MONOTONIC, the same clock in every process, so a delta's latency is
exact: arrival here minus that stamp.

For each concurrency level N (default 1, 50, 200), in one run:

- *direct*: N concurrent streams from the official ``openai`` client
  (``chat.completions.create(stream=True)``, the usual way) straight to the
  provider;
- *server*: N users, each with its own AI conversation and socket, ask at
  once; the server streams the provider's deltas to them as ``ai.delta``.

Reported per level: delta latency p50/p99 both ways and their difference
(the server's added latency), time to first delta, the server's CPU per
relayed delta, and correctness (every delta, in order, and the stored answer).
The provider paces each stream at ``--interval`` on a fixed schedule.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import trio

from protocol.client import Client, open_client
from protocol.frames_ai import AiAsk, AiAskData, AiDelta, AiDone, AiError
from protocol.harness.report import Meter, ns_to_ms
from protocol.harness.server import Target, profile
from protocol.harness.users import BenchUser, create_users, note

NAME = "ai"
HELP = "AI streaming: added latency per delta vs the provider called directly; CPU per delta"
MODEL = "stamped"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--levels", default="1,50,200", help="concurrent generations, comma list (default 1,50,200)"
    )
    p.add_argument("--chunks", type=int, default=100, help="deltas per answer (default 100)")
    p.add_argument(
        "--interval",
        type=float,
        default=0.05,
        help="seconds between a stream's deltas (default 0.05: 20 deltas/s per stream)",
    )


@contextmanager
def server_env(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """Start the provider process; the spawned server gets it as its only provider."""
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
        yield {
            "AI_PROVIDERS": (
                f'{{"local": {{"base_url": "{args.provider_url}", "api_key": "k",'
                f' "models": ["{MODEL}"]}}}}'
            ),
            "AI_DEFAULT_MODEL": MODEL,
            "AI_MAX_GENERATIONS": "100000",
            "PLAN_FREE_AI_MONTHLY": "1000000",
            "PLAN_FREE_MODELS": "*",
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stamp(text: str) -> int | None:
    return int(text[1:]) if text.startswith("t") else None


async def _direct(url: str, n: int, chunks: int) -> dict[str, Any]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0, timeout=120)
    lat: list[int] = []
    first: list[int] = []
    counts: list[int] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter_ns()
        got = 0
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], stream=True
        )
        async for chunk in stream:
            now = time.perf_counter_ns()
            if not chunk.choices or not chunk.choices[0].delta.content:
                continue
            sent = _stamp(chunk.choices[0].delta.content)
            if sent is not None:
                if got == 0:
                    first.append(now - t0)
                lat.append(now - sent)
                got += 1
        counts.append(got)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    await client.close()
    return {
        "delta_ms": ns_to_ms(lat),
        "first_delta_ms": ns_to_ms(first),
        "complete": sum(c == chunks for c in counts),
    }


async def _through_server(
    target: Target, users: list[tuple[BenchUser, str]], chunks: int, profile_to: str | None = None
) -> dict[str, Any]:
    lat: list[int] = []
    first: list[int] = []
    complete = 0
    in_order = 0
    meter = Meter(target.process, lambda: [])

    async def one(client: Client, room: str, i: int) -> None:
        nonlocal complete, in_order
        t0 = time.perf_counter_ns()
        await client.request(
            AiAsk(id=0, d=AiAskData(room=room, cid=f"c{time.time_ns()}", text=f"q{i}"))
        )
        indexes: list[int] = []
        while True:
            frame = await client.next_push()
            now = time.perf_counter_ns()
            if isinstance(frame, AiDelta):
                sent = _stamp(frame.d.text)
                if sent is not None:
                    if not indexes:
                        first.append(now - t0)
                    lat.append(now - sent)
                indexes.append(frame.d.i)
            elif isinstance(frame, AiDone | AiError):
                ok = isinstance(frame, AiDone) and frame.d.msg is not None
                complete += ok and len(indexes) == chunks
                in_order += indexes == list(range(len(indexes)))
                return

    async with trio.open_nursery() as outer:
        clients: list[tuple[Client, str]] = []
        ready = trio.Event()

        async def hold(user: BenchUser, room: str) -> None:
            async with open_client(target.ws_url, user.token, push_buffer=4 * chunks + 64) as c:
                clients.append((c, room))
                if len(clients) == len(users):
                    ready.set()
                await trio.sleep_forever()

        for user, room in users:
            outer.start_soon(hold, user, room)
        await ready.wait()
        for c, _ in clients:  # the handshake's resume.done
            await c.next_push(timeout=10)
        with profile(target.process, profile_to):
            meter.start()
            async with trio.open_nursery() as nursery:
                for i, (c, room) in enumerate(clients):
                    nursery.start_soon(one, c, room, i)
            usage = meter.stop()
        outer.cancel_scope.cancel()
    deltas = len(lat)
    return {
        "delta_ms": ns_to_ms(lat),
        "first_delta_ms": ns_to_ms(first),
        "complete": complete,
        "in_order": in_order,
        "server_cpu_s": round(usage.server_cpu_s or 0.0, 3),
        "server_us_per_delta": round(1e6 * (usage.server_cpu_s or 0.0) / deltas, 1)
        if deltas
        else None,
        "deltas_per_s": round(deltas / usage.wall_s, 1) if usage.wall_s else 0.0,
    }


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    url = getattr(args, "provider_url", None)
    if url is None:
        raise SystemExit("bench ai spawns its own provider: run it without --url")
    async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
        note(f"registering {max(levels)} users")
        accounts = await create_users(http, max(levels))
        users: list[tuple[BenchUser, str]] = []
        for u in accounts:
            r = await http.post(
                "/ai/conversations",
                json={"title": "bench"},
                headers={"Authorization": f"Bearer {u.token}"},
            )
            r.raise_for_status()
            users.append((u, r.json()["conversation"]["id"]))
    result: dict[str, Any] = {
        "chunks": args.chunks,
        "interval_ms": args.interval * 1000,
    }
    note("warm-up: the first request of each path pays for connections and imports")
    await _direct(url, 1, args.chunks)
    await _through_server(target, users[:1], args.chunks)
    for n in levels:
        note(f"{n} concurrent generations: direct")
        direct = await _direct(url, n, args.chunks)
        note(f"{n} concurrent generations: through the server")
        # --profile samples the server during the last level's relay phase.
        profile_to = args.profile if n == levels[-1] else None
        served = await _through_server(target, users[:n], args.chunks, profile_to)
        added = {
            q: round(served["delta_ms"].get(q, 0) - direct["delta_ms"].get(q, 0), 3)
            for q in ("p50", "p99")
        }
        added["first_delta_p50"] = round(
            served["first_delta_ms"].get("p50", 0) - direct["first_delta_ms"].get("p50", 0), 3
        )
        result[f"n{n}"] = {"added_ms": added, "direct": direct, "server": served}
    return result
