"""The codec, without an event loop: round trips, every refusal, and fuzzing.

The server's door is ``decode_client``: whatever bytes arrive, it must return a
frame or raise ``ProtocolError`` carrying the code the client sees and, when
readable, the request id to answer. Any other exception would be a crash.
"""

from __future__ import annotations

import random
from typing import Any, get_args

import msgspec
import pytest

from protocol.codec import DEFAULT_MAX_FRAME, decode_client, decode_server, encode
from protocol.errors import (
    CLOSE_REASONS,
    ERROR_MESSAGES,
    CloseCode,
    ErrorCode,
    FrameTooLarge,
    ProtocolError,
)
from protocol.frames import (
    CLIENT_FRAME_TYPES,
    Auth,
    AuthData,
    ClientFrame,
    Err,
    Hello,
    HelloData,
    Message,
    MsgNew,
    Ok,
    Ping,
    Pong,
    ResumeDone,
    ResumeDoneData,
    ResumeGap,
    ResumeGapData,
    Send,
    SendData,
    ServerFrame,
    Welcome,
    WelcomeData,
)
from protocol.frames_ai import AI_CLIENT_FRAMES, AI_SERVER_FRAMES
from protocol.frames_calls import CALL_CLIENT_FRAMES, CALL_SERVER_FRAMES
from protocol.frames_chat import CHAT_CLIENT_FRAMES, CHAT_SERVER_FRAMES
from protocol.frames_chatlist import CHATLIST_SERVER_FRAMES
from protocol.frames_notify import NOTIFY_CLIENT_FRAMES, NOTIFY_SERVER_FRAMES
from protocol.frames_presence import PRESENCE_CLIENT_TYPES
from protocol.frames_stories import STORY_SERVER_FRAMES
from protocol.schema_ai import AI_EXAMPLES
from protocol.schema_calls import CALL_EXAMPLES
from protocol.schema_chat import CHAT_EXAMPLES
from protocol.schema_chatlist import CHATLIST_EXAMPLES
from protocol.schema_notify import NOTIFY_EXAMPLES
from protocol.schema_presence import PRESENCE_EXAMPLES
from protocol.schema_stories import STORY_EXAMPLES

MESSAGE = Message(id="m1", room="r1", seq=7, sender="u1", cid="c1", text="hi", ts=1, kind="note")
PLAIN = Message(id="m2", room="r", seq=1, sender="u", cid="c", text="", ts=0)  # kind "text"

CLIENT_EXAMPLES: list[ClientFrame] = [
    Hello(id=0, d=HelloData(token="t", v=1)),
    Hello(id=2**53, d=HelloData(token="t" * 4096, v=1, device="phone", cursors={"r": 0, "s": 9})),
    Ping(id=5),
    Auth(id=8, d=AuthData(token="t" * 4096)),
    Send(id=6, d=SendData(room="r" * 64, cid="c" * 64, text="")),
    Send(id=7, d=SendData(room="r", cid="c", text="héllo ✓ " * 100)),
]
SERVER_EXAMPLES: list[ServerFrame] = [
    Welcome(
        re=1,
        d=WelcomeData(user="u", session="s", v=1, heartbeat=2.5, max_frame=10, max_text=5, ts=3),
    ),
    Ok(re=2),
    Ok(re=3, d=MESSAGE),
    Err(code="invalid", msg="no"),
    Err(code="not_member", msg="no", re=4),
    Pong(re=5, ts=6),
    MsgNew(d=MESSAGE),
    MsgNew(d=PLAIN),
    ResumeGap(d=ResumeGapData(room="r", after=1, last_seq=900)),
    ResumeDone(d=ResumeDoneData()),
    ResumeDone(d=ResumeDoneData(rooms={"r": 3})),
]


