"""The lean client's hand-made wire pieces agree with wsproto, and its reports add up."""

from __future__ import annotations

import os
import time

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping

from protocol.harness.lean import masked_frame, stamp_of
from protocol.harness.plain import NatsParser, parse_stamp, stamped
from protocol.harness.report import percentiles, profile_summary, table
from protocol.harness.workers import split


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 100_000])
def test_a_masked_client_frame_is_read_by_a_server_as_sent(size: int):
    payload = os.urandom(size)
    server = Connection(ConnectionType.SERVER)
    server.receive_data(masked_frame(0x2, payload, os.urandom(4)))
    events = list(server.events())
    assert len(events) == 1 and isinstance(events[0], BytesMessage)
    assert events[0].data == payload and events[0].message_finished


def test_control_frames_are_masked_too():
    server = Connection(ConnectionType.SERVER)
    key = b"\x01\x02\x03\x04"
    server.receive_data(masked_frame(0x9, b"hb", key) + masked_frame(0x8, b"\x03\xe8", key))
    ping, close = list(server.events())
    assert isinstance(ping, Ping) and ping.payload == b"hb"
    assert isinstance(close, CloseConnection) and close.code == 1000


def test_a_stamp_is_read_only_from_a_harness_text():
    assert stamp_of("1795561747961234567 xxxx") == 1795561747961234567
    assert stamp_of("warm-up 3") == 0
    assert stamp_of("12 short") == 0


def test_percentiles_scale_and_count():
    samples = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms in ns
    p = percentiles(samples, 1e6)
    assert (p["p50"], p["p99"], p["max"], p["n"]) == (51.0, 100.0, 100.0, 100)
    assert percentiles([]) == {}


def test_clients_are_dealt_over_workers_and_none_is_lost():
    parts = split(list(range(10)), 3)
    assert sorted(x for part in parts for x in part) == list(range(10))
    assert [len(p) for p in parts] == [4, 3, 3]
    assert split([1], 4) == [[1]]


def test_the_table_flattens_nested_figures():
    text = table({"scenario": "fanout", "latency_ms": {"p50": 1.5, "p99": 4.0}})
    assert text.splitlines() == [
        "scenario        fanout",
        "latency_ms.p50  1.5",
        "latency_ms.p99  4.0",
    ]


def test_a_profile_summary_ranks_functions_by_samples(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);send (b.py:2) 30\nmain (a.py:1);parse (c.py:3) 10\n")
    summary = profile_summary(str(raw), top=2)
    assert summary["samples"] == ["40"]
    assert summary["self"] == [" 75.0% send (b.py:2)", " 25.0% parse (c.py:3)"]
    assert summary["inclusive"][0] == "100.0% main (a.py:1)"


def test_a_plain_stamp_carries_the_send_time_and_the_message_index():
    text = stamped(42, "pad")
    sent, index = parse_stamp(text) or (0, 0)
    assert index == 42 and abs(sent - time.time_ns()) < 10**9
    assert parse_stamp(b"not a stamp at all, not at all") is None


def test_nats_operations_split_across_frames_are_read_whole():
    parser = NatsParser()
    body = stamped(7, "x").encode()
    stream = b"INFO {}\r\nPING\r\nMSG bench 1 %d\r\n%s\r\n" % (len(body), body)
    got = []
    for i in range(0, len(stream), 5):
        got += parser.feed(stream[i : i + 5])
    assert [index for _, index in got] == [7] and parser.pings == 1
