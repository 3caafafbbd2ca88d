"""CallActor: one call's state machine, its signaling relay and its history.

Rules:
- Decisions are made by ``actors.call_rules`` (pure); this actor does the
  I/O around them: claims users in the node's ``CallRegistry``, persists
  every transition, pushes frames, runs the ring and reconnect timers.
- Every transition is one ``call.state`` frame, encoded once, pushed to every
  device of every user the call involves (not to users it found busy). The
  start is announced as ``call.ring`` to the callees instead.
- Signaling (``call.sdp``/``call.ice``) goes only from the device that is in
  the call to the device of the peer that is in the call, in the order this
  inbox received it, which is the order each sender sent it.
- A request the call refuses answers ``err`` to its session and changes
  nothing; a request that changes the call answers first, then the
  ``call.state`` follows.
- A call is created by ``Start`` on a fresh id. Anything else addressed to an
  id that storage does not know stops the actor with ``not_found``. A call
  found unfinished in storage on start (this actor crashed, or the node
  stopped mid-call) is ended as ``failed``: its signaling state is gone.
- The actor never stops while its call is not over (``may_stop_idle``).
- Several nodes (issue 13, ``actors.call_link``): with a link, the actor on
  the node holding the call's lease leads; elsewhere it forwards requests
  there. Busy is decided in the shared ``call_claims`` table inside the
  transaction that stores the call (``storage.call_claims``), every write is
  fenced by the call's lease, and pushes also go to the users' devices on
  other nodes. Without a link nothing of this runs.
- Access follows the room (issue 12): ``accept`` and ``join`` of a group call
  re-read the room's members from storage, and ``AccessChanged`` (cast by
  the REST bridge after a member is removed or leaves, and after a block or
  unblock) re-checks the users it names: one no longer a member is out of
  the call at once; a block ends a 1:1 call, and in a group call the pair
  is kept apart: signaling between them is refused (``forbidden``), as for
  a pair that was blocked before the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, assert_never

import msgspec
import trio

from actors import call_rules as rules
from actors.call_link import Adopt, CallLink, Reforward
from actors.call_registry import CallRegistry
from actors.call_rules import Call, CallProblem, Change, Participant, Status
from actors.errors import ActorError, ActorUnavailable
from actors.room import post_as
from actors.runtime import Actor, ActorKind, ActorRef, ActorSystem
from actors.sessions import Requester, SessionHub
from protocol import codec
from protocol.errors import ErrorCode
from protocol.frames import Err, Ok
from protocol.frames_calls import (
    CallIceData,
    CallMissed,
    CallMissedData,
    CallOk,
    CallRemoteIce,
    CallRemoteSdp,
    CallRing,
    CallSdpData,
    CallStateData,
    CallStateFrame,
    IceServer,
    RemoteIceData,
    RemoteSdpData,
)
from realtime_server.base import metrics
from storage.base import Store, now_ms
from storage.call_claims import LEASE_PREFIX, CallerBusy
from storage.calls import CallParticipantRecord, CallRecord, CallStore
from storage.contacts import blocked_either_way, contacts_store
from storage.errors import Fenced, StoreError
from storage.fence import ROOM_FENCE

log = logging.getLogger(__name__)

CALL: ActorKind[CallMessage] = ActorKind("call")
SYSTEM_SENDER = "system"


async def _blocked(store: Store, a: str, b: str) -> bool:
    """Whether ``a`` or ``b`` has blocked the other: the one place calls ask about blocks."""
    return await blocked_either_way(store, a, b)


@dataclass(frozen=True, slots=True)
class CallDeps:
    store: Store
    calls: CallStore
    hub: SessionHub
    registry: CallRegistry
    system: ActorSystem  # to post the missed-call notice in the room
    frame: Callable[[bytes], bytes]  # wraps an encoded frame for the wire
    ice_servers: Callable[[str], list[IceServer]]  # per user: TURN credentials name them
    ring_seconds: float = 45.0
    reconnect_grace: float = 15.0
    max_participants: int = 8
    clock: Callable[[], int] = now_ms
    # bridge.notifications.notifier.Notifier: a missed call is also a stored
    # notification (issue 15); None: the live notice and the room message only.
    notifier: Any = None
    # Told who a new call rings (call id, room, caller, kind, callees), to
    # push to those offline (issue 15, part 3; non-blocking).
    ringing: Callable[[str, str, str, str, list[str]], None] | None = None
    # The other nodes (issue 13); None on a single node.
    link: CallLink | None = None


# ----- messages --------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class CallRequest:
    """A client's request, cast from the gateway; answered on ``session``."""

    session: Requester
    request_id: int

    @property
    def user(self) -> str:
        return str(self.session.user_id)

    @property
    def device(self) -> str:
        return str(self.session.info.device)

    def reply(self, frame: msgspec.Struct) -> None:
        self.session.push_frame(frame)

    def reply_err(self, code: ErrorCode, msg: str) -> None:
        self.session.push_frame(Err(code=code.value, msg=msg, re=self.request_id))

    def fail(self, error: ActorError) -> None:
        # The call crashed, stopped or does not exist: the device must hear.
        self.reply_err(error.code, error.message)