# Rich-messaging frames (issue 3): their documented examples round-trip too.
CLIENT_EXAMPLES += [f for f in CHAT_EXAMPLES.values() if isinstance(f, CHAT_CLIENT_FRAMES)]
CLIENT_EXAMPLES += [f for t, f in PRESENCE_EXAMPLES.items() if t in PRESENCE_CLIENT_TYPES]
SERVER_EXAMPLES += [f for t, f in PRESENCE_EXAMPLES.items() if t not in PRESENCE_CLIENT_TYPES]
SERVER_EXAMPLES += [f for f in CHAT_EXAMPLES.values() if isinstance(f, CHAT_SERVER_FRAMES)]
# Call frames (issue 5).
CLIENT_EXAMPLES += [f for f in CALL_EXAMPLES.values() if isinstance(f, CALL_CLIENT_FRAMES)]
SERVER_EXAMPLES += [f for f in CALL_EXAMPLES.values() if isinstance(f, CALL_SERVER_FRAMES)]
CLIENT_EXAMPLES += [f for f in AI_EXAMPLES.values() if isinstance(f, AI_CLIENT_FRAMES)]
SERVER_EXAMPLES += [f for f in AI_EXAMPLES.values() if isinstance(f, AI_SERVER_FRAMES)]
# Chat-list frames (issue 18).
SERVER_EXAMPLES += [f for f in CHATLIST_EXAMPLES.values() if isinstance(f, CHATLIST_SERVER_FRAMES)]
CLIENT_EXAMPLES += [f for f in NOTIFY_EXAMPLES.values() if isinstance(f, NOTIFY_CLIENT_FRAMES)]
SERVER_EXAMPLES += [f for f in NOTIFY_EXAMPLES.values() if isinstance(f, NOTIFY_SERVER_FRAMES)]
# Story frames (issue 15, part 1): server pushes only.
SERVER_EXAMPLES += [f for f in STORY_EXAMPLES.values() if isinstance(f, STORY_SERVER_FRAMES)]


def pack(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


def refusal(data: bytes | str, max_size: int = DEFAULT_MAX_FRAME) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_client(data, max_size)
    return caught.value


# ----- round trips -----------------------------------------------------------


@pytest.mark.parametrize("frame", CLIENT_EXAMPLES, ids=repr)
def test_client_frames_round_trip(frame: ClientFrame) -> None:
    assert decode_client(encode(frame)) == frame


@pytest.mark.parametrize("frame", SERVER_EXAMPLES, ids=repr)
def test_server_frames_round_trip(frame: ServerFrame) -> None:
    assert decode_server(encode(frame)) == frame


def test_every_frame_type_has_a_round_trip_example() -> None:
    # A frame added to a union must get an example above.
    assert {type(f) for f in CLIENT_EXAMPLES} == set(get_args(ClientFrame))
    assert {type(f) for f in SERVER_EXAMPLES} == set(get_args(ServerFrame))


def test_client_frame_types_match_the_union() -> None:
    tags = {cls.__struct_config__.tag for cls in get_args(ClientFrame)}
    assert tags == CLIENT_FRAME_TYPES


def test_wire_shape_is_the_documented_envelope() -> None:
    assert msgspec.msgpack.decode(encode(Ping(id=3))) == {"t": "ping", "id": 3}
    assert msgspec.msgpack.decode(encode(Send(id=1, d=SendData(room="r", cid="c", text="x")))) == {
        "t": "msg.send",
        "id": 1,
        "d": {"room": "r", "cid": "c", "text": "x"},
    }


def test_defaults_are_left_off_the_wire() -> None:
    # Fan-out multiplies every byte: absent means default.
    assert msgspec.msgpack.decode(encode(Err(code="x", msg="y"))) == {
        "t": "err",
        "code": "x",
        "msg": "y",
    }
    assert msgspec.msgpack.decode(encode(Ok(re=1))) == {"t": "ok", "re": 1}
    assert "kind" not in msgspec.msgpack.decode(encode(MsgNew(d=PLAIN)))["d"]
    assert msgspec.msgpack.decode(encode(Hello(id=1, d=HelloData(token="t", v=1))))["d"] == {
        "token": "t",
        "v": 1,
    }


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert decode_client(pack({"t": "ping", "id": 1, "future": [1, 2]})) == Ping(id=1)
    data = pack({"t": "msg.send", "id": 2, "d": {"room": "r", "cid": "c", "text": "x", "y": 1}})
    assert decode_client(data) == Send(id=2, d=SendData(room="r", cid="c", text="x"))
    assert decode_server(pack({"t": "pong", "re": 1, "ts": 2, "new": True})) == Pong(re=1, ts=2)


def test_key_order_does_not_matter() -> None:
    assert decode_client(pack({"id": 4, "t": "ping"})) == Ping(id=4)


# ----- refusals --------------------------------------------------------------


def test_invalid_msgpack() -> None:
    for data in (b"", b"\xc1", b"\x82\xa1t", pack({"t": "ping", "id": 1}) + b"\x00"):
        err = refusal(data)
        assert (err.code, err.re) == (ErrorCode.BAD_FRAME, None), data


def test_not_a_map() -> None:
    for value in ([1, 2], "ping", 5, None, [{"t": "ping", "id": 1}]):
        err = refusal(pack(value))
        assert (err.code, err.re) == (ErrorCode.BAD_FRAME, None), value
        assert "map" in err.message


def test_missing_or_non_string_type_reads_the_id() -> None:
    err = refusal(pack({"id": 5}))
    assert (err.code, err.re) == (ErrorCode.BAD_FRAME, 5)
    err = refusal(pack({"t": 1, "id": 6}))
    assert (err.code, err.re) == (ErrorCode.BAD_FRAME, 6)


def test_unknown_type_reads_the_id() -> None:
    err = refusal(pack({"t": "nope", "id": 7}))
    assert (err.code, err.re) == (ErrorCode.UNKNOWN_TYPE, 7)
    assert "nope" in err.message
    # Server-to-client types are unknown in the other direction.
    assert refusal(pack({"t": "welcome", "id": 8})).code == ErrorCode.UNKNOWN_TYPE
    assert refusal(pack({"t": "x" * 10_000})).message.count("x") <= 64, "echo is capped"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"t": "msg.send", "id": 9}, "d"),
        ({"t": "msg.send", "id": 9, "d": {"room": "r", "cid": "c", "kind": 1}}, "kind"),
        ({"t": "msg.send", "id": 9, "d": {"room": "r", "cid": "c", "text": 1}}, "text"),
        ({"t": "msg.send", "id": 9, "d": {"room": "", "cid": "c", "text": "x"}}, "room"),
        ({"t": "msg.send", "id": 9, "d": {"room": "r" * 65, "cid": "c", "text": "x"}}, "room"),
        ({"t": "msg.send", "id": 9, "d": {"room": "r", "cid": "c" * 65, "text": "x"}}, "cid"),
        ({"t": "msg.send", "id": 9, "d": [1, 2]}, "d"),
        ({"t": "hello", "id": 9, "d": {"token": "", "v": 1}}, "token"),
        ({"t": "hello", "id": 9, "d": {"token": "t", "v": "1"}}, "v"),
        ({"t": "hello", "id": 9, "d": {"token": "t", "v": 1, "cursors": {"r": -1}}}, "cursors"),
        ({"t": "hello", "id": 9, "d": {"token": "t", "v": 1, "cursors": {"r": "5"}}}, "cursors"),
        ({"t": "hello", "id": 9, "d": {"token": "t", "v": 1, "cursors": [1]}}, "cursors"),
        ({"t": "hello", "id": 9, "d": {"token": "t", "v": 1, "device": ""}}, "device"),
    ],
)
def test_missing_or_wrong_typed_fields_are_invalid(frame: dict[str, Any], field: str) -> None:
    err = refusal(pack(frame))
    assert (err.code, err.re) == (ErrorCode.INVALID, 9)
    assert field in err.message


