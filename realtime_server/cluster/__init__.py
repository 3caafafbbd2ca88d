"""Several nodes as one service (issue 13): the bus, room leases, forwarding.

Without ``REDIS_URL`` a node runs alone and nothing here is used: the hot
path is exactly the single-node one. With it, every node joins the bus (Redis
pub/sub), renews a node lease in PostgreSQL, and owns the rooms whose lease it
holds; see ``realtime_server.cluster.rooms`` for who writes a room and how a
message sent on another node reaches it.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from realtime_server.cluster.bus import Bus, channel_node, channel_room, channel_user


def new_node_key(node_id: str) -> str:
    """A name unique to this process start: a restarted node is a new lease holder."""
    name = node_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{name}/{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Cluster:
    """What a node needs to talk to the others: its bus and the channel names."""

    bus: Bus
    prefix: str

    @property
    def node_key(self) -> str:
        return self.bus.node_key

    def room_channel(self, room_id: str) -> str:
        return channel_room(self.prefix, room_id)

    def user_channel(self, user_id: str) -> str:
        return channel_user(self.prefix, user_id)

    def node_channel(self, node_key: str) -> str:
        return channel_node(self.prefix, node_key)
