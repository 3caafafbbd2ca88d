"""What a call actor needs from the other nodes (issue 13), and what they tell it.

A call has ONE leader in the whole cluster, like a room: the node holding
the call's lease (``storage.leases``, key ``call:<id>``). A new call is led
by the node it was started on (its id is fresh there). On the leader the
call actor is what it always was: the state machine, the timers, the relay.
On every other node the call actor is a *follower*: it forwards each
request of its devices (accept, decline, join, hangup, sdp, ice) to the
leader and holds no state; the leader answers the device directly
(``realtime_server.cluster.calls``). Timers run on the leader only.

A device on another node is, to the leader, a ``RemoteSession`` with the
same three things a local ``Session`` offers the actor: ``push_frame`` (a
reply, or SDP/ICE for that one device), ``closed`` (set when the device's
node says it closed, or when that node's lease runs out) and its identity.
So the state machine's code is the same for both.

If the leader dies, its call's signaling state dies with it: which device
of each user is in the call, what was relayed. A follower whose request is
not answered in time claims the call again (``Reforward``); once it holds
the lease it finds the call unfinished in storage and ends it as ``failed``
(what a restarted single node does with its calls), announces that to every
device, and answers the request ``call_ended``. Media already flowing
between the peers is not affected; they set up a new call to go on.

``CallLink`` is the seam: ``actors/`` knows nothing of buses; a single node
gives its call actors no link (``None``), and nothing here runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from actors.errors import ActorError
from storage.call_claims import CallClaims
from storage.leases import Holder

if TYPE_CHECKING:  # actors.call imports this module
    from actors.call import CallRequests


class CallLink(Protocol):
    node_key: str
    claims: CallClaims

    async def claim(self, call_id: str) -> Holder:
        """Take the call's lease if it is free or its holder is dead; who holds it now."""
        ...

    def forward(self, leader: str, call_id: str, msg: CallRequests) -> None:
        """Send a device's request to the leader; raises ``ActorError`` (unavailable)
        when the bus is down. Unanswered in time, it comes back as ``Reforward``."""
        ...

    def settled(self, msg: CallRequests) -> None:
        """A request that was forwarded is handled here after all (we lead now)."""
        ...

    def to_user(self, room: str, user: str, raw: bytes) -> None:
        """An encoded frame for every device of ``user`` on the other nodes."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class Reforward:
    """Cast by the link: ``msg`` was forwarded and not answered in time. The
    actor claims the call again, then forwards it to whoever leads now, or
    (the leader is gone) takes the call over and handles it."""

    msg: CallRequests

    def fail(self, error: ActorError) -> None:
        self.msg.fail(error)


@dataclass(frozen=True, slots=True)
class Adopt:
    """Cast by the node's sweep to a call left unfinished by a dead leader:
    starting the actor claims it, and the new leader ends it as ``failed``."""
