"""The call state machine as pure functions: no I/O, no clock, no sessions.

``CallActor`` owns one ``Call``, feeds it what happened (a join, a decline, a
timer) through the functions below and then does the I/O: pushes frames,
persists, starts timers. Every function either raises ``CallProblem`` and
leaves the call untouched, or changes it and returns the ``Change`` to
announce. Plain tests in tests/calls/test_call_rules.py walk every path.

Rules:
- States go ringing -> active -> ended, or ringing -> ended; ended is final.
- A call becomes active when anyone but the caller joins (``answered_at``).
- Outcomes: ``answered`` someone joined; ``declined`` nobody joined and a
  callee declined; ``busy`` nobody joined and every callee was busy;
  ``missed`` the ring time ran out with nobody joined; ``cancelled`` the
  caller hung up while it rang; ``failed`` the caller's device vanished
  while it rang, or the server lost the call.
- A 1:1 call ends when either side leaves. A group call ends when fewer than
  two are in it and nobody is still being rung.
- A participant is *in* the call while ``joined`` or ``reconnecting``; only
  ``joined`` participants send or receive signaling.
- Busy: a user is held by a call while in it, and, in a 1:1 call, while it
  rings for them (``claims``); a ringing group invitation holds nobody.
- Access follows the room: only a current member of a group may answer or
  join its call (checked on every ``accept``/``join``), and a member removed
  from the room, or who left it, is out of its call at once (``lose_access``).
  A block between the two sides of a 1:1 call ends it (``cut``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from protocol.errors import ErrorCode
from protocol.frames_calls import CallEvent, CallParticipant, CallView, IceServer


class State(StrEnum):
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"


class Outcome(StrEnum):
    ANSWERED = "answered"
    DECLINED = "declined"
    BUSY = "busy"
    MISSED = "missed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Status(StrEnum):
    RINGING = "ringing"
    JOINED = "joined"
    RECONNECTING = "reconnecting"
    LEFT = "left"
    DECLINED = "declined"
    MISSED = "missed"
    BUSY = "busy"


IN_CALL = frozenset({Status.JOINED, Status.RECONNECTING})


class CallProblem(Exception):
    """A request the call refuses; ``code`` goes to the client, the call is unchanged."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


@dataclass(slots=True)
class Participant:
    user: str
    status: Status
    device: str | None = None
    joined_at: int | None = None
    left_at: int | None = None


@dataclass(slots=True)
class Call:
    id: str
    room: str
    caller: str
    kind: str  # "audio" | "video"
    group: bool
    started_at: int
    # Invitation order; the caller first.
    participants: dict[str, Participant] = field(default_factory=dict)
    state: State = State.RINGING
    outcome: Outcome | None = None
    answered_at: int | None = None
    ended_at: int | None = None

    def with_status(self, *statuses: Status) -> list[str]:
        return [u for u, p in self.participants.items() if p.status in statuses]

    @property
    def in_call(self) -> list[str]:
        return self.with_status(*IN_CALL)

    @property
    def ended(self) -> bool:
        return self.state is State.ENDED


@dataclass(frozen=True, slots=True)
class Change:
    """One transition to announce as ``call.state``."""

    event: CallEvent
    user: str | None
    # Participants whose stored row changed (the call row always does).
    touched: tuple[str, ...]


# ----- starting ----------------------------------------------------------------


def callees(
    caller: str, room_kind: str, members: Sequence[str], blocked: Iterable[str]
) -> list[str]:
    """Who a call from ``caller`` rings, or the problem with calling this room."""
    if caller not in members:
        raise CallProblem(ErrorCode.NOT_MEMBER, "You are not a member of this room.")
    refused = set(blocked)
    others = [m for m in members if m != caller]
    if room_kind == "direct" and any(m in refused for m in others):
        # Same answer whichever side blocked: nobody learns who blocked whom.
        raise CallProblem(ErrorCode.FORBIDDEN, "You cannot call this user.")
    ring = [m for m in others if m not in refused]
    if not ring:
        raise CallProblem(ErrorCode.INVALID, "There is nobody else in this room to call.")
    return ring


def new_call(
    *,
    call_id: str,
    room: str,
    room_kind: str,
    caller: str,
    device: str,
    kind: str,
    callees: Sequence[str],
    busy: Iterable[str],
    now: int,
) -> Call:
    """A ringing call; ended at once with ``busy`` when every callee is busy."""
    busy = set(busy)
    call = Call(call_id, room, caller, kind, room_kind == "group", now)
    call.participants[caller] = Participant(caller, Status.JOINED, device, joined_at=now)
    for user in callees:
        call.participants[user] = Participant(user, Status.BUSY if user in busy else Status.RINGING)
    if not call.with_status(Status.RINGING):
        _end(call, Outcome.BUSY, now)
    return call


