"""MessagePack codec for frames: pure functions, no I/O.

``decode_client`` is the server's door: it enforces the frame-size limit and
turns every malformed input into a ``ProtocolError`` carrying the code the
client will see and, when it could be read, the request id to answer.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.errors import ErrorCode, FrameTooLarge, ProtocolError
from protocol.frames import CLIENT_FRAME_TYPES, ClientFrame, ServerFrame

_encoder = msgspec.msgpack.Encoder()
_client_decoder: msgspec.msgpack.Decoder[ClientFrame] = msgspec.msgpack.Decoder(ClientFrame)
_server_decoder: msgspec.msgpack.Decoder[ServerFrame] = msgspec.msgpack.Decoder(ServerFrame)

DEFAULT_MAX_FRAME = 64 * 1024


def encode(frame: msgspec.Struct) -> bytes:
    return _encoder.encode(frame)


# Everything msgspec raises for bad input. Beyond its own errors: a string
# that is not UTF-8 raises UnicodeDecodeError, and skipping an unknown field
# whose value is nested thousands deep trips its depth guard (RecursionError).
# Both must stay the peer's mistake, never crash the reader.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def decode_client(data: bytes | bytearray | str, max_size: int = DEFAULT_MAX_FRAME) -> ClientFrame:
    if isinstance(data, str):
        raise _text_frame()
    if len(data) > max_size:
        raise FrameTooLarge(len(data), max_size)
    try:
        return _client_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise _explain(data, exc, CLIENT_FRAME_TYPES) from None


def decode_server(data: bytes | str) -> ServerFrame:
    if isinstance(data, str):
        raise _text_frame()
    try:
        return _server_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"bad server frame: {exc}") from None


def _text_frame() -> ProtocolError:
    # WebSocket libraries hand text messages over as str; the protocol is binary only.
    return ProtocolError(ErrorCode.BAD_FRAME, "Frames must be binary WebSocket messages, not text.")


def _explain(data: bytes | bytearray, exc: Exception, known: frozenset[str]) -> ProtocolError:
    """Say precisely what is wrong with a frame the typed decoder refused."""
    try:
        raw: Any = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return ProtocolError(ErrorCode.BAD_FRAME, "Frame is not valid MessagePack.")
    except UnicodeDecodeError:
        return ProtocolError(ErrorCode.BAD_FRAME, "Frame holds a string that is not UTF-8.")
    except RecursionError:
        return ProtocolError(ErrorCode.BAD_FRAME, "Frame is nested too deeply.")
    if not isinstance(raw, dict):
        return ProtocolError(ErrorCode.BAD_FRAME, "Frame must be a map.")
    rid = raw.get("id")
    re = rid if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= 2**53 else None
    kind = raw.get("t")
    if not isinstance(kind, str):
        return ProtocolError(ErrorCode.BAD_FRAME, "Frame has no string 't' field.", re)
    if kind not in known:
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {kind[:64]!r}.", re)
    return ProtocolError(ErrorCode.INVALID, f"Invalid {kind!r} frame: {exc}", re)
