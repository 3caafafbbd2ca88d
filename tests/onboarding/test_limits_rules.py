"""The pure decisions behind codes and velocity limits: no database, no clock."""

from __future__ import annotations

from storage.challenges import (
    CodeVerdict,
    Counter,
    LimitRule,
    OtpCode,
    backoff_after,
    judge_code,
    judge_hits,
)

HOUR = 3_600_000


def code(attempts: int = 0, expires_at: int = 1_000) -> OtpCode:
    return OtpCode("signin", "+33612345678", "h" * 64, 0, expires_at, 3, attempts)


def test_a_right_code_is_accepted_and_deleted() -> None:
    check, action = judge_code(code(), "h" * 64, now=10)
    assert (check.verdict, action) == (CodeVerdict.ACCEPTED, "delete")


def test_a_wrong_code_counts_a_try_and_the_last_wrong_try_deletes_it() -> None:
    check, action = judge_code(code(attempts=0), "x" * 64, now=10)
    assert (check.verdict, check.attempts_left, action) == (CodeVerdict.WRONG, 2, "count")
    check, action = judge_code(code(attempts=2), "x" * 64, now=10)
    assert (check.verdict, check.attempts_left, action) == (CodeVerdict.WRONG, 0, "delete")


def test_an_expired_or_exhausted_code_is_absent_even_when_right() -> None:
    assert judge_code(code(expires_at=10), "h" * 64, now=10)[0].verdict is CodeVerdict.ABSENT
    assert judge_code(code(attempts=3), "h" * 64, now=10)[0].verdict is CodeVerdict.ABSENT
    assert judge_code(None, "h" * 64, now=10) == (judge_code(None, "", 0)[0], "keep")


def test_back_off_doubles_after_the_free_hits_and_is_capped_by_the_window() -> None:
    rule = LimitRule(limit=100, window_ms=10_000, backoff_ms=1_000, free=2)
    assert [backoff_after(rule, n) for n in range(1, 8)] == [
        0,
        0,
        1_000,
        2_000,
        4_000,
        8_000,
        10_000,
    ]


def test_a_refused_hit_changes_no_counter() -> None:
    rules = {"target": LimitRule(1, HOUR), "ip": LimitRule(10, HOUR)}
    counters = {"target": Counter(0, 1, 0, HOUR)}
    wait, updated = judge_hits(rules, counters, now=1_000)
    assert (wait, updated) == (HOUR - 1_000, {})


def test_allowed_hits_move_every_counter_together() -> None:
    rules = {"target": LimitRule(3, HOUR, backoff_ms=500), "ip": LimitRule(10, HOUR)}
    wait, updated = judge_hits(rules, {"ip": Counter(0, 4, 0, HOUR)}, now=100)
    assert wait == 0
    assert updated == {
        "target": Counter(100, 1, 600, HOUR + 100),
        "ip": Counter(0, 5, 0, HOUR),  # no back-off: the key closes nothing
    }


def test_the_wait_is_the_longest_of_back_off_and_full_windows() -> None:
    rules = {"a": LimitRule(5, HOUR, backoff_ms=1_000), "b": LimitRule(1, 60_000)}
    counters = {"a": Counter(0, 1, 3_000, HOUR), "b": Counter(0, 1, 0, 60_000)}
    assert judge_hits(rules, counters, now=1_000)[0] == 59_000


def test_a_new_window_starts_when_the_old_one_is_over() -> None:
    rules = {"k": LimitRule(1, 1_000)}
    wait, updated = judge_hits(rules, {"k": Counter(0, 1, 0, 1_000)}, now=1_000)
    assert wait == 0 and updated["k"] == Counter(1_000, 1, 0, 2_000)


def test_a_costly_hit_counts_its_cost_and_never_fits_beyond_the_limit() -> None:
    rules = {"k": LimitRule(10, HOUR, cost=4)}
    wait, updated = judge_hits(rules, {"k": Counter(0, 6, 0, HOUR)}, now=5)
    assert wait == 0 and updated["k"].count == 10
    assert judge_hits(rules, {"k": Counter(0, 7, 0, HOUR)}, now=5)[0] == HOUR - 5
    assert judge_hits({"k": LimitRule(3, HOUR, cost=4)}, {}, now=5)[0] == HOUR


def test_a_hit_with_an_earlier_clock_is_not_refused_where_there_is_no_back_off() -> None:
    # Two requests read the clock at 1000 and 1003; the later one commits
    # first. (Concurrent requests on one node, or two nodes' clocks.)
    rule = {"k": LimitRule(limit=100, window_ms=HOUR)}
    wait, first = judge_hits(rule, {}, now=1003)
    assert wait == 0
    wait, second = judge_hits(rule, first, now=1000)
    assert wait == 0 and second["k"].count == 2
    # With a back-off, the earlier one is refused: the key closed at 1003.
    rule = {"k": LimitRule(limit=100, window_ms=HOUR, backoff_ms=500)}
    _, first = judge_hits(rule, {}, now=1003)
    assert judge_hits(rule, first, now=1000) == (503, {})
