"""The call state machine on its own: plain functions, no I/O, no event loop."""

from __future__ import annotations

import pytest

from actors import call_rules as rules
from actors.call_rules import Call, CallProblem, Outcome, State, Status
from protocol.errors import ErrorCode

T0 = 1_000_000


def one_to_one(busy: set[str] = frozenset()) -> Call:  # type: ignore[assignment]
    return rules.new_call(
        call_id="c1",
        room="r1",
        room_kind="direct",
        caller="ada",
        device="phone",
        kind="audio",
        callees=["bob"],
        busy=busy,
        now=T0,
    )


def group(*callees: str) -> Call:
    return rules.new_call(
        call_id="c2",
        room="g1",
        room_kind="group",
        caller="ada",
        device="phone",
        kind="video",
        callees=list(callees),
        busy=set(),
        now=T0,
    )


def statuses(call: Call) -> dict[str, str]:
    return {u: p.status.value for u, p in call.participants.items()}


def refused(code: ErrorCode, fn, *args, **kwargs) -> None:
    with pytest.raises(CallProblem) as caught:
        fn(*args, **kwargs)
    assert caught.value.code is code


# ----- who is rung ---------------------------------------------------------------


def test_a_direct_room_rings_the_other_member():
    assert rules.callees("ada", "direct", ["ada", "bob"], []) == ["bob"]


def test_calling_a_room_you_are_not_in_is_refused():
    refused(ErrorCode.NOT_MEMBER, rules.callees, "eve", "direct", ["ada", "bob"], [])


def test_a_direct_call_across_a_block_is_forbidden_whoever_blocked():
    refused(ErrorCode.FORBIDDEN, rules.callees, "ada", "direct", ["ada", "bob"], ["bob"])


def test_a_group_call_skips_blocked_members_and_needs_someone_to_ring():
    assert rules.callees("ada", "group", ["ada", "bob", "cy"], ["bob"]) == ["cy"]
    refused(ErrorCode.INVALID, rules.callees, "ada", "group", ["ada", "bob"], ["bob"])
    refused(ErrorCode.INVALID, rules.callees, "ada", "group", ["ada"], [])


# ----- 1:1 outcomes --------------------------------------------------------------


def test_answered_then_hung_up():
    call = one_to_one()
    assert (call.state, statuses(call)) == (State.RINGING, {"ada": "joined", "bob": "ringing"})
    change = rules.accept(call, "bob", "laptop", T0 + 5, cap=8)
    assert (change.event, change.user) == ("joined", "bob")
    assert (call.state, call.answered_at) == (State.ACTIVE, T0 + 5)
    assert call.participants["bob"].device == "laptop"
    change = rules.hangup(call, "bob", T0 + 65)
    assert change.event == "ended"
    assert (call.state, call.outcome, call.ended_at) == (State.ENDED, Outcome.ANSWERED, T0 + 65)
    assert statuses(call) == {"ada": "left", "bob": "left"}


def test_declined():
    call = one_to_one()
    change = rules.decline(call, "bob", T0 + 1)
    assert (change.event, change.user) == ("ended", "bob")
    assert call.outcome is Outcome.DECLINED
    assert statuses(call) == {"ada": "left", "bob": "declined"}


def test_busy_callee_ends_the_call_at_once():
    call = one_to_one(busy={"bob"})
    assert (call.state, call.outcome) == (State.ENDED, Outcome.BUSY)
    assert statuses(call) == {"ada": "left", "bob": "busy"}
    assert rules.claims(call) == set()


def test_missed_when_the_ring_time_runs_out():
    call = one_to_one()
    change = rules.ring_over(call, T0 + 45_000)
    assert change is not None and change.event == "ended"
    assert call.outcome is Outcome.MISSED
    assert statuses(call) == {"ada": "left", "bob": "missed"}
    assert rules.ring_over(call, T0 + 46_000) is None


def test_cancelled_when_the_caller_hangs_up_while_it_rings():
    call = one_to_one()
    rules.hangup(call, "ada", T0 + 3)
    assert call.outcome is Outcome.CANCELLED
    assert statuses(call) == {"ada": "left", "bob": "missed"}


def test_failed_when_the_ringing_callers_device_does_not_come_back():
    call = one_to_one()
    assert rules.disconnected(call, "ada").event == "reconnecting"  # type: ignore[union-attr]
    change = rules.grace_over(call, "ada", T0 + 20_000)
    assert change is not None and call.outcome is Outcome.FAILED


def test_a_reconnect_in_time_keeps_the_call():
    call = one_to_one()
    rules.accept(call, "bob", "laptop", T0 + 1, cap=8)
    rules.disconnected(call, "bob")
    assert call.participants["bob"].status is Status.RECONNECTING
    change = rules.join(call, "bob", "laptop", T0 + 2, cap=8, is_member=True)
    assert change.event == "rejoined"
    assert rules.grace_over(call, "bob", T0 + 20_000) is None
    assert call.state is State.ACTIVE


