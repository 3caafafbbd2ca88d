"""Server-side WebSocket framing (RFC 6455) after the upgrade, sans-I/O.

Server frames are never masked (RFC 6455 section 5.1), so one encoded frame is
byte-for-byte the same for every recipient: the fan-out path frames a message
once and queues the same ``bytes`` object to every session.

``ServerFrames`` reads what clients send. It replaces wsproto's frame protocol
on the hot path (wsproto still does the HTTP upgrade): wsproto spent about a
tenth of the server's samples in ``bench rooms`` on generators, named tuples,
a buffer copy per header field and a four-slice ``translate`` per payload to
read one small binary frame. Here a complete frame is read with one header
decode and its payload unmasked with one big-integer XOR.

It keeps every check wsproto makes of a client, with the same close codes:
frames must be masked, no RSV bit (no extension is ever negotiated), known
opcodes only, control frames unfragmented and at most 125 bytes, minimal
payload lengths, continuation only inside a fragmented message, text that is
UTF-8 (1007), and a well-formed close frame. A failed check yields a
``CLOSE`` event carrying the error's code and reason, as wsproto's
``CloseConnection`` did; nothing is read after it. A data frame's payload is
handed over as it arrives (never buffered whole), so the gateway can refuse
an oversize message without holding it.
"""

from __future__ import annotations

import struct
from codecs import getincrementaldecoder
from typing import Any

_BINARY_FIN = 0x82

# Event kinds returned by ServerFrames.next_event, as (kind, ...) tuples:
# (DATA, chunk: bytes, text: bool, message_finished: bool)
# (PING, payload) / (PONG, payload)
# (CLOSE, code: int, reason: str)  the peer's close, or our parse failure
DATA, PING, PONG, CLOSE = range(4)

# RFC 6455 section 7.4.
NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002
NO_STATUS_RCVD = 1005
INVALID_FRAME_PAYLOAD_DATA = 1007
_LOCAL_ONLY = frozenset((1005, 1006, 1015))
# Codes below 3000 a peer may send (wsproto's CloseReason members).
_KNOWN_PROTOCOL_CODES = frozenset((*range(1000, 1004), *range(1007, 1015)))

_OPEN, _LOCAL_CLOSING, _REMOTE_CLOSING, _CLOSED = range(4)
_CONTROL_OPCODES = frozenset((0x8, 0x9, 0xA))
_DATA_OPCODES = frozenset((0x0, 0x1, 0x2))
_unpack_h = struct.Struct("!H").unpack_from
_unpack_q = struct.Struct("!Q").unpack_from
_Utf8Decoder = getincrementaldecoder("utf-8")


