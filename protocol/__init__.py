"""Sans-I/O wire protocol: frame types, MessagePack codec, error and close codes.

``frames``, ``codec``, ``errors`` and ``version`` import neither trio nor
storage; ``client`` (and the load harness) are the only I/O in this package.
"""

from protocol.version import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