def test_a_dropped_participant_ends_a_one_to_one_call_after_the_grace():
    call = one_to_one()
    rules.accept(call, "bob", "laptop", T0 + 1, cap=8)
    rules.disconnected(call, "ada")
    change = rules.grace_over(call, "ada", T0 + 20_000)
    assert change is not None and change.event == "ended"
    assert call.outcome is Outcome.ANSWERED


def test_busy_claims_follow_the_status():
    call = one_to_one()
    assert rules.claims(call) == {"ada", "bob"}  # a 1:1 callee is busy while rung
    rules.accept(call, "bob", "laptop", T0 + 1, cap=8)
    assert rules.claims(call) == {"ada", "bob"}
    rules.hangup(call, "ada", T0 + 2)
    assert rules.claims(call) == set()


# ----- bad requests leave the call as it was ---------------------------------------


def test_answering_twice_is_refused_and_changes_nothing():
    call = one_to_one()
    rules.accept(call, "bob", "laptop", T0 + 1, cap=8)
    before = statuses(call)
    refused(ErrorCode.ALREADY_ANSWERED, rules.accept, call, "bob", "phone", T0 + 2, cap=8)
    refused(ErrorCode.ALREADY_ANSWERED, rules.decline, call, "bob", T0 + 2)
    assert statuses(call) == before and call.participants["bob"].device == "laptop"


def test_strangers_and_late_comers_are_refused():
    call = one_to_one()
    refused(ErrorCode.NOT_IN_CALL, rules.accept, call, "eve", "x", T0, cap=8)
    refused(ErrorCode.NOT_IN_CALL, rules.decline, call, "eve", T0)
    refused(ErrorCode.NOT_IN_CALL, rules.hangup, call, "eve", T0)
    refused(ErrorCode.NOT_IN_CALL, rules.join, call, "eve", "x", T0, cap=8, is_member=True)
    rules.hangup(call, "ada", T0 + 1)
    refused(ErrorCode.CALL_ENDED, rules.accept, call, "bob", "x", T0 + 2, cap=8)
    refused(ErrorCode.CALL_ENDED, rules.join, call, "bob", "x", T0 + 2, cap=8, is_member=True)
    refused(ErrorCode.CALL_ENDED, rules.hangup, call, "ada", T0 + 2)
    refused(ErrorCode.CALL_ENDED, rules.check_signal, call, "ada", "bob")


def test_signaling_needs_both_ends_joined():
    call = one_to_one()
    refused(ErrorCode.NOT_IN_CALL, rules.check_signal, call, "ada", "bob")  # bob still rings
    refused(ErrorCode.NOT_IN_CALL, rules.check_signal, call, "bob", "ada")
    rules.accept(call, "bob", "laptop", T0 + 1, cap=8)
    rules.check_signal(call, "ada", "bob")
    rules.check_signal(call, "bob", "ada")
    refused(ErrorCode.INVALID, rules.check_signal, call, "ada", "ada")
    refused(ErrorCode.NOT_IN_CALL, rules.check_signal, call, "eve", "ada")
    rules.disconnected(call, "bob")
    refused(ErrorCode.NOT_IN_CALL, rules.check_signal, call, "ada", "bob")


def test_signal_size_limit_counts_utf8_bytes():
    assert rules.signal_problem(["a" * 10], 10, "SDP") is None
    problem = rules.signal_problem(["é" * 6], 10, "SDP")
    assert problem is not None and problem.code is ErrorCode.SIGNAL_TOO_LARGE


# ----- group calls ---------------------------------------------------------------


def test_group_members_join_and_leave_while_it_runs():
    call = group("bob", "cy", "dan")
    assert rules.claims(call) == {"ada"}  # a ringing group invitation holds nobody
    rules.accept(call, "bob", "b", T0 + 1, cap=8)
    assert call.state is State.ACTIVE
    change = rules.ring_over(call, T0 + 45_000)
    assert change is not None and change.event == "missed"
    assert statuses(call)["cy"] == "missed" and call.state is State.ACTIVE
    change = rules.join(call, "cy", "c", T0 + 50_000, cap=8, is_member=True)
    assert change.event == "joined"
    change = rules.join(call, "eve", "e", T0 + 51_000, cap=8, is_member=True)
    assert change.event == "joined" and list(call.participants)[-1] == "eve"
    assert rules.hangup(call, "bob", T0 + 60_000).event == "left"
    assert rules.hangup(call, "ada", T0 + 61_000).event == "left"
    assert rules.hangup(call, "cy", T0 + 62_000).event == "ended"  # eve would be alone
    assert (call.outcome, statuses(call)["eve"]) == (Outcome.ANSWERED, "left")