def binary_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((_BINARY_FIN, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _BINARY_FIN, 126, n) + payload
    return struct.pack("!BBQ", _BINARY_FIN, 127, n) + payload


def _control_frame(opcode: int, payload: bytes) -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


def unmask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key``, as one big-integer operation."""
    n = len(data)
    if not n:
        return b""
    mask = key * (n // 4 + 1)
    return (int.from_bytes(data, "little") ^ int.from_bytes(mask[:n], "little")).to_bytes(
        n, "little"
    )


class WsProtocolError(Exception):
    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class ServerFrames:
    """One connection's WebSocket frame protocol, server side.

    ``receive_data`` takes bytes from the socket; ``next_event`` returns the
    next event (see the kinds above) or None when more bytes are needed.
    ``ping``/``pong``/``close`` build frames to send (b"" once sending is over).
    """

    __slots__ = (
        "_buf",
        "_state",
        "_done",
        "_opcode",
        "_fin",
        "_left",
        "_key",
        "_offset",
        "_message",
        "_utf8",
    )

    def __init__(self, data: bytes = b"") -> None:
        self._buf = bytearray(data)
        self._state = _OPEN
        self._done = False  # a close frame or a parse failure was read: read no more
        # The data frame whose payload is being handed over in parts (None: between frames).
        self._opcode: int | None = None
        self._fin = False
        self._left = 0
        self._key = b""
        self._offset = 0  # payload bytes of that frame already unmasked
        # Opcode of the fragmented message in progress (1 text, 2 binary), or None.
        self._message: int | None = None
        self._utf8: Any = None

    @property
    def open(self) -> bool:
        return self._state == _OPEN

    def receive_data(self, data: bytes) -> None:
        if not self._done:
            self._buf += data

    def next_event(self) -> tuple[Any, ...] | None:
        if self._done:
            return None
        try:
            if self._opcode is not None:
                return self._more_payload()
            return self._next_frame()
        except WsProtocolError as exc:
            self._done = True
            self._buf = bytearray()
            return (CLOSE, exc.code, str(exc))

    def _next_frame(self) -> tuple[Any, ...] | None:
        buf = self._buf
        have = len(buf)
        if have < 2:
            return None
        b0, b1 = buf[0], buf[1]
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
            raise WsProtocolError(f"Invalid opcode {opcode:#x}")
        control = opcode >= 0x8
        if control and not fin:
            raise WsProtocolError("Invalid attempt to fragment control frame")
        length = b1 & 0x7F
        if control and length > 125:
            raise WsProtocolError("Control frame with payload len > 125")
        head = 2
        if length == 126:
            if have < 4:
                return None
            (length,) = _unpack_h(buf, 2)
            if length <= 125:
                raise WsProtocolError("Payload length used 2 bytes when 1 would have sufficed")
            head = 4
        elif length == 127:
            if have < 10:
                return None
            (length,) = _unpack_q(buf, 2)
            if length <= 65535:
                raise WsProtocolError("Payload length used 8 bytes when 2 would have sufficed")
            if length >> 63:
                raise WsProtocolError("8-byte payload length with non-zero MSB")
            head = 10
        if b0 & 0x70:
            raise WsProtocolError("Reserved bit set unexpectedly")
        if not b1 & 0x80:
            raise WsProtocolError("server received unexpected unmasked frame")
        if have < head + 4:
            return None
        key = bytes(buf[head : head + 4])
        head += 4
        if control:
            if have < head + length:
                return None  # a control frame is only read whole
            payload = unmask(buf[head : head + length], key)
            del buf[: head + length]
            return self._control(opcode, payload)
        # A data frame: check it against the message in progress first.
        if self._message is None:
            if opcode == 0:
                raise WsProtocolError("unexpected CONTINUATION")
            self._message = opcode
            self._utf8 = _Utf8Decoder() if opcode == 1 else None
        elif opcode != 0:
            raise WsProtocolError(f"expected CONTINUATION, got {opcode!r}")
        if have >= head + length:
            # The usual case: the whole frame is here.
            payload = unmask(buf[head : head + length], key)
            del buf[: head + length]
            return self._data(payload, bool(fin))
        # Part of the frame: hand over what is here and remember the rest.
        self._opcode, self._fin, self._left, self._key, self._offset = (
            opcode,
            bool(fin),
            length,
            key,
            0,
        )
        del buf[:head]
        if not buf and length:
            return None
        return self._more_payload()

    def _more_payload(self) -> tuple[Any, ...] | None:
        buf = self._buf
        take = min(len(buf), self._left)
        if not take and self._left:
            return None
        key = self._key
        rot = self._offset % 4
        if rot:
            key = key[rot:] + key[:rot]
        payload = unmask(buf[:take], key)
        del buf[:take]
        self._left -= take
        self._offset += take
        if self._left:
            return self._data(payload, False)
        fin = self._fin
        self._opcode = None
        return self._data(payload, fin)

    def _data(self, payload: bytes, finished: bool) -> tuple[Any, ...]:
        """A data chunk; ``finished`` when it ends its frame and the frame ends the message."""
        text = self._message == 1
        if text:
            try:
                self._utf8.decode(payload, finished)
            except UnicodeDecodeError as exc:
                raise WsProtocolError(str(exc), INVALID_FRAME_PAYLOAD_DATA) from None
        if finished:
            self._message = None
            self._utf8 = None
        return (DATA, payload, text, finished)

    def _control(self, opcode: int, payload: bytes) -> tuple[Any, ...]:
        if opcode == 0x9:
            return (PING, payload)
        if opcode == 0xA:
            return (PONG, payload)
        # Close: nothing after it is read.
        self._done = True
        self._buf = bytearray()
        if not payload:
            code, reason = NO_STATUS_RCVD, ""
        elif len(payload) == 1:
            raise WsProtocolError("CLOSE with 1 byte payload")
        else:
            (code,) = _unpack_h(payload, 0)
            if code < 1000 or code > 4999:
                raise WsProtocolError("CLOSE with invalid code")
            if code in _LOCAL_ONLY:
                raise WsProtocolError("remote CLOSE with local-only reason")
            if code < 3000 and code not in _KNOWN_PROTOCOL_CODES:
                raise WsProtocolError("CLOSE with unknown reserved code")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise WsProtocolError(
                    "Error decoding CLOSE reason: " + str(exc), INVALID_FRAME_PAYLOAD_DATA
                ) from None
        if self._state == _LOCAL_CLOSING:
            self._state = _CLOSED
        else:
            self._state = _REMOTE_CLOSING
        return (CLOSE, code, reason)

    # ----- what the server sends -------------------------------------------

    def ping(self, payload: bytes) -> bytes:
        return _control_frame(0x9, payload) if self._state == _OPEN else b""

    def pong(self, payload: bytes) -> bytes:
        return _control_frame(0xA, payload) if self._state == _OPEN else b""

    def close(self, code: int | None, reason: str = "") -> bytes:
        """Our close frame (an answer to the peer's, or our own); b"" if one went already."""
        if self._state == _OPEN:
            self._state = _LOCAL_CLOSING
        elif self._state == _REMOTE_CLOSING:
            self._state = _CLOSED
        else:
            return b""
        if code is None or code == NO_STATUS_RCVD:
            return _control_frame(0x8, b"")
        if code in _LOCAL_ONLY:
            code = NORMAL_CLOSURE
        data = reason.encode()
        if len(data) > 123:
            data = data[:123].decode("utf-8", errors="ignore").encode()
        return _control_frame(0x8, struct.pack("!H", code) + data)
