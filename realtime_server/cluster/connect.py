"""The bus a node's settings ask for."""

from __future__ import annotations

from realtime_server.base.settings import Settings
from realtime_server.cluster import new_node_key
from realtime_server.cluster.bus import Bus


def open_bus(settings: Settings) -> Bus:
    """The Redis bus of ``REDIS_URL`` (imported only then: a single node never loads it)."""
    from realtime_server.cluster.bus_redis import RedisBus

    return RedisBus(
        settings.redis_url, new_node_key(settings.node_id), prefix=settings.redis_prefix
    )