def claims(call: Call) -> set[str]:
    """Users this call makes busy for every other call."""
    if call.ended:
        return set()
    held = set(call.in_call)
    if not call.group:
        held.update(call.with_status(Status.RINGING))
    return held


# ----- requests ----------------------------------------------------------------


def accept(
    call: Call, user: str, device: str, now: int, *, cap: int, is_member: bool = True
) -> Change:
    """``user`` answers on ``device``: the first device to answer wins."""
    _check_open(call)
    _check_member(call, is_member)
    p = call.participants.get(user)
    if p is None:
        raise CallProblem(ErrorCode.NOT_IN_CALL, "This call is not ringing for you.")
    if p.status in IN_CALL:
        raise CallProblem(ErrorCode.ALREADY_ANSWERED, ERROR_ANSWERED)
    if p.status is not Status.RINGING and not call.group:
        raise CallProblem(ErrorCode.NOT_IN_CALL, "This call is not ringing for you.")
    _check_room(call, cap)
    return _join(call, p, device, now, "joined")


def join(call: Call, user: str, device: str, now: int, *, cap: int, is_member: bool) -> Change:
    """Join a group call, come back after a reconnect, or move the call to ``device``."""
    _check_open(call)
    _check_member(call, is_member)
    p = call.participants.get(user)
    if p is not None and p.status in IN_CALL:
        return _join(call, p, device, now, "rejoined")
    if not call.group:
        if p is not None and p.status is Status.RINGING:
            return _join(call, p, device, now, "joined")
        raise CallProblem(ErrorCode.NOT_IN_CALL, "You are not in this call.")
    if p is None:
        p = Participant(user, Status.LEFT)
    _check_room(call, cap)
    call.participants.setdefault(user, p)
    return _join(call, p, device, now, "joined")


def decline(call: Call, user: str, now: int) -> Change:
    _check_open(call)
    p = call.participants.get(user)
    if p is None:
        raise CallProblem(ErrorCode.NOT_IN_CALL, "This call is not ringing for you.")
    if p.status in IN_CALL:
        raise CallProblem(ErrorCode.ALREADY_ANSWERED, "You are in this call; hang up instead.")
    if p.status is not Status.RINGING:
        raise CallProblem(ErrorCode.NOT_IN_CALL, "This call is not ringing for you.")
    p.status = Status.DECLINED
    return _after(call, Change("declined", user, (user,)), now)


def hangup(call: Call, user: str, now: int) -> Change:
    """Leave; a callee still being rung declines; the caller of a ringing call cancels it."""
    _check_open(call)
    p = call.participants.get(user)
    if p is not None and p.status is Status.RINGING:
        return decline(call, user, now)
    if p is None or p.status not in IN_CALL:
        raise CallProblem(ErrorCode.NOT_IN_CALL, "You are not in this call.")
    _leave(p, now)
    if call.state is State.RINGING and user == call.caller:
        touched = _end(call, Outcome.CANCELLED, now)
        return Change("ended", user, (user, *touched))
    return _after(call, Change("left", user, (user,)), now)


# ----- what the server notices -------------------------------------------------


def lose_access(call: Call, user: str, now: int) -> Change | None:
    """``user`` is no longer a member of the call's room: out of the call at once.

    In the call or still rung, they ``left``; a caller whose call still rings
    cancels it, as when hanging up. None when they were not in it anyway.
    """
    p = call.participants.get(user)
    if call.ended or p is None or p.status not in (*IN_CALL, Status.RINGING):
        return None
    _leave(p, now)
    if call.state is State.RINGING and user == call.caller:
        touched = _end(call, Outcome.CANCELLED, now)
        return Change("ended", user, (user, *touched))
    return _after(call, Change("left", user, (user,)), now)


def cut(call: Call, now: int) -> Change | None:
    """The two sides of a 1:1 call blocked one another: it ends at once.

    The end names nobody (nobody learns who blocked whom): ``answered`` if it
    had been, else ``cancelled``.
    """
    if call.ended:
        return None
    outcome = Outcome.ANSWERED if call.answered_at is not None else Outcome.CANCELLED
    return Change("ended", None, tuple(_end(call, outcome, now)))


def disconnected(call: Call, user: str) -> Change | None:
    """The device in the call went away: the user gets a grace period."""
    p = call.participants.get(user)
    if call.ended or p is None or p.status is not Status.JOINED:
        return None
    p.status = Status.RECONNECTING
    return Change("reconnecting", user, (user,))


def grace_over(call: Call, user: str, now: int) -> Change | None:
    """No reconnect in time: the user leaves; a caller whose call still rings fails it."""
    p = call.participants.get(user)
    if call.ended or p is None or p.status is not Status.RECONNECTING:
        return None
    _leave(p, now)
    if call.state is State.RINGING and user == call.caller:
        touched = _end(call, Outcome.FAILED, now)
        return Change("ended", user, (user, *touched))
    return _after(call, Change("left", user, (user,)), now)