@pytest.mark.parametrize("bad_id", [-1, True, False, 2**53 + 1, "5", 1.0, None, [1]])
def test_unusable_ids_are_invalid_and_not_echoed(bad_id: object) -> None:
    err = refusal(pack({"t": "ping", "id": bad_id}))
    assert (err.code, err.re) == (ErrorCode.INVALID, None)


def test_missing_id_is_invalid() -> None:
    err = refusal(pack({"t": "ping"}))
    assert (err.code, err.re) == (ErrorCode.INVALID, None)


def test_oversize_frame() -> None:
    data = encode(Send(id=1, d=SendData(room="r", cid="c", text="x" * 100)))
    assert decode_client(data, max_size=len(data)) is not None, "the limit itself is allowed"
    err = refusal(data, max_size=len(data) - 1)
    assert isinstance(err, FrameTooLarge)
    assert (err.code, err.re) == (ErrorCode.FRAME_TOO_LARGE, None)
    assert refusal(b"\x00" * (DEFAULT_MAX_FRAME + 1)).code == ErrorCode.FRAME_TOO_LARGE


def test_deeply_nested_garbage() -> None:
    depth = 20_000
    cases = [
        b"\x91" * depth + b"\x01",  # nested arrays
        b"\x81\xa1a" * depth + b"\x01",  # nested maps
        b"\x81\xa1t" + b"\x91" * depth + b"\x01",  # as the type
        # As an unknown field of a known frame: the typed decoder skips it and
        # overflows its depth guard (a RecursionError this codec must contain).
        b"\x83\xa1t\xa8msg.send\xa2id\x05\xa1d" + b"\x81\xa1a" * depth + b"\x01",
        b"\x83\xa1t\xa4ping\xa2id\x05\xa1x" + b"\x91" * depth + b"\x01",
    ]
    for data in cases:
        assert len(data) <= DEFAULT_MAX_FRAME
        assert refusal(data).code == ErrorCode.BAD_FRAME