@dataclass(frozen=True, slots=True, eq=False)
class Start(CallRequest):
    room: str
    kind: str


@dataclass(frozen=True, slots=True, eq=False)
class Accept(CallRequest):
    pass


@dataclass(frozen=True, slots=True, eq=False)
class Decline(CallRequest):
    pass


@dataclass(frozen=True, slots=True, eq=False)
class Join(CallRequest):
    pass


@dataclass(frozen=True, slots=True, eq=False)
class Hangup(CallRequest):
    pass


@dataclass(frozen=True, slots=True, eq=False)
class Relay(CallRequest):
    payload: CallSdpData | CallIceData


@dataclass(frozen=True, slots=True, eq=False)
class SessionGone:
    user: str
    session: Requester


@dataclass(frozen=True, slots=True)
class AccessChanged:
    """``users`` may have lost (or regained) the right to be in this call with
    someone: removed from the room, left it, blocked or unblocked someone.
    ``everyone``: who is not known (a change announced by another node)."""

    users: tuple[str, ...]
    everyone: bool = False


@dataclass(frozen=True, slots=True)
class GraceOver:
    user: str
    epoch: int


@dataclass(frozen=True, slots=True)
class RingOver:
    pass


CallRequests = Start | Accept | Decline | Join | Hangup | Relay
"""A device's requests: each answers on its session."""

CallMessage = CallRequests | SessionGone | AccessChanged | GraceOver | RingOver | Reforward | Adopt
"""Everything a call actor takes (all casts): ``ActorRef[CallMessage]``."""


async def access_changed(
    system: ActorSystem, registry: CallRegistry, users: Iterable[str], *, room: str | None = None
) -> None:
    """Tell every live call that may involve ``users`` to re-check their access.

    For a membership change name the ``room``: every call running in it
    hears. For a block, the calls holding either user hear (a 1:1 call holds
    both sides while it rings; a group invitation is re-checked on join).
    Only live calls are told: this never spawns an actor.
    """
    users = tuple(dict.fromkeys(users))
    if room is None and registry.elsewhere is not None:
        # A block: a call led on another node keeps the pair apart too (a
        # membership change reaches them on the rooms' ``members`` channel).
        registry.elsewhere(users)
    ids = set(registry.calls_in(room)) if room is not None else set()
    ids.update(h for u in users if (h := registry.holder(u)) is not None)
    for call_id in sorted(ids):
        if system.is_live(CALL, call_id):
            try:
                await system.ref(CALL, call_id).tell(AccessChanged(users))
            except ActorError as exc:  # the node is stopping
                log.warning("call %s: access change not told: %r", call_id, exc)


# ----- records ---------------------------------------------------------------


def to_record(call: Call) -> CallRecord:
    return CallRecord(
        id=call.id,
        room_id=call.room,
        caller_id=call.caller,
        kind=call.kind,
        is_group=call.group,
        state=call.state.value,
        outcome=call.outcome.value if call.outcome else None,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        participants=tuple(
            CallParticipantRecord(p.user, p.status.value, p.device, p.joined_at, p.left_at)
            for p in call.participants.values()
        ),
    )


def from_record(record: CallRecord) -> Call:
    call = Call(
        id=record.id,
        room=record.room_id,
        caller=record.caller_id,
        kind=record.kind,
        group=record.is_group,
        started_at=record.started_at,
        state=rules.State(record.state),
        outcome=rules.Outcome(record.outcome) if record.outcome else None,
        answered_at=record.answered_at,
        ended_at=record.ended_at,
    )
    for p in record.participants:
        call.participants[p.user_id] = Participant(
            p.user_id, Status(p.status), p.device, p.joined_at, p.left_at
        )
    return call


