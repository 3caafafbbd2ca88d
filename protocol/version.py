"""Protocol version spoken by this code. Bump on any incompatible frame change."""

PROTOCOL_VERSION = 1
# Versions a server of this build accepts in ``hello``.
SUPPORTED_VERSIONS = frozenset({1})