def ring_over(call: Call, now: int) -> Change | None:
    """The ring time ran out: whoever is still rung missed it."""
    if call.ended:
        return None
    ringing = call.with_status(Status.RINGING)
    for user in ringing:
        call.participants[user].status = Status.MISSED
    if call.state is State.RINGING:
        touched = _end(call, Outcome.MISSED, now)
        return Change("ended", None, tuple(dict.fromkeys([*ringing, *touched])))
    if not ringing:
        return None
    return _after(call, Change("missed", None, tuple(ringing)), now)


def fail(call: Call, now: int) -> Change:
    """The server lost the call (a crash, a restart): end it as ``failed``."""
    touched = _end(call, Outcome.FAILED, now) if not call.ended else []
    return Change("ended", None, tuple(touched))


def check_signal(call: Call, sender: str, target: str) -> None:
    """May ``sender`` relay SDP/ICE to ``target`` now? Raises if not."""
    _check_open(call)
    p = call.participants.get(sender)
    if p is None or p.status is not Status.JOINED:
        raise CallProblem(ErrorCode.NOT_IN_CALL, "You are not in this call.")
    if target == sender:
        raise CallProblem(ErrorCode.INVALID, "Signaling goes to another participant.")
    t = call.participants.get(target)
    if t is None or t.status is not Status.JOINED:
        raise CallProblem(ErrorCode.NOT_IN_CALL, f"{target} is not connected to this call.")


def signal_problem(payload: Sequence[str], limit: int, what: str) -> CallProblem | None:
    """Whether SDP/ICE text is over ``limit`` bytes of UTF-8 (summed over its fields)."""
    size = sum(len(s.encode()) for s in payload)
    if size > limit:
        return CallProblem(
            ErrorCode.SIGNAL_TOO_LARGE, f"{what} of {size} bytes is over the limit of {limit}."
        )
    return None


# ----- views -------------------------------------------------------------------


def view(call: Call, ice_servers: list[IceServer] | None = None) -> CallView:
    return CallView(
        id=call.id,
        room=call.room,
        caller=call.caller,
        kind=call.kind,  # type: ignore[arg-type]
        group=call.group,
        state=call.state.value,
        started_at=call.started_at,
        participants=[
            CallParticipant(p.user, p.status.value, p.device) for p in call.participants.values()
        ],
        outcome=call.outcome.value if call.outcome else None,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        ice_servers=ice_servers,
    )


# ----- internals ---------------------------------------------------------------

ERROR_ANSWERED = "You already answered this call (on this or another device)."


def _check_open(call: Call) -> None:
    if call.ended:
        raise CallProblem(ErrorCode.CALL_ENDED, "This call has ended.")


def _check_member(call: Call, is_member: bool) -> None:
    if call.group and not is_member:
        raise CallProblem(ErrorCode.NOT_MEMBER, "You are not a member of this room.")


def _check_room(call: Call, cap: int) -> None:
    if call.group and len(call.in_call) >= cap:
        raise CallProblem(ErrorCode.CALL_FULL, f"This call already has {cap} participants.")


def _join(call: Call, p: Participant, device: str, now: int, event: CallEvent) -> Change:
    p.status = Status.JOINED
    p.device = device
    p.left_at = None
    if p.joined_at is None:
        p.joined_at = now
    if call.state is State.RINGING and p.user != call.caller:
        call.state = State.ACTIVE
        call.answered_at = now
    return Change(event, p.user, (p.user,))


def _leave(p: Participant, now: int) -> None:
    p.status = Status.LEFT
    p.left_at = now


def _after(call: Call, change: Change, now: int) -> Change:
    """End the call if this change left it with nobody to talk to."""
    ringing = call.with_status(Status.RINGING)
    if call.state is State.RINGING:
        if ringing:
            return change
        statuses = {p.status for u, p in call.participants.items() if u != call.caller}
        outcome = (
            Outcome.DECLINED
            if Status.DECLINED in statuses
            else Outcome.BUSY
            if Status.BUSY in statuses and Status.MISSED not in statuses
            else Outcome.MISSED
        )
    else:
        if len(call.in_call) >= 2 or (call.group and ringing):
            return change
        outcome = Outcome.ANSWERED
    touched = _end(call, outcome, now)
    # The ending is announced as one ``ended`` event naming who caused it.
    return Change("ended", change.user, tuple(dict.fromkeys([*change.touched, *touched])))


def _end(call: Call, outcome: Outcome, now: int) -> list[str]:
    touched = []
    for p in call.participants.values():
        if p.status in IN_CALL:
            _leave(p, now)
            touched.append(p.user)
        elif p.status is Status.RINGING:
            p.status = Status.MISSED
            touched.append(p.user)
    call.state = State.ENDED
    call.outcome = outcome
    call.ended_at = now
    return touched
