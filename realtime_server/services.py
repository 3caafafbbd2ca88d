"""What socket handlers and the gateway reach besides the session: the node's services.

``open_node`` builds one ``NodeServices`` and hands it to the gateway, which
passes it to every handler in its ``FrameContext``. An attribute, not a name
looked up in a dict: mypy knows each service's type, and a service that only
some nodes have is ``X | None`` (on a single node there is no cluster link).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # these modules import the dispatcher, which imports this one
    from actors.ai_service import AiService
    from bridge.accounts.tokens import TokenService
    from bridge.billing.quota import QuotaService
    from realtime_server.admin_stats import LiveStats
    from realtime_server.cluster.rooms import ClusterRooms
    from realtime_server.cluster.users import UserChannels
    from realtime_server.handlers_typing import TypingTracker
    from realtime_server.presence import PresenceTracker
    from storage.base import Store
    from storage.sql.writer import MessageWriter


@dataclass(frozen=True, slots=True)
class NodeServices:
    store: Store
    writer: MessageWriter
    tokens: TokenService
    typing: TypingTracker
    presence: PresenceTracker
    ai: AiService
    quota: QuotaService
    # The node's one clock, ms since the epoch (tests move it).
    clock: Callable[[], int]
    # A frame for every online device of a user, on any node.
    push_to_user: Callable[[str, bytes], None]
    stats: LiveStats
    # Several nodes (issue 13): the room link; None on a single node.
    cluster_rooms: ClusterRooms | None = None
    # Several nodes: the per-user channels (welcome waits for them); None on one node.
    users: UserChannels | None = None
