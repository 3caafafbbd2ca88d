"""Server-to-client WebSocket frames built by hand.

Server frames are never masked (RFC 6455 section 5.1), so one encoded frame is
byte-for-byte the same for every recipient: the fan-out path frames a message
once and queues the same ``bytes`` object to every session.
"""

from __future__ import annotations

import struct

_BINARY_FIN = 0x82


def binary_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((_BINARY_FIN, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _BINARY_FIN, 126, n) + payload
    return struct.pack("!BBQ", _BINARY_FIN, 127, n) + payload
