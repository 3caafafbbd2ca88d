"""Measure message insert throughput on a database: ``python -m storage.sql.bench URL``.

Two numbers:
- ``insert_messages``: rows/s of direct batch inserts of a fixed size, the
  ceiling the writer can reach.
- ``writer``: acknowledged messages/s through ``MessageWriter`` with many
  rooms, each keeping one batch in flight the way a RoomActor does: submit,
  wait for ``on_done``, submit the next. This is the number that matters.

It writes real rows (fresh users/rooms with random ids) into the database it
is given, after migrating it: point it at a scratch database or schema
(``postgresql://.../test?search_path=bench``, ``sqlite:///tmp/bench.db``).
"""

from __future__ import annotations

import argparse
import time

import trio

from storage.base import Room, RoomMember, Store, StoredMessage, User, new_id, now_ms
from storage.sql.factory import open_store
from storage.sql.writer import MessageWriter


def _messages(room_id: str, sender_id: str, first_seq: int, count: int) -> list[StoredMessage]:
    at = now_ms()
    return [
        StoredMessage(new_id("m_"), room_id, seq, sender_id, new_id(), f"hello {seq}", at)
        for seq in range(first_seq, first_seq + count)
    ]


async def _setup(store: Store, rooms: int) -> tuple[str, list[str]]:
    user = User(new_id("u_"), f"{new_id()}@bench", new_id(), "bench", "x", now_ms())
    await store.create_user(user)
    room_ids = []
    for _ in range(rooms):
        room = Room(
            new_id("r_"), "group", "bench", user.id, now_ms(), (RoomMember(user.id, "owner"),)
        )
        room_ids.append((await store.create_room(room)).id)
    return user.id, room_ids


async def bench_inserts(store: Store, *, total: int, batch: int) -> float:
    sender, (room_id,) = await _setup(store, 1)
    batches = [_messages(room_id, sender, s, batch) for s in range(1, total + 1, batch)]
    start = time.perf_counter()
    for rows in batches:
        await store.insert_messages(rows)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


async def bench_writer(
    store: Store, *, rooms: int, per_job: int, seconds: float
) -> tuple[float, float]:
    """(acked messages/s, mean rows per database batch)."""
    sender, room_ids = await _setup(store, rooms)
    writer = MessageWriter(store)
    acked = 0

    async def room_loop(room_id: str) -> None:
        nonlocal acked
        # Like a RoomActor: one batch in flight, the ack arrives via on_done.
        send, receive = trio.open_memory_channel[BaseException | None](1)
        seq = 1
        while True:
            writer.submit_nowait(_messages(room_id, sender, seq, per_job), send.send_nowait)
            error = await receive.receive()
            if error is not None:
                raise error
            seq += per_job
            acked += per_job

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.serve)
        for room_id in room_ids:
            nursery.start_soon(room_loop, room_id)
        await trio.sleep(0.5)  # warm-up: let batch sizes settle
        acked_before, batches_before = acked, writer.statistics().batches
        start = time.perf_counter()
        await trio.sleep(seconds)
        elapsed = time.perf_counter() - start
        acked_during = acked - acked_before
        batches = writer.statistics().batches - batches_before
        nursery.cancel_scope.cancel()
    return acked_during / elapsed, acked_during / max(batches, 1)


async def main(url: str, sqlite_synchronous: str, seconds: float) -> None:
    async with open_store(url, sqlite_synchronous=sqlite_synchronous) as store:
        await store.migrate()
        print(f"backend: {store.backend}")
        for batch in (1, 100, 500, 2000):
            total = 2000 if batch == 1 else 40_000
            rate = await bench_inserts(store, total=total, batch=batch)
            print(f"insert_messages batch={batch:>5}: {rate:>10,.0f} rows/s")
        for rooms, per_job in ((200, 1), (1000, 1), (200, 5)):
            rate, mean = await bench_writer(store, rooms=rooms, per_job=per_job, seconds=seconds)
            print(
                f"writer rooms={rooms:>5} msgs/job={per_job}: {rate:>10,.0f} acked msgs/s"
                f" (mean {mean:,.0f} rows per transaction)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--sqlite-synchronous", default="FULL")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    trio.run(main, args.database_url, args.sqlite_synchronous, args.seconds)