def test_a_group_call_goes_on_while_someone_is_still_rung():
    call = group("bob", "cy")
    rules.accept(call, "bob", "b", T0 + 1, cap=8)
    rules.hangup(call, "bob", T0 + 2)
    assert call.state is State.ACTIVE  # cy still rings
    change = rules.ring_over(call, T0 + 45_000)
    assert change is not None and change.event == "ended"
    assert call.outcome is Outcome.ANSWERED


def test_a_group_call_declined_by_everyone_ends_declined():
    call = group("bob", "cy")
    assert rules.decline(call, "bob", T0 + 1).event == "declined"
    assert rules.decline(call, "cy", T0 + 2).event == "ended"
    assert call.outcome is Outcome.DECLINED


def test_the_participant_cap_and_non_members():
    call = group("bob", "cy", "dan")
    rules.accept(call, "bob", "b", T0 + 1, cap=3)
    rules.accept(call, "cy", "c", T0 + 2, cap=3)
    before = statuses(call)
    refused(ErrorCode.CALL_FULL, rules.accept, call, "dan", "d", T0 + 3, cap=3)
    refused(ErrorCode.NOT_MEMBER, rules.join, call, "eve", "e", T0 + 3, cap=8, is_member=False)
    assert statuses(call) == before


def test_a_failed_call_ends_whatever_its_state():
    call = group("bob")
    rules.accept(call, "bob", "b", T0 + 1, cap=8)
    change = rules.fail(call, T0 + 2)
    assert change.event == "ended" and call.outcome is Outcome.FAILED
    assert rules.fail(call, T0 + 3).touched == ()


def test_the_view_lists_participants_in_invitation_order():
    call = group("bob", "cy")
    view = rules.view(call)
    assert [p.user for p in view.participants] == ["ada", "bob", "cy"]
    assert (view.state, view.kind, view.group, view.ice_servers) == ("ringing", "video", True, None)


# ----- access follows the room (issue 12) ----------------------------------------


def test_a_member_no_longer_in_the_room_can_neither_answer_nor_join_nor_rejoin():
    call = group("bob", "cy")
    rules.accept(call, "bob", "b", T0 + 1, cap=8)
    before = statuses(call)
    # cy still rings, but she is out of the room: her answer is refused.
    refused(ErrorCode.NOT_MEMBER, rules.accept, call, "cy", "c", T0 + 2, cap=8, is_member=False)
    refused(ErrorCode.NOT_MEMBER, rules.join, call, "cy", "c", T0 + 2, cap=8, is_member=False)
    # Nor may bob, in the call, move it to another device once out of the room.
    refused(ErrorCode.NOT_MEMBER, rules.join, call, "bob", "b2", T0 + 2, cap=8, is_member=False)
    assert statuses(call) == before


def test_losing_access_takes_a_member_out_whether_in_the_call_or_rung():
    call = group("bob", "cy", "dan")
    rules.accept(call, "bob", "b", T0 + 1, cap=8)
    rules.accept(call, "cy", "c", T0 + 2, cap=8)
    change = rules.lose_access(call, "cy", T0 + 3)
    assert change is not None and (change.event, change.user, change.touched) == (
        "left",
        "cy",
        ("cy",),
    )
    change = rules.lose_access(call, "dan", T0 + 4)  # still rung
    assert change is not None and change.event == "left"
    assert statuses(call) == {"ada": "joined", "bob": "joined", "cy": "left", "dan": "left"}
    assert call.participants["dan"].left_at == T0 + 4
    assert rules.lose_access(call, "dan", T0 + 5) is None  # already out
    assert rules.lose_access(call, "eve", T0 + 5) is None  # never in it
    change = rules.lose_access(call, "bob", T0 + 6)  # ada would be alone
    assert change is not None and change.event == "ended"
    assert call.outcome is Outcome.ANSWERED
    assert rules.lose_access(call, "ada", T0 + 7) is None  # over


def test_a_caller_losing_access_while_the_call_rings_cancels_it():
    call = group("bob", "cy")
    change = rules.lose_access(call, "ada", T0 + 1)
    assert change is not None and (change.event, change.user) == ("ended", "ada")
    assert call.outcome is Outcome.CANCELLED
    assert statuses(call) == {"ada": "left", "bob": "missed", "cy": "missed"}


def test_a_block_cuts_a_one_to_one_call_naming_nobody():
    ringing = one_to_one()
    change = rules.cut(ringing, T0 + 1)
    assert change is not None and change.user is None and change.event == "ended"
    assert ringing.outcome is Outcome.CANCELLED and rules.claims(ringing) == set()
    answered = one_to_one()
    rules.accept(answered, "bob", "b", T0 + 1, cap=8)
    change = rules.cut(answered, T0 + 2)
    assert change is not None and answered.outcome is Outcome.ANSWERED
    assert statuses(answered) == {"ada": "left", "bob": "left"}
    assert rules.cut(answered, T0 + 3) is None
