"""The server's own WebSocket frame reader: what a client sends, read as RFC 6455
says, with the same close codes for every protocol error as wsproto gave."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from protocol.harness.lean import masked_frame
from realtime_server.wsframes import CLOSE, DATA, PING, PONG, ServerFrames, unmask

KEY = b"\x11\x22\x33\x44"


def events(frames: ServerFrames) -> list[tuple[Any, ...]]:
    out = []
    while (event := frames.next_event()) is not None:
        out.append(event)
    return out


def client() -> Connection:
    return Connection(ConnectionType.CLIENT)


@pytest.mark.parametrize("size", [0, 1, 3, 125, 126, 65535, 65536, 100_000])
def test_a_binary_message_from_a_wsproto_client_is_read_whole(size: int):
    payload = os.urandom(size)
    reader = ServerFrames(client().send(BytesMessage(payload)))
    assert events(reader) == [(DATA, payload, False, True)]


def test_several_frames_in_one_read_come_out_in_order():
    ws = client()
    data = b"".join(ws.send(BytesMessage(b"m%d" % i)) for i in range(5))
    assert [e[1] for e in events(ServerFrames(data))] == [b"m%d" % i for i in range(5)]


def test_a_frame_split_anywhere_is_handed_over_as_it_arrives_and_joins_up():
    payload = os.urandom(300)
    wire = client().send(BytesMessage(payload))
    for cut in range(len(wire)):
        reader = ServerFrames(wire[:cut])
        got = events(reader)
        reader.receive_data(wire[cut:])
        got += events(reader)
        assert b"".join(e[1] for e in got) == payload
        assert [e[3] for e in got][-1] is True and not any(e[3] for e in got[:-1])


def test_a_fragmented_message_with_a_ping_between_its_fragments():
    ws = client()
    wire = (
        ws.send(BytesMessage(b"abc", message_finished=False))
        + ws.send(Ping(b"p"))
        + ws.send(BytesMessage(b"def", message_finished=True))
    )
    assert events(ServerFrames(wire)) == [
        (DATA, b"abc", False, False),
        (PING, b"p"),
        (DATA, b"def", False, True),
    ]


def test_text_is_checked_as_utf8_even_across_fragments():
    ws = client()
    text = "héllo wörld"
    assert events(ServerFrames(ws.send(TextMessage(text)))) == [(DATA, text.encode(), True, True)]
    bad = masked_frame(0x1, b"\xff\xfe", KEY)
    [(kind, code, _)] = events(ServerFrames(bad))
    assert (kind, code) == (CLOSE, 1007)


def test_a_close_is_read_with_its_code_and_reason_and_nothing_after_it():
    ws = client()
    wire = ws.send(CloseConnection(4321, "bye")) + masked_frame(0x2, b"late", KEY)
    reader = ServerFrames(wire)
    assert events(reader) == [(CLOSE, 4321, "bye")]
    # Our answer echoes it; a second close is never sent.
    assert reader.close(4321, "bye") == b"\x88\x05" + struct.pack("!H", 4321) + b"bye"
    assert reader.close(1000) == b"" and reader.ping(b"hb") == b""


def test_an_empty_close_means_no_status_and_is_answered_empty():
    reader = ServerFrames(masked_frame(0x8, b"", KEY))
    assert events(reader) == [(CLOSE, 1005, "")]
    assert reader.close(1005, "") == b"\x88\x00"


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (bytes((0x82, 0x03)) + b"abc", 1002),  # unmasked
        (masked_frame(0x3, b"x", KEY), 1002),  # unknown opcode
        (masked_frame(0x2 | 0x40, b"x", KEY), 1002),  # RSV1 without an extension
        (bytes((0x09, 0x80)) + KEY, 1002),  # fragmented ping
        (bytes((0x89, 0xFE, 0x00, 0x7E)) + KEY + bytes(126), 1002),  # control over 125
        (bytes((0x82, 0xFE, 0x00, 0x05)) + KEY + bytes(5), 1002),  # 2 bytes for 5
        (bytes((0x82, 0xFF)) + struct.pack("!Q", 100) + KEY, 1002),  # 8 bytes for 100
        (bytes((0x82, 0xFF)) + struct.pack("!Q", 1 << 63) + KEY, 1002),  # MSB set
        (masked_frame(0x0, b"x", KEY), 1002),  # continuation with no message
        (masked_frame(0x8, b"\x03", KEY), 1002),  # close with 1 byte
        (masked_frame(0x8, struct.pack("!H", 999), KEY), 1002),  # invalid code
        (masked_frame(0x8, struct.pack("!H", 1006), KEY), 1002),  # local-only code
        (masked_frame(0x8, struct.pack("!H", 2500), KEY), 1002),  # reserved code
        (masked_frame(0x8, struct.pack("!H", 1000) + b"\xff", KEY), 1007),  # bad reason
    ],
)
def test_protocol_errors_close_with_the_code_wsproto_gave(wire: bytes, code: int):
    reader = ServerFrames(wire)
    [(kind, got, reason)] = events(reader)
    assert (kind, got) == (CLOSE, code) and reason
    assert reader.next_event() is None  # nothing more is read
    old = Connection(ConnectionType.SERVER)
    old.receive_data(wire)
    [closed] = list(old.events())
    assert isinstance(closed, CloseConnection) and closed.code == code


def test_a_new_message_inside_a_fragmented_one_is_a_protocol_error():
    first = bytes((0x02, 0x81)) + KEY + unmask(b"a", KEY)  # binary, not final
    reader = ServerFrames(first + masked_frame(0x2, b"b", KEY))
    assert events(reader) == [
        (DATA, b"a", False, False),
        (CLOSE, 1002, "expected CONTINUATION, got 2"),
    ]


def test_pings_and_pongs_are_answered_in_kind_while_open():
    reader = ServerFrames(masked_frame(0x9, b"hi", KEY) + masked_frame(0xA, b"yo", KEY))
    assert events(reader) == [(PING, b"hi"), (PONG, b"yo")]
    assert reader.pong(b"hi") == b"\x8a\x02hi"
    assert reader.ping(b"hb") == b"\x89\x02hb"
    assert reader.close(4000, "x" * 200)[:4] == b"\x88\x7d\x0f\xa0"  # reason clipped to 123


def test_our_frames_read_back_by_a_wsproto_client():
    ws = client()
    reader = ServerFrames()
    ws.receive_data(reader.ping(b"hb") + reader.close(4001, "silent"))
    ping, close = list(ws.events())
    assert isinstance(ping, Ping) and ping.payload == b"hb"
    assert isinstance(close, CloseConnection) and (close.code, close.reason) == (4001, "silent")
