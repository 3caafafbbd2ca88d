"""Calls across nodes (issue 13): the node's part beside the call actors'
(``actors.call_link``).

- **Forwarding.** A follower actor hands each request of a device here to
  ``forward``: it goes to the leader on ``c:<leader>`` and waits here under
  (connection, request id). The leader answers the device directly: every
  answer is a frame with ``re`` pushed to that one device (``ToSession``),
  which also settles the wait. Unanswered after ``NODE_LEASE_SECONDS`` +
  0.5 s, the request goes back to the actor as a ``Reforward`` (it claims
  the call again: the leader may be dead); after ``ASK_TIMEOUT`` the device
  hears ``unavailable``.
- **Remote devices.** To the leader, a device on another node is a
  ``RemoteSession``: one object per (node, connection) while a call holds
  it, so the actor's "is this the device in the call" checks hold by
  identity. Its ``push_frame`` is a ``ToSession`` to its node; its
  ``closed`` is set when that node reports the connection closed (``Gone``,
  sent by the node that forwarded the device's requests), or when that
  node's lease has run out (checked every lease period): the actor's
  reconnect grace then runs as for a local device.
- **Everyone's devices.** Rings, state changes and missed-call notices go on
  the room's channel as the rooms' ``ToUser`` envelope, one per user: every
  node with a device of that member online already listens there
  (``realtime_server.cluster.rooms``) and delivers it. No second handler
  decodes the rooms' traffic.
- **Once.** A request re-forwarded to the same leader (its answer was late
  or lost) is dropped there if it already arrived: an SDP offer is never
  relayed twice. The device then has its answer, or ``unavailable``.
- **Access.** A membership change or a block anywhere is announced on the
  deployment's ``members`` channel (``ClusterRooms.members_changed``); the
  calls this node leads in that room re-check every participant, so a
  removed member is out of a call led on another node at once.
- **Blocks.** A block between two members of a group call is announced on
  the deployment's ``call-access`` channel (``AccessNotice``, the pair): the
  node leading a call that holds either of them re-reads who is kept apart,
  so their signaling is refused wherever each device is connected.
- **Orphans.** Every few lease periods (and at start) the node looks for
  unfinished calls whose leader is gone and starts their actor
  (``Adopt``): the claim makes this node their leader, which ends them as
  ``failed`` and tells every device.

Why a channel of its own (``c:<node>``) rather than the rooms' ``n:<node>``:
each handler of a channel decodes every message on it, so sharing would make
the rooms' handler decode (and reject) call traffic and the calls' handler
decode every forwarded post; two channels per node cost nothing on Redis.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import trio

from actors.call import (
    CALL,
    Accept,
    AccessChanged,
    CallMessage,
    CallRequests,
    Decline,
    Hangup,
    Join,
    Relay,
    Start,
)
from actors.call_link import Adopt, Reforward
from actors.call_registry import CallRegistry
from actors.errors import ActorUnavailable
from actors.runtime import ActorSystem
from actors.supervision import ServiceNursery, every
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames_calls import CallIceData, CallSdpData
from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import BusUnavailable
from realtime_server.cluster.envelopes import ToUser, members_decoder
from realtime_server.cluster.envelopes import encoder as room_encoder
from realtime_server.hub import Hub
from realtime_server.session import Session
from storage.base import Store
from storage.call_claims import CallClaims
from storage.errors import StoreError
from storage.leases import Holder, Leases

log = logging.getLogger(__name__)

_LOST = "The call's node did not answer; retry."
_BUS_DOWN = "The node running this call cannot be reached (bus down); retry shortly."
_SEEN = 4096  # forwarded requests remembered, to drop a re-forwarded one


# ----- what call nodes say to each other, on c:<node> ---------------------------


class Forward(msgspec.Struct, tag="call.fwd", gc=False):
    """A device's request, from its node (``origin``) to the call's leader."""

    call: str
    origin: str
    conn: int
    user: str
    device: str
    rid: int
    op: str  # start | accept | decline | join | hangup | relay
    room: str = ""
    kind: str = ""
    sdp: CallSdpData | None = None
    ice: CallIceData | None = None


class ToSession(msgspec.Struct, tag="call.to", gc=False):
    """An encoded frame for one device; ``re`` set: the answer to its request."""

    user: str
    conn: int
    raw: bytes
    re: int | None = None


class Gone(msgspec.Struct, tag="call.gone", gc=False):
    """Connection ``conn`` of node ``node`` closed."""

    node: str
    conn: int


class AccessNotice(msgspec.Struct, tag="call.access", gc=False):
    """On ``call-access``: ``users`` blocked or unblocked one another."""

    users: list[str]


CallTraffic = Forward | ToSession | Gone
_decoder = msgspec.msgpack.Decoder(CallTraffic)
_access_decoder = msgspec.msgpack.Decoder(AccessNotice)
_encoder = msgspec.msgpack.Encoder()


def channel_calls(prefix: str, node_key: str) -> str:
    return f"{prefix}c:{node_key}"


# ----- a device on another node, as the leader sees it ---------------------------


@dataclass(frozen=True, slots=True)
class RemoteInfo:
    user_id: str
    device: str
    conn_id: int


class RemoteSession:
    __slots__ = ("node", "info", "user_id", "closed", "_send", "__weakref__")

    def __init__(
        self, node: str, info: RemoteInfo, send: Callable[[str, Forward | ToSession | Gone], None]
    ) -> None:
        self.node = node
        self.info = info
        self.user_id = info.user_id
        self.closed = trio.Event()
        self._send = send

    def __repr__(self) -> str:
        return f"RemoteSession({self.user_id}/{self.info.device}#{self.info.conn_id}@{self.node})"

    def push_frame(self, frame: msgspec.Struct) -> None:
        raw = codec.encode(frame)
        re = getattr(frame, "re", None)
        self._send(self.node, ToSession(self.user_id, self.info.conn_id, raw, re))


@dataclass(slots=True, eq=False)
class _Waiting:
    msg: CallRequests
    call: str
    deadline: float  # re-forward after this
    give_up: float  # answer unavailable after this


class ClusterCalls:
    def __init__(
        self,
        cluster: Cluster,
        store: Store,
        hub: Hub,
        system: ActorSystem,
        registry: CallRegistry,
        frame: Callable[[bytes], bytes],
        *,
        lease_seconds: float,
        ask_timeout: float,
    ) -> None:
        self.cluster = cluster
        self.registry = registry
        self.bus = cluster.bus
        self.node_key = cluster.node_key
        self.leases = Leases(store.db)
        self.claims = CallClaims(store.db)
        self.hub = hub
        self.system = system
        self.frame = frame
        self.lease_seconds = lease_seconds
        self.forward_timeout = lease_seconds + 0.5
        self.ask_timeout = ask_timeout
        self._channel = channel_calls(cluster.prefix, self.node_key)
        # Devices of other nodes that a call here holds (identity per connection).
        self._remote: weakref.WeakValueDictionary[tuple[str, int], RemoteSession] = (
            weakref.WeakValueDictionary()
        )
        # Requests of local devices forwarded to a leader: (conn, rid) -> wait.
        self._waiting: dict[tuple[int, int], _Waiting] = {}
        # Local connections that talked to leaders elsewhere: who to tell when they close.
        self._told: dict[int, set[str]] = {}
        self._seen: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._members_channel = f"{cluster.prefix}members"
        self._access_channel = f"{cluster.prefix}call-access"
        registry.elsewhere = self.access_changed
        self._tasks = ServiceNursery("cluster calls")
        self.unpublished = 0  # frames the bus refused (tests, metrics)

    # ----- running ------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on this node's call channel, time out forwards, sweep orphans."""
        self.bus.subscribe(self._channel, self._on_message)
        self.bus.subscribe(self._members_channel, self._on_members)
        self.bus.subscribe(self._access_channel, self._on_access)
        await self.bus.wait_subscribed()
        try:
            await self._tasks.serve(self._expire_forever, task_status=task_status)
        finally:
            self.bus.unsubscribe(self._channel, self._on_message)
            self.bus.unsubscribe(self._members_channel, self._on_members)
            self.bus.unsubscribe(self._access_channel, self._on_access)

    async def _expire_forever(self) -> None:
        self._tasks.start_soon(self._sweep_forever)
        await every(0.1, self._expire)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("calls: sweep failed: %r", exc)
            await trio.sleep(2 * self.lease_seconds)

    async def sweep(self) -> None:
        """Adopt calls whose leader is gone; close remote devices of dead nodes."""
        for call_id in await self.claims.orphans():
            self._tell(call_id, Adopt())
        nodes = {s.node for s in list(self._remote.values()) if not s.closed.is_set()}
        for node in nodes:
            if not await self.leases.alive(node):
                log.info("calls: node %s is gone; its devices left their calls", node)
                for session in list(self._remote.values()):
                    if session.node == node:
                        session.closed.set()

    def _tell(self, call_id: str, msg: CallMessage) -> None:
        self.system.tell_soon_or_fail(CALL, call_id, msg)

    def _publish(self, node: str, envelope: Forward | ToSession | Gone) -> None:
        self.bus.publish(channel_calls(self.cluster.prefix, node), _encoder.encode(envelope))

    def _send(self, node: str, envelope: Forward | ToSession | Gone) -> None:
        """For remote sessions: a lost push is logged, never raised into the actor."""
        try:
            self._publish(node, envelope)
        except BusUnavailable:
            self.unpublished += 1
            log.warning("calls: a frame for a device on %s was lost (bus down)", node)

    # ----- the link of call actors (actors.call_link.CallLink) ------------------

    async def claim(self, key: str) -> Holder:
        return await self.leases.claim(key, self.node_key)

    def forward(self, leader: str, call_id: str, msg: CallRequests) -> None:
        session = msg.session
        # A remote device's request reaches us when we led once and no longer
        # do: pass it on; its own node keeps the time and watches the device.
        origin = session.node if isinstance(session, RemoteSession) else self.node_key
        envelope = Forward(
            call_id,
            origin,
            session.info.conn_id,
            session.user_id,
            session.info.device,
            msg.request_id,
            _op(msg),
        )
        if isinstance(msg, Start):
            envelope.room, envelope.kind = msg.room, msg.kind
        elif isinstance(msg, Relay):
            if isinstance(msg.payload, CallSdpData):
                envelope.sdp = msg.payload
            else:
                envelope.ice = msg.payload
        try:
            self._publish(leader, envelope)
        except BusUnavailable:
            self.settled(msg)
            raise ActorUnavailable(_BUS_DOWN, code=ErrorCode.UNAVAILABLE) from None
        if not isinstance(session, Session):
            return
        key = (session.info.conn_id, msg.request_id)
        now = trio.current_time()
        waiting = self._waiting.get(key)
        if waiting is not None and waiting.msg is msg:
            waiting.deadline = now + self.forward_timeout
        else:
            self._waiting[key] = _Waiting(
                msg, call_id, now + self.forward_timeout, now + self.ask_timeout
            )
        self._watch(session, leader)

    def settled(self, msg: CallRequests) -> None:
        session = msg.session
        if isinstance(session, Session):
            key = (session.info.conn_id, msg.request_id)
            waiting = self._waiting.get(key)
            if waiting is not None and waiting.msg is msg:
                del self._waiting[key]

    def to_user(self, room: str, user: str, raw: bytes) -> None:
        envelope = ToUser(room, user, raw)
        try:
            self.bus.publish(self.cluster.room_channel(room), room_encoder.encode(envelope))
        except BusUnavailable:
            self.unpublished += 1
            log.warning("call push for %s in %s not published (bus down)", user, room)

    def access_changed(self, users: tuple[str, ...]) -> None:
        """A block made here: the calls the other nodes lead re-check the pair."""
        try:
            self.bus.publish(self._access_channel, _encoder.encode(AccessNotice(list(users))))
        except BusUnavailable:
            self.unpublished += 1
            log.warning("calls: a block between %s not announced (bus down)", users)

    # ----- local devices that talk to leaders elsewhere ------------------------------

    def _watch(self, session: Session, leader: str) -> None:
        conn = session.info.conn_id
        leaders = self._told.get(conn)
        if leaders is None:
            leaders = self._told[conn] = set()
            self._tasks.start_if_running(self._tell_when_closed, session)
        leaders.add(leader)

    async def _tell_when_closed(self, session: Session) -> None:
        await session.closed.wait()
        conn = session.info.conn_id
        for leader in sorted(self._told.pop(conn, set())):
            self._send(leader, Gone(self.node_key, conn))
        for key in [k for k in self._waiting if k[0] == conn]:
            del self._waiting[key]  # nobody is left to answer

    def _expire(self) -> None:
        now = trio.current_time()
        for key, waiting in list(self._waiting.items()):
            if waiting.deadline > now:
                continue
            if waiting.give_up <= now:
                del self._waiting[key]
                waiting.msg.reply_err(ErrorCode.UNAVAILABLE, _LOST)
                continue
            waiting.deadline = math.inf  # until the actor forwards it again
            self._tell(waiting.call, Reforward(waiting.msg))

    # ----- what arrives on c:<this node> ----------------------------------------------

    def _on_message(self, payload: bytes) -> None:
        try:
            msg = _decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("call channel: undecodable message dropped")
            return
        match msg:
            case ToSession(user, conn, raw, re):
                if re is not None:
                    self._waiting.pop((conn, re), None)
                for session in self.hub.sessions_of(user):
                    if session.info.conn_id == conn:
                        session.push(self.frame(raw))
            case Forward() if self._first_time(msg):
                request = self._request(msg)
                if request is not None:
                    self._tell(msg.call, request)
            case Gone(node, conn):
                remote = self._remote.get((node, conn))
                if remote is not None:
                    remote.closed.set()

    def _first_time(self, msg: Forward) -> bool:
        key = (msg.origin, msg.conn, msg.rid)
        if key in self._seen:
            log.debug("call %s: request %r forwarded again; dropped", msg.call, key)
            return False
        self._seen[key] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return True

    def _on_members(self, payload: bytes) -> None:
        try:
            notice = members_decoder.decode(payload)
        except msgspec.DecodeError:
            return  # the rooms' handler of this channel logs it
        for call_id in self.registry.calls_in(notice.room):
            if self.system.is_live(CALL, call_id):
                self._tell(call_id, AccessChanged((), everyone=True))

    def _on_access(self, payload: bytes) -> None:
        try:
            notice = _access_decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("call-access channel: undecodable message dropped")
            return
        users = tuple(notice.users)
        # The leader holds every participant in its registry (``holder``).
        calls = {c for u in users if (c := self.registry.holder(u)) is not None}
        for call_id in sorted(calls):
            if self.system.is_live(CALL, call_id):
                self._tell(call_id, AccessChanged(users))

    def _remote_session(self, msg: Forward) -> RemoteSession:
        key = (msg.origin, msg.conn)
        session = self._remote.get(key)
        if session is None or session.closed.is_set():
            info = RemoteInfo(msg.user, msg.device, msg.conn)
            session = self._remote[key] = RemoteSession(msg.origin, info, self._send)
        return session

    def _request(self, msg: Forward) -> CallRequests | None:
        session = self._remote_session(msg)
        match msg.op:
            case "start":
                return Start(session, msg.rid, room=msg.room, kind=msg.kind)
            case "accept":
                return Accept(session, msg.rid)
            case "decline":
                return Decline(session, msg.rid)
            case "join":
                return Join(session, msg.rid)
            case "hangup":
                return Hangup(session, msg.rid)
            case "relay" if msg.sdp is not None:
                return Relay(session, msg.rid, payload=msg.sdp)
            case "relay" if msg.ice is not None:
                return Relay(session, msg.rid, payload=msg.ice)
        log.warning("call channel: unknown request %r dropped", msg.op)
        return None


_OPS: dict[type, str] = {
    Start: "start",
    Accept: "accept",
    Decline: "decline",
    Join: "join",
    Hangup: "hangup",
    Relay: "relay",
}


def _op(msg: CallRequests) -> str:
    return _OPS[type(msg)]
