"""A user's devices wherever they are connected (issue 13, item 3).

Channels (names under the deployment's prefix):

- ``u:<user>``: held by every node where the user has a session; the hub
  says when their first session here arrives and their last one leaves, and
  the subscription follows. What a node publishes there reaches the user's
  sessions on the OTHER nodes (a node never hears itself, it delivered
  locally first).
- ``users``: one channel every node holds, for one frame to many users at
  once (an announcement to everyone, a notification to a plan's users): one
  publish instead of one per user; each node keeps what concerns its own
  sessions.

Envelopes are a kind prefix (one length byte, the kind's ASCII name) then
the body, so the common case, ``push``, forwards already-framed WebSocket
bytes with no encoding at all. Built-in kinds: ``push`` (body: framed bytes
for every session of the user), ``close`` (body: msgpack ``CloseOrder``:
remote sign-out), and on ``users``: ``many`` (msgpack ``ManyUsers``) and
``all`` (framed bytes for every session). Other modules register their own
kinds on ``u:`` channels with ``on``; a kind nobody registered is ignored
with a debug log (a newer node may speak kinds an older one does not know).

Single node (no cluster): every method is the local delivery it replaces,
with no encoding and no bus.

Bus down: local delivery still happens; pushes that could not reach other
nodes are counted in ``unpublished`` and logged at debug (a client that
reconnects reads its state over REST anyway). Closing sockets (sign-out) is
security-relevant: a close that could not be published is kept and
published again when the bus is back.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable

import msgspec
import trio

from protocol.errors import CloseCode
from realtime_server.cluster import Cluster
from realtime_server.cluster.bus import BusUnavailable, Handler
from realtime_server.hub import Hub

log = logging.getLogger(__name__)

KindHandler = Callable[[str, bytes], None]  # (user id, body)

# Up to this many recipients, one publish per user (only their nodes hear
# it); beyond, one publish on ``users`` that every node filters.
PER_USER_MAX = 8
# Sign-outs waiting for the bus to come back; beyond it the oldest are
# dropped (those sockets still close when their access token expires).
PENDING_CLOSES_MAX = 10_000


class CloseOrder(msgspec.Struct, array_like=True):
    sessions: list[str]
    code: int


class ManyUsers(msgspec.Struct, array_like=True):
    users: list[str]
    data: bytes


_close_encoder = msgspec.msgpack.Encoder()
_close_decoder = msgspec.msgpack.Decoder(CloseOrder)
_many_decoder = msgspec.msgpack.Decoder(ManyUsers)


def header(kind: str) -> bytes:
    raw = kind.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ValueError(f"an envelope kind has 1 to 255 ASCII characters, got {kind!r}")
    return bytes((len(raw),)) + raw


def envelope(kind: str, body: bytes) -> bytes:
    return header(kind) + body


def open_envelope(payload: bytes) -> tuple[str, bytes]:
    """(kind, body); ValueError when ``payload`` is not an envelope."""
    if not payload:
        raise ValueError("empty envelope")
    end = 1 + payload[0]
    if len(payload) < end:
        raise ValueError("truncated envelope kind")
    try:
        kind = payload[1:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError("envelope kind is not ASCII") from exc
    return kind, payload[end:]


_PUSH = header("push")
_CLOSE = header("close")
_MANY = header("many")
_ALL = header("all")


def users_channel(prefix: str) -> str:
    return f"{prefix}users"


class UserChannels:
    """What the node calls to reach a user's devices on every node."""

    def __init__(self, hub: Hub, cluster: Cluster | None) -> None:
        self._hub = hub
        self._cluster = cluster
        self._kinds: dict[str, KindHandler] = {"push": self._on_push, "close": self._on_close}
        self._subscribed: dict[str, Handler] = {}  # user -> the handler held on u:<user>
        self._pending_closes: deque[tuple[str, bytes]] = deque(maxlen=PENDING_CLOSES_MAX)
        # Whether a user may have sessions on another node (the cluster
        # presence view); without one, assume they may.
        self.elsewhere: Callable[[str], bool] = lambda user: True
        self.unpublished: Counter[str] = Counter()  # per envelope kind, while the bus is down
        # (user, device sessions) another node signed out: the node refuses
        # their access tokens here too (TokenService.signed_out_elsewhere).
        self.revoked: Callable[[str, list[str]], None] | None = None
        if cluster is not None:
            hub.on_user(self._arrived, self._left)
            cluster.bus.subscribe(users_channel(cluster.prefix), self._on_users_channel)
            cluster.bus.on_reconnect(self._republish_closes)

    # ----- the API ----------------------------------------------------------------

    def send(self, user_id: str, data: bytes) -> int:
        """Push framed ``data`` to every session of the user on every node;
        returns how many sessions here got it."""
        pushed = 0
        for session in self._hub.sessions_of(user_id):
            session.push(data)
            pushed += 1
        if self._cluster is not None:
            self._publish_quietly(user_id, "push", _PUSH + data)
        return pushed

    def send_elsewhere_if_online(self, user_id: str, data: bytes) -> None:
        """Only the other nodes' part of ``send``, and only if the presence
        view has the user on another node (typing: frequent, and lost without
        harm for someone who just connected)."""
        if self._cluster is not None and self.elsewhere(user_id):
            self._publish_quietly(user_id, "push", _PUSH + data)

    def send_many(self, user_ids: Collection[str], data: bytes) -> int:
        """``send`` to several users, with at most one publish per user and
        one publish in all beyond ``PER_USER_MAX``; returns sessions here."""
        pushed = 0
        for user in user_ids:
            for session in self._hub.sessions_of(user):
                session.push(data)
                pushed += 1
        cluster = self._cluster
        if cluster is None or not user_ids:
            return pushed
        if len(user_ids) <= PER_USER_MAX:
            for user in user_ids:
                self._publish_quietly(user, "push", _PUSH + data)
        else:
            body = _close_encoder.encode(ManyUsers(list(user_ids), data))
            self._publish_channel_quietly(users_channel(cluster.prefix), "many", _MANY + body)
        return pushed

    def send_all(self, data: bytes) -> int:
        """Push ``data`` to every session on every node; returns sessions here."""
        sessions = list(self._hub.all_sessions())
        for session in sessions:
            session.push(data)
        cluster = self._cluster
        if cluster is not None:
            self._publish_channel_quietly(users_channel(cluster.prefix), "all", _ALL + data)
        return len(sessions)

    def close_sessions(self, user_id: str, session_ids: Iterable[str], code: CloseCode) -> int:
        """Close the sockets of these device sessions on every node; returns
        how many were closed here."""
        wanted = list(session_ids)
        closed = self._hub.close_sessions(user_id, wanted, code)
        if self._cluster is not None:
            payload = _CLOSE + _close_encoder.encode(CloseOrder(wanted, int(code)))
            try:
                self._cluster.bus.publish(self._cluster.user_channel(user_id), payload)
            except BusUnavailable:
                log.warning(
                    "bus down: closing %d sessions of %s on other nodes when it is back",
                    len(wanted),
                    user_id,
                )
                self.unpublished["close"] += 1
                self._pending_closes.append((user_id, payload))
        return closed

    def on(self, kind: str, handler: KindHandler) -> None:
        """``handler(user_id, body)`` runs for each ``kind`` envelope another
        node publishes to a user with sessions here (in the bus task: it must
        only hand work over, never wait)."""
        header(kind)  # validates the name
        if kind in self._kinds:
            raise ValueError(f"envelope kind {kind!r} already has a handler")
        self._kinds[kind] = handler

    def publish(self, user_id: str, kind: str, body: bytes) -> None:
        """``body`` as a ``kind`` envelope to the user's other nodes (nothing
        on a single node). Raises ``BusUnavailable`` while the bus is down."""
        if self._cluster is not None:
            self._cluster.bus.publish(self._cluster.user_channel(user_id), envelope(kind, body))

    # ----- subscriptions --------------------------------------------------------------

    async def ready(self, user_id: str, within: float) -> bool:
        """Wait (at most ``within`` s) until the broker has ``u:<user>``, so that
        what another node sends the user right after ``welcome`` reaches this
        session. False (logged) when the bus is down or slow: the session is
        still served here, and the bus subscribes again by itself when back."""
        if self._cluster is None or user_id not in self._subscribed:
            return True
        failure = "it did not confirm in time"
        with trio.move_on_after(within):
            try:
                await self._cluster.bus.wait_subscribed()
            except BusUnavailable:
                failure = "the bus is down"
            else:
                return True
        log.warning(
            "u:%s not subscribed before welcome (%s): until the bus is back, what other"
            " nodes send this user misses this node's sessions",
            user_id,
            failure,
        )
        return False

    def _arrived(self, user_id: str) -> None:
        assert self._cluster is not None
        handler = self._subscribed.get(user_id)
        if handler is None:
            handler = self._subscribed[user_id] = self._handler_for(user_id)
            self._cluster.bus.subscribe(self._cluster.user_channel(user_id), handler)

    def _left(self, user_id: str) -> None:
        assert self._cluster is not None
        handler = self._subscribed.pop(user_id, None)
        if handler is not None:
            self._cluster.bus.unsubscribe(self._cluster.user_channel(user_id), handler)

    def _handler_for(self, user_id: str) -> Handler:
        def received(payload: bytes) -> None:
            self._dispatch(user_id, payload)

        return received

    def subscribed_users(self) -> int:
        return len(self._subscribed)

    # ----- receiving ------------------------------------------------------------------

    def _dispatch(self, user_id: str, payload: bytes) -> None:
        try:
            kind, body = open_envelope(payload)
        except ValueError as exc:
            log.debug("bad envelope for %s ignored: %s", user_id, exc)
            return
        handler = self._kinds.get(kind)
        if handler is None:
            log.debug("envelope kind %r for %s has no handler here; ignored", kind, user_id)
            return
        handler(user_id, body)

    def _on_push(self, user_id: str, data: bytes) -> None:
        for session in self._hub.sessions_of(user_id):
            session.push(data)

    def _on_close(self, user_id: str, body: bytes) -> None:
        try:
            order = _close_decoder.decode(body)
            code = CloseCode(order.code)
        except (msgspec.DecodeError, ValueError) as exc:
            log.debug("bad close order for %s ignored: %s", user_id, exc)
            return
        if code == CloseCode.SESSION_REVOKED and self.revoked is not None:
            self.revoked(user_id, order.sessions)
        self._hub.close_sessions(user_id, order.sessions, code)

    def _on_users_channel(self, payload: bytes) -> None:
        try:
            kind, body = open_envelope(payload)
            if kind == "all":
                for session in self._hub.all_sessions():
                    session.push(body)
            elif kind == "many":
                many = _many_decoder.decode(body)
                for user in many.users:
                    for session in self._hub.sessions_of(user):
                        session.push(many.data)
            else:
                log.debug("envelope kind %r on the users channel ignored", kind)
        except (ValueError, msgspec.DecodeError) as exc:
            log.debug("bad envelope on the users channel ignored: %s", exc)

    # ----- publishing -----------------------------------------------------------------

    def _publish_quietly(self, user_id: str, kind: str, payload: bytes) -> None:
        assert self._cluster is not None
        self._publish_channel_quietly(self._cluster.user_channel(user_id), kind, payload)

    def _publish_channel_quietly(self, channel: str, kind: str, payload: bytes) -> None:
        assert self._cluster is not None
        try:
            self._cluster.bus.publish(channel, payload)
        except BusUnavailable:
            self.unpublished[kind] += 1
            log.debug("bus down: %s on %s reached this node's sessions only", kind, channel)

    def _republish_closes(self) -> None:
        assert self._cluster is not None
        while self._pending_closes:
            user_id, payload = self._pending_closes[0]
            try:
                self._cluster.bus.publish(self._cluster.user_channel(user_id), payload)
            except BusUnavailable:
                return  # down again: the next reconnect tries the rest
            self._pending_closes.popleft()