def test_strings_that_are_not_utf8() -> None:
    assert refusal(b"\x82\xa1t\xa2\xff\xfe\xa2id\x01").code == ErrorCode.BAD_FRAME
    data = b"\x82\xa1t\xa4ping\xa2\xff\xfe\x01"  # a key that is not UTF-8
    assert refusal(data).code == ErrorCode.BAD_FRAME


def test_text_messages_are_refused() -> None:
    assert refusal('{"t": "ping", "id": 1}').code == ErrorCode.BAD_FRAME
    with pytest.raises(ProtocolError):
        decode_server("text")


def test_bad_server_frames() -> None:
    for data in (b"\xc1", pack({"t": "nope"}), pack({"t": "ok"}), pack([1])):
        with pytest.raises(ProtocolError) as caught:
            decode_server(data)
        assert caught.value.code == ErrorCode.BAD_FRAME


def test_protocol_error_defaults_to_the_documented_message() -> None:
    err = ProtocolError(ErrorCode.RATE_LIMITED, re=3)
    assert err.message == ERROR_MESSAGES[ErrorCode.RATE_LIMITED]
    assert err.re == 3


# ----- the code tables ---------------------------------------------------------


def test_every_code_has_a_message() -> None:
    assert set(ERROR_MESSAGES) == set(ErrorCode)
    assert set(CLOSE_REASONS) == set(CloseCode)


def test_close_code_ranges() -> None:
    for code in CloseCode:
        assert code in (1000, 1001) or 4000 <= code <= 4199, code
        assert code.should_reconnect == (code < 4100)
        # RFC 6455: a close reason fits in 123 bytes.
        assert len(CLOSE_REASONS[code].encode()) <= 123, code


# ----- fuzzing ---------------------------------------------------------------------


def assert_frame_or_protocol_error(data: bytes) -> None:
    try:
        frame = decode_client(data)
    except ProtocolError as exc:
        assert exc.code in ErrorCode
        assert exc.re is None or (type(exc.re) is int and 0 <= exc.re <= 2**53)
    else:
        assert isinstance(frame, get_args(ClientFrame))
        assert decode_client(encode(frame)) == frame
    try:
        decode_server(data)
    except ProtocolError:
        pass


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        pos = rng.randrange(len(buf) + 1)
        match rng.randrange(3):
            case 0 if buf:
                buf[min(pos, len(buf) - 1)] = rng.randrange(256)
            case 1:
                buf[pos:pos] = rng.randbytes(rng.randrange(1, 4))
            case _ if buf:
                del buf[min(pos, len(buf) - 1)]
    return bytes(buf)


_KEYS = ["t", "id", "d", "room", "cid", "text", "token", "v", "device", "cursors", "re"]
_TYPES = ["hello", "ping", "msg.send", "ok", "nope", ""]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kinds = 9 if depth < 4 else 6
    match rng.randrange(kinds):
        case 0:
            return rng.choice([None, True, False, 0.5, -1, 2**53 + 1, 2**64 - 1, -(2**63)])
        case 1:
            return rng.randrange(-5, 100)
        case 2:
            return rng.choice(_KEYS + _TYPES + ["é", "x" * 70])
        case 3:
            return rng.randbytes(rng.randrange(4))
        case 4:
            return msgspec.msgpack.Ext(rng.randrange(-128, 128), rng.randbytes(rng.randrange(9)))
        case 5:
            return rng.choice(_TYPES)
        case 6:
            return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        case 7:
            return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(5))}
        case _:
            frame: dict[Any, Any] = {"t": rng.choice(_TYPES), "id": _value(rng, depth + 1)}
            frame["d"] = {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(4)}
            if rng.random() < 0.2:
                frame[rng.randrange(10)] = 1  # a non-string key
            return frame


def test_fuzz_random_bytes() -> None:
    rng = random.Random(20240601)
    for _ in range(3000):
        assert_frame_or_protocol_error(rng.randbytes(rng.randrange(64)))


def test_fuzz_mutated_valid_frames() -> None:
    rng = random.Random(7)
    seeds = [encode(f) for f in CLIENT_EXAMPLES[:1] + CLIENT_EXAMPLES[2:]]
    for _ in range(3000):
        assert_frame_or_protocol_error(_mutate(rng, rng.choice(seeds)))


def test_fuzz_structured_garbage() -> None:
    rng = random.Random(11)
    decoded = 0
    for _ in range(3000):
        data = pack(_value(rng))
        assert_frame_or_protocol_error(data)
        try:
            decode_client(data)
            decoded += 1
        except ProtocolError:
            pass
    assert decoded > 0, "the generator should sometimes build a valid frame"