# ----- the actor -------------------------------------------------------------


class CallActor(Actor[CallMessage]):
    def __init__(self, key: str, ref: ActorRef[CallMessage], deps: CallDeps) -> None:
        super().__init__(key, ref)
        self.deps = deps
        self.call: Call | None = None
        # user -> the session of the device that is in the call for them
        self.sessions: dict[str, Requester] = {}
        self.watchers: dict[str, trio.CancelScope] = {}
        self.grace: dict[str, tuple[int, trio.CancelScope]] = {}
        self.ring_timer: trio.CancelScope | None = None
        self.held: set[str] = set()
        self.epochs = 0
        # Group calls: pairs that blocked one another; no signaling between them.
        self.apart: set[frozenset[str]] = set()
        # Several nodes: the node holding the call's lease (None: not asked
        # yet, or a new call), and whether we lost it while leading.
        self.leader: str | None = None
        self.lost = False

    async def on_start(self) -> None:
        link = self.deps.link
        try:
            record = await self.deps.calls.get_call(self.key)
            if record is None:
                return  # a new call: only Start may come
            if link is not None and record.state != rules.State.ENDED:
                await self._claim(link)
                if not self.leads:
                    return  # a follower: the leader has the call
        except StoreError as exc:
            raise ActorUnavailable(
                "Call storage is unavailable; retry.", code=ErrorCode.UNAVAILABLE
            ) from exc
        await self._resume(record)

    async def _resume(self, record: CallRecord) -> None:
        self.call = from_record(record)
        if not self.call.ended:
            # A previous incarnation crashed (or, with several nodes, the
            # leader died): its timers, sessions and claims are gone or
            # stale, and without them the call cannot go on.
            self.deps.registry.cancel_all(self.key)
            self.deps.registry.release_call(self.key)
            await self._apply(rules.fail(self.call, self.deps.clock()))

    def may_stop_idle(self) -> bool:
        return self.call is None or self.call.ended

    # ----- several nodes -----------------------------------------------------

    @property
    def leads(self) -> bool:
        """True where this actor runs the call (always on one node)."""
        return self.deps.link is None or self.leader == self.deps.link.node_key

    async def _claim(self, link: CallLink) -> None:
        holder = await link.claim(LEASE_PREFIX + self.key)
        self.leader = holder.node_key
        # Every write this task makes for the call checks the lease is still ours.
        ROOM_FENCE.set((LEASE_PREFIX + self.key, holder.token) if self.leads else None)

    async def _reclaim(self, link: CallLink) -> None:
        """Claim again; leading now without the call in memory (its leader
        died, or we were cut off), take it over from storage."""
        await self._claim(link)
        if self.leads and self.call is None:
            record = await self.deps.calls.get_call(self.key)
            if record is not None:
                await self._resume(record)

    async def _route(self, msg: CallMessage) -> CallMessage | None:
        """With several nodes: the message to handle here, or None when it
        was forwarded to the leader (or is the leader's business)."""
        link = self.deps.link
        assert link is not None
        # A forward unanswered, a sweep that found the leader gone, or our own
        # lease lost: ask again who leads (perhaps us now).
        if isinstance(msg, Reforward | Adopt) or self.lost:
            self.lost = False
            inner = msg.msg if isinstance(msg, Reforward) else msg
            try:
                await self._reclaim(link)
            except StoreError:
                if isinstance(inner, CallRequest):
                    inner.reply_err(ErrorCode.UNAVAILABLE, "Storage is unavailable; retry.")
                return None
            msg = inner
        if isinstance(msg, Adopt):
            return None  # claiming was the point
        if self.leads or self.leader is None or (self.call is not None and self.call.ended):
            if isinstance(msg, CallRequest):
                link.settled(msg)
            return msg
        if isinstance(msg, CallRequest):
            try:
                link.forward(self.leader, self.key, msg)
            except ActorError as exc:
                msg.reply_err(exc.code, exc.message)
        # Timers and session watchers run on the leader: here they are stale.
        return None

    def _step_down(self) -> None:
        """Our lease was taken (we were paused or cut off past it): the new
        leader has ended the call as failed; forget it and follow."""
        log.error("call %s: lease lost to another node; stepping down", self.key)
        self.deps.registry.cancel_all(self.key)
        self.deps.registry.release_call(self.key)
        for watcher in self.watchers.values():
            watcher.cancel()
        self.watchers.clear()
        self.sessions.clear()
        self.grace.clear()
        self.held.clear()
        self.ring_timer = None
        self.call = None
        self.lost = True
        ROOM_FENCE.set(None)

    async def handle_cast(self, msg: CallMessage) -> None:
        if self.deps.link is not None:
            routed = await self._route(msg)
            if routed is None:
                return
            msg = routed
        if self.call is None and not isinstance(msg, Start):
            if isinstance(msg, CallRequest):
                raise ActorUnavailable("No such call.", code=ErrorCode.NOT_FOUND)
            return  # a stale timer of a call that never was stored
        try:
            match msg:
                case Start():
                    await self._start(msg)
                case Accept():
                    await self._accept(msg)
                case Join():
                    await self._join(msg)
                case Decline():
                    await self._simple(msg, rules.decline)
                case Hangup():
                    await self._simple(msg, rules.hangup)
                case Relay():
                    self._relay(msg)
                case SessionGone(user, session):
                    await self._session_gone(user, session)
                case GraceOver(user, epoch):
                    await self._grace_over(user, epoch)
                case RingOver():
                    await self._ring_over()
                case AccessChanged(users, everyone):
                    await self._access_changed(
                        tuple(self._call.participants) if everyone else users
                    )
                case Reforward() | Adopt():  # for the link (``_route``); none on one node
                    raise ActorError(f"call cannot take {type(msg).__name__} here")
                case _:
                    assert_never(msg)
        except (CallProblem, StoreError) as exc:
            # Only reads can raise StoreError here (writes are handled where
            # they happen), so nothing has changed.
            problem = (
                exc
                if isinstance(exc, CallProblem)
                else CallProblem(ErrorCode.UNAVAILABLE, "Storage is unavailable; retry.")
            )
            if isinstance(msg, Start) and self.call is None:
                # Nothing was created: answer through ``fail`` and stop at once.
                raise ActorUnavailable(problem.message, code=problem.code) from None
            if isinstance(msg, CallRequest):
                msg.reply_err(problem.code, problem.message)
            else:
                log.warning("call %s: %s not handled: %r", self.key, type(msg).__name__, exc)

    # ----- requests ----------------------------------------------------------

    async def _start(self, msg: Start) -> None:
        if self.call is not None:
            raise CallProblem(ErrorCode.CONFLICT, "This call id is taken.")
        deps, caller = self.deps, msg.user
        room = await deps.store.get_room(msg.room)
        members = [m.user_id for m in room.members] if room is not None else []
        if room is None or caller not in members:
            raise CallProblem(
                ErrorCode.NOT_MEMBER, "You are not a member of this room (or it does not exist)."
            )
        blocked = [m for m in members if m != caller and await _blocked(deps.store, caller, m)]
        callees = rules.callees(caller, room.kind, members, blocked)
        # From here to the claims nothing awaits: the busy check and the
        # claims are one step, so racing calls cannot share a user.
        if deps.registry.holder(caller) is not None:
            raise CallProblem(ErrorCode.ALREADY_IN_CALL, "You are already in another call.")

        def new_call(busy: set[str]) -> Call:
            return rules.new_call(
                call_id=self.key,
                room=room.id,
                room_kind=room.kind,
                caller=caller,
                device=msg.device,
                kind=msg.kind,
                callees=callees,
                busy=busy | deps.registry.busy_elsewhere(callees, self.key),
                now=deps.clock(),
            )

        if deps.link is not None:
            call = await self._start_shared(deps.link, caller, callees, new_call)
            self._hold_locally(rules.claims(call))
        else:
            call = new_call(set())
            self._hold_locally(rules.claims(call))
            try:
                await deps.calls.insert_call(to_record(call))
            except StoreError as exc:
                log.warning("call %s not stored: %r", self.key, exc)
                deps.registry.release_call(self.key)
                # Stops this actor: the caller gets ``unavailable`` and may retry.
                raise ActorUnavailable(
                    "The call could not be stored; try again.", code=ErrorCode.UNAVAILABLE
                ) from exc
        self.call = call
        metrics.call_started()
        msg.reply(CallOk(re=msg.request_id, d=rules.view(call, deps.ice_servers(caller))))
        if call.ended:  # every callee was busy
            metrics.call_ended(call.outcome)
            self._announce(Change("ended", caller, ()), users=[caller])
            self.held.clear()
            return
        deps.registry.open_call(self.key, room.id)
        if call.group:
            self.apart = {frozenset((caller, m)) for m in blocked}
        self._attach(caller, msg.session)
        self._announce(Change("started", caller, ()), users=[caller])
        for user in call.with_status(Status.RINGING):
            ring = CallRing(d=rules.view(call, deps.ice_servers(user)))
            for session in deps.hub.sessions_of(user):
                session.push_frame(ring)
            if deps.link is not None:
                deps.link.to_user(room.id, user, codec.encode(ring))
        if deps.ringing is not None:
            deps.ringing(
                call.id, room.id, caller, call.kind, list(call.with_status(Status.RINGING))
            )
        self.ring_timer = deps.registry.after(self.key, deps.ring_seconds, self.ref, RingOver())

    async def _start_shared(
        self,
        link: CallLink,
        caller: str,
        callees: list[str],
        new_call: Callable[[set[str]], Call],
    ) -> Call:
        """Several nodes: lead the new call, and decide who is busy and store
        the call in one transaction with the shared claims."""
        made: list[Call] = []

        def build(busy: set[str]) -> tuple[CallRecord, set[str]]:
            made.append(new_call(busy))
            return to_record(made[-1]), rules.claims(made[-1])

        try:
            await self._claim(link)
            if not self.leads:
                raise CallProblem(ErrorCode.CONFLICT, "This call id is taken.")
            await link.claims.start(self.key, link.node_key, caller, callees, build)
        except CallerBusy:
            raise CallProblem(
                ErrorCode.ALREADY_IN_CALL, "You are already in another call."
            ) from None
        except StoreError as exc:
            log.warning("call %s not stored: %r", self.key, exc)
            raise ActorUnavailable(
                "The call could not be stored; try again.", code=ErrorCode.UNAVAILABLE
            ) from exc
        return made[-1]

    async def _hold_shared(self, user: str) -> bool:
        """Several nodes: make ``user`` busy with this call in the shared
        claims before they join it; True if this claimed them just now."""
        link = self.deps.link
        if link is None or user in self.held:
            return False
        if not await link.claims.claim(self.key, link.node_key, user):
            raise CallProblem(ErrorCode.ALREADY_IN_CALL, "You are already in another call.")
        return True

    async def _unhold_shared(self, user: str) -> None:
        """Give back a claim whose join the call refused."""
        link = self.deps.link
        assert link is not None
        try:
            await link.claims.release(self.key, [user])
        except StoreError as exc:  # taken over once the call ends
            log.warning("call %s: claim of %s not released: %r", self.key, user, exc)

    async def _accept(self, msg: Accept) -> None:
        call, user = self._call, msg.user
        # Reads first: from the transition on nothing may fail before _apply.
        is_member = await self._is_member(user)
        await self._keep_apart(user)
        self._check_free(user)
        fresh = await self._hold_shared(user)
        try:
            change = rules.accept(
                call,
                user,
                msg.device,
                self.deps.clock(),
                cap=self.deps.max_participants,
                is_member=is_member,
            )
        except CallProblem:
            if fresh:
                await self._unhold_shared(user)
            raise
        await self._joined(msg, change)

    async def _join(self, msg: Join) -> None:
        call, user = self._call, msg.user
        p = call.participants.get(user)
        if p is not None and p.status is Status.JOINED and self.sessions.get(user) is msg.session:
            raise CallProblem(ErrorCode.ALREADY_ANSWERED, rules.ERROR_ANSWERED)
        is_member = await self._is_member(user)
        await self._keep_apart(user)
        self._check_free(user)
        fresh = await self._hold_shared(user)
        try:
            change = rules.join(
                call,
                user,
                msg.device,
                self.deps.clock(),
                cap=self.deps.max_participants,
                is_member=is_member,
            )
        except CallProblem:
            if fresh:
                await self._unhold_shared(user)
            raise
        await self._joined(msg, change)

    async def _is_member(self, user: str) -> bool:
        """Whether ``user`` is a member of the group's room now (read from storage).

        A 1:1 call's pair never changes; an ended call refuses anyway.
        """
        call = self._call
        if not call.group or call.ended:
            return True
        room = await self.deps.store.get_room(call.room)
        return room is not None and any(m.user_id == user for m in room.members)

    async def _keep_apart(self, *users: str) -> None:
        """Reload whom in this group call each of ``users`` blocked or was blocked by."""
        call = self._call
        if not call.group:
            return
        contacts = contacts_store(self.deps.store)
        for user in users:
            others = [u for u in call.participants if u != user]
            found = await contacts.blocked_among(user, others) if others else set()
            self.apart = {pair for pair in self.apart if user not in pair}
            self.apart.update(frozenset((user, other)) for other in found)

    async def _joined(self, msg: CallRequest, change: Change) -> None:
        user = msg.user
        self._hold_locally({user})
        self._cancel_grace(user)
        self._attach(user, msg.session)
        ok = CallOk(re=msg.request_id, d=rules.view(self._call, self.deps.ice_servers(user)))
        await self._apply(change, reply=(msg, ok))

    async def _simple(
        self, msg: CallRequest, transition: Callable[[Call, str, int], Change]
    ) -> None:
        change = transition(self._call, msg.user, self.deps.clock())
        await self._apply(change, reply=(msg, Ok(re=msg.request_id)))

    def _relay(self, msg: Relay) -> None:
        call, user, d = self._call, msg.user, msg.payload
        rules.check_signal(call, user, d.to)
        if self.sessions.get(user) is not msg.session:
            raise CallProblem(
                ErrorCode.NOT_IN_CALL, "This device is not the one in the call; join from it first."
            )
        if frozenset((user, d.to)) in self.apart:
            raise CallProblem(ErrorCode.FORBIDDEN, "You cannot connect to this user.")
        frame: msgspec.Struct
        if isinstance(d, CallSdpData):
            frame = CallRemoteSdp(d=RemoteSdpData(call=call.id, from_=user, type=d.type, sdp=d.sdp))
        else:
            frame = CallRemoteIce(
                d=RemoteIceData(
                    call=call.id,
                    from_=user,
                    candidate=d.candidate,
                    sdp_mid=d.sdp_mid,
                    sdp_mline_index=d.sdp_mline_index,
                    ufrag=d.ufrag,
                )
            )
        self.sessions[d.to].push_frame(frame)
        msg.reply(Ok(re=msg.request_id))

    # ----- what the node tells us ----------------------------------------------

    async def _access_changed(self, users: tuple[str, ...]) -> None:
        call = self._call
        involved = [u for u in dict.fromkeys(users) if u in call.participants]
        if call.ended or not involved:
            return
        if call.group:
            room = await self.deps.store.get_room(call.room)
            members = {m.user_id for m in room.members} if room is not None else set()
            for user in involved:
                if user not in members:
                    change = rules.lose_access(call, user, self.deps.clock())
                    if change is not None:
                        await self._apply(change)
                    if call.ended:
                        return
            await self._keep_apart(*involved)
            return
        a, b = list(call.participants)[:2]
        if await _blocked(self.deps.store, a, b):
            change = rules.cut(call, self.deps.clock())
            if change is not None:
                await self._apply(change)

    async def _session_gone(self, user: str, session: Requester) -> None:
        if self.call is None or self.sessions.get(user) is not session:
            return  # that device already left the call, or was replaced
        change = rules.disconnected(self.call, user)
        if change is None:
            return
        self.epochs += 1
        scope = self.deps.registry.after(
            self.key, self.deps.reconnect_grace, self.ref, GraceOver(user, self.epochs)
        )
        self.grace[user] = (self.epochs, scope)
        await self._apply(change)

    async def _grace_over(self, user: str, epoch: int) -> None:
        current = self.grace.get(user)
        if self.call is None or current is None or current[0] != epoch:
            return
        del self.grace[user]
        change = rules.grace_over(self.call, user, self.deps.clock())
        if change is not None:
            await self._apply(change)

    async def _ring_over(self) -> None:
        self.ring_timer = None
        if self.call is None:
            return
        change = rules.ring_over(self.call, self.deps.clock())
        if change is not None:
            await self._apply(change)

    # ----- effects -----------------------------------------------------------

    @property
    def _call(self) -> Call:
        assert self.call is not None
        return self.call

    def _check_free(self, user: str) -> None:
        holder = self.deps.registry.holder(user)
        if holder is not None and holder != self.key:
            raise CallProblem(ErrorCode.ALREADY_IN_CALL, "You are already in another call.")

    def _hold_locally(self, users: set[str]) -> None:
        for user in users:
            if self.deps.registry.claim(user, self.key):
                self.held.add(user)

    def _attach(self, user: str, session: Requester) -> None:
        """``session`` is now the device in the call for ``user``."""
        self.sessions[user] = session
        old = self.watchers.pop(user, None)
        if old is not None:
            old.cancel()
        self.watchers[user] = self.deps.registry.when_closed(
            self.key, session, self.ref, SessionGone(user, session)
        )

    def _cancel_grace(self, user: str) -> None:
        timer = self.grace.pop(user, None)
        if timer is not None:
            timer[1].cancel()

    async def _apply(
        self, change: Change, reply: tuple[CallRequest, msgspec.Struct] | None = None
    ) -> None:
        """After a transition: release, untrack, persist, reply, announce, wrap up an end.

        The reply goes out after the save: a client that reads history over
        REST once it has its answer finds the transition there.
        """
        call = self._call
        keep = rules.claims(call)
        released = self.held - keep
        for user in released:
            self.deps.registry.release(user, self.key)
        self.held &= keep
        for user in list(self.sessions):
            p = call.participants[user]
            if p.status not in rules.IN_CALL:
                del self.sessions[user]
                watcher = self.watchers.pop(user, None)
                if watcher is not None:
                    watcher.cancel()
                self._cancel_grace(user)
        if self.ring_timer is not None and not call.with_status(Status.RINGING):
            self.ring_timer.cancel()
            self.ring_timer = None
        link = self.deps.link
        try:
            if link is None:
                await self.deps.calls.save_call(to_record(call), change.touched)
            else:
                # The claims go with the transition; an ended call gives back all.
                await link.claims.save(
                    to_record(call), change.touched, None if call.ended else released
                )
        except Fenced:
            self._step_down()
            if reply is not None:
                reply[0].reply_err(ErrorCode.UNAVAILABLE, "The call moved; retry.")
            return
        except StoreError as exc:
            # The live call goes on; history catches up with the next save,
            # or the start-up sweep ends the row as failed.
            log.warning("call %s: transition %s not stored: %r", self.key, change.event, exc)
        if reply is not None:
            reply[0].reply(reply[1])
        self._announce(change)
        if call.ended:
            metrics.call_ended(call.outcome)
            self.deps.registry.cancel_all(self.key)
            self.deps.registry.release_call(self.key)
            self.held.clear()
            if call.outcome is rules.Outcome.MISSED:
                await self._missed_notices()

    def _announce(self, change: Change, users: list[str] | None = None) -> None:
        call = self._call
        frame = CallStateFrame(
            d=CallStateData(event=change.event, call=rules.view(call), user=change.user)
        )
        if users is None:
            users = [u for u, p in call.participants.items() if p.status is not Status.BUSY]
        self._push(users, codec.encode(frame))

    def _push(self, users: Iterable[str], raw: bytes) -> None:
        """One encoded frame to every device of ``users``, here and on other nodes."""
        data = self.deps.frame(raw)
        link, room = self.deps.link, self._call.room
        for user in users:
            for session in self.deps.hub.sessions_of(user):
                session.push(data)
            if link is not None:
                link.to_user(room, user, raw)

    async def _missed_notices(self) -> None:
        call = self._call
        notice = CallMissed(
            d=CallMissedData(
                call=call.id,
                room=call.room,
                caller=call.caller,
                kind=call.kind,  # type: ignore[arg-type]
                ts=call.ended_at or self.deps.clock(),
            )
        )
        missed = call.with_status(Status.MISSED)
        self._push(missed, codec.encode(notice))
        if self.deps.notifier is not None:
            await self.deps.notifier.missed_call(
                list(missed), call.id, call.room, call.caller, call.kind
            )
        try:
            await post_as(
                self.deps.system,
                call.room,
                SYSTEM_SENDER,
                f"call:{call.id}:missed",
                f"Missed {call.kind} call",
                kind="system",
                system_sender=True,
            )
        except ActorError as exc:
            log.warning("call %s: missed-call message not posted: %r", call.id, exc)
