"""The circuit breaker, rule by rule, under a fake clock (``now`` is passed in)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.resilience.breaker import (
    LONG_RUN_ALPHA,
    PROBE_LEASE_S,
    BreakerState,
    CircuitBreaker,
    Ticket,
)
from proxy.resilience.outcome import Outcome

from .helpers import breaker_config

S, F, SLOW = Outcome.SUCCESS, Outcome.SERVER_ERROR, Outcome.SLOW
CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(**overrides: Any) -> CircuitBreaker:
    return CircuitBreaker(breaker_config(**overrides))


def call(b: CircuitBreaker, outcome: Outcome, now: float) -> Ticket:
    """One whole attempt at ``now``; it must be admitted."""
    ticket = b.on_attempt_start(now)
    assert ticket is not None, f"refused at {now} in state {b.state_at(now)}"
    b.on_result(outcome, now, ticket)
    return ticket


def open_it(b: CircuitBreaker, now: float) -> None:
    for _ in range(b.config.consecutive_failures):
        call(b, F, now)
    assert b.state is OPEN


# -- closed -> open ----------------------------------------------------------------------------


def test_opens_on_consecutive_failures() -> None:
    b = make(consecutive_failures=3, min_calls=10)
    call(b, F, 0)
    call(b, F, 0)
    call(b, S, 0)  # a success resets the run
    call(b, F, 1)
    call(b, F, 1)
    assert b.state is CLOSED and b.allow(1)
    call(b, F, 1)
    assert b.state is OPEN
    assert not b.allow(1) and b.on_attempt_start(1) is None
    assert b.reason == "3 consecutive failures"


@pytest.mark.parametrize(
    "outcome", [Outcome.CONNECT_FAILURE, Outcome.RESET, Outcome.TIMEOUT, Outcome.SERVER_ERROR]
)
def test_every_failure_kind_counts(outcome: Outcome) -> None:
    b = make(consecutive_failures=2)
    call(b, outcome, 0)
    call(b, outcome, 0)
    assert b.state is OPEN


@pytest.mark.parametrize("outcome", [Outcome.CLIENT_ERROR, Outcome.RATE_LIMITED, Outcome.ABANDONED])
def test_client_errors_429_and_abandoned_never_count(outcome: Outcome) -> None:
    b = make(consecutive_failures=1, min_calls=1, window_calls=1)
    for i in range(1000):
        call(b, outcome, i * 0.01)
    assert b.state is CLOSED and b.allow(10)
    assert b.snapshot(10)["window"] == {"calls": 0, "failures": 0, "slow": 0}
    assert b.totals == {outcome: 1000}
    # Nor do they break a run of failures.
    b = make(consecutive_failures=2)
    call(b, F, 0)
    call(b, outcome, 0)
    call(b, F, 0)
    assert b.state is OPEN


def test_opens_on_failure_rate_once_min_calls_reached() -> None:
    b = make(consecutive_failures=100, failure_rate=0.5, adaptive=0, window_calls=20, min_calls=10)
    for i in range(10):  # F S F S ...: 5 of 10, checked only when a failure comes in
        call(b, F if i % 2 == 0 else S, i)
    assert b.state is CLOSED
    call(b, F, 10)  # 6 of 11 >= 0.5
    assert b.state is OPEN
    assert b.reason == "failure rate 0.55 >= 0.50 over 11 calls"


def test_rate_not_applied_below_min_calls() -> None:
    b = make(consecutive_failures=100, window_calls=20, min_calls=10)
    for i in range(9):
        call(b, F if i % 3 else S, i)  # 6 of 9 failed, but only 9 calls
    assert b.state is CLOSED


def test_window_is_count_bounded() -> None:
    b = make(consecutive_failures=100, failure_rate=0.5, adaptive=0, window_calls=10, min_calls=10)
    for i in range(4):
        call(b, F, i)  # old failures: pushed out by the 10 that follow
    for i in range(10):
        call(b, S, 10 + i * 0.1)
    for i in range(4):
        call(b, F, 20 + i * 0.1)  # 4 of the last 10
    assert b.state is CLOSED
    assert b.snapshot(21)["window"] == {"calls": 10, "failures": 4, "slow": 0}
    call(b, F, 21)  # 5 of the last 10
    assert b.state is OPEN


def test_window_is_time_limited() -> None:
    b = make(consecutive_failures=100, failure_rate=0.5, adaptive=0, window_s=30, min_calls=10)
    for _ in range(4):
        call(b, F, 0)
        call(b, S, 0)
    # Thirty seconds on, those results no longer count.
    assert b.snapshot(30)["window"] == {"calls": 0, "failures": 0, "slow": 0}
    for _ in range(5):
        call(b, S, 31)
    for _ in range(4):
        call(b, F, 31)
    assert b.state is CLOSED  # 4 of 9 counted, below min_calls
    call(b, F, 31)
    assert b.state is OPEN  # 5 of 10


def test_opens_on_slow_call_rate() -> None:
    b = make(slow_call_rate=0.8, window_calls=10, min_calls=10)
    for _ in range(2):
        call(b, S, 0)
    for _ in range(7):
        call(b, SLOW, 0)
    assert b.state is CLOSED  # 9 calls
    call(b, SLOW, 0)
    assert b.state is OPEN  # 8 of 10 slow
    assert b.reason == "slow-call rate 0.80 over 10 calls"


def test_slow_calls_are_successes_for_the_failure_count() -> None:
    b = make(consecutive_failures=2, slow_call_rate=1.0)
    call(b, F, 0)
    call(b, SLOW, 0)
    call(b, F, 0)
    assert b.state is CLOSED


# -- the adaptive threshold --------------------------------------------------------------------


def test_long_run_rate_is_an_ewma_of_counted_results() -> None:
    b = make(consecutive_failures=100, min_calls=20, window_calls=20)
    call(b, F, 0)
    call(b, F, 0)
    call(b, Outcome.CLIENT_ERROR, 0)  # not counted
    call(b, S, 0)
    expected = 0.0
    for x in (1.0, 1.0, 0.0):
        expected += LONG_RUN_ALPHA * (x - expected)
    assert b.long_run == pytest.approx(expected)
    assert b.threshold() == pytest.approx(0.5 * (1 - 0.5 * expected))


def _sustained(b: CircuitBreaker, calls: int) -> int | None:
    """Two failures in every five calls (S S S F F: no ten or more in a row hold more than
    40 % failures); the call at which the breaker opened."""
    for i in range(calls):
        call(b, F if i % 5 >= 3 else S, i * 0.1)
        if b.state is OPEN:
            return i
    return None


def test_threshold_tightens_under_a_sustained_failure_rate() -> None:
    # 40 % failures: under the fixed 0.5 threshold for ever...
    fixed = make(consecutive_failures=100, failure_rate=0.5, adaptive=0, window_s=1e6)
    assert _sustained(fixed, 1000) is None
    assert fixed.threshold() == 0.5
    # ...but the adaptive breaker's threshold falls as the long-run rate climbs to 0.4, to
    # 0.5 * (1 - 1.0 * long_run), and crosses 0.4 once long_run reaches 0.2.
    adaptive = make(consecutive_failures=100, failure_rate=0.5, adaptive=1.0, window_s=1e6)
    opened_at = _sustained(adaptive, 1000)
    assert opened_at is not None and opened_at > 20
    assert adaptive.long_run >= 0.2 - LONG_RUN_ALPHA
    assert adaptive.threshold() <= 0.4 + 0.5 * LONG_RUN_ALPHA


def test_a_fresh_breaker_tolerates_a_burst_a_failing_one_does_not() -> None:
    cfg = {"consecutive_failures": 100, "failure_rate": 0.5, "adaptive": 1.0, "min_calls": 10}
    fresh = make(**cfg)
    for i in range(10):  # 4 of 10 failed
        call(fresh, F if i < 4 else S, 0)
    assert fresh.state is CLOSED and fresh.threshold() > 0.45
    # A breaker that has been failing for a while: opened, twenty probes failed, then one
    # succeeded and closed it. The long-run rate remembers.
    worn = make(**cfg, close_after=1, max_open_s=5)
    for i in range(10):
        call(worn, F if i % 2 else S, 0)
    assert worn.state is OPEN
    for k in range(1, 21):
        call(worn, F, 5.0 * k)
    call(worn, S, 1000)
    assert worn.state is CLOSED and worn.threshold() < 0.4
    for i in range(10):
        call(worn, F if i >= 6 else S, 1000)  # the same 4 of 10, failures last
    assert worn.state is OPEN


# -- open -> half-open -> closed | open --------------------------------------------------------


def test_half_open_after_the_open_time_and_probes() -> None:
    b = make(open_s=5, half_open_probes=2, close_after=3)
    open_it(b, 100)
    assert not b.allow(104.999)
    assert b.state_at(104.999) is OPEN and b.state_at(105) is HALF
    assert b.allow(105)
    assert b.state is OPEN  # allow changes nothing
    t1 = b.on_attempt_start(105)
    t2 = b.on_attempt_start(105)
    assert t1 is not None and t2 is not None and b.state is HALF
    assert b.probes_in_flight == 2
    assert not b.allow(105) and b.on_attempt_start(105) is None  # both slots taken
    b.on_result(S, 106, t1)
    assert b.allow(106) and b.probes_in_flight == 1
    t3 = b.on_attempt_start(106)
    assert t3 is not None
    b.on_result(S, 107, t2)
    assert b.state is HALF
    b.on_result(S, 108, t3)  # the third success closes it
    assert b.state is CLOSED and b.allow(108)
    assert b.snapshot(108)["window"] == {"calls": 0, "failures": 0, "slow": 0}


@pytest.mark.parametrize("outcome", [F, Outcome.TIMEOUT, SLOW])
def test_a_failed_or_slow_probe_reopens(outcome: Outcome) -> None:
    b = make(open_s=5)
    open_it(b, 0)
    ticket = b.on_attempt_start(5)
    assert ticket is not None
    b.on_result(outcome, 6, ticket)
    assert b.state is OPEN and b.last_open_s == 10
    assert not b.allow(15.9) and b.allow(16)


@pytest.mark.parametrize("outcome", [Outcome.CLIENT_ERROR, Outcome.RATE_LIMITED, Outcome.ABANDONED])
def test_a_neutral_probe_frees_its_slot_and_decides_nothing(outcome: Outcome) -> None:
    b = make(close_after=1)
    open_it(b, 0)
    ticket = b.on_attempt_start(5)
    assert ticket is not None and not b.allow(5)
    b.on_result(outcome, 5, ticket)
    assert b.state is HALF and b.allow(5) and b.probes_in_flight == 0


def test_results_of_attempts_started_before_opening_are_not_probes() -> None:
    b = make(consecutive_failures=2, close_after=1)
    early = [b.on_attempt_start(0) for _ in range(4)]
    assert all(t is not None for t in early)
    b.on_result(F, 0, early[0])  # type: ignore[arg-type]
    b.on_result(F, 0, early[1])  # type: ignore[arg-type]
    assert b.state is OPEN
    b.on_result(S, 1, early[2])  # type: ignore[arg-type]  # while open: ignored
    assert b.state is OPEN
    probe = b.on_attempt_start(5)
    assert probe is not None
    b.on_result(F, 6, early[3])  # type: ignore[arg-type]  # a stale failure: not the probe's
    assert b.state is HALF and b.probes_in_flight == 1
    b.on_result(S, 6, probe)
    assert b.state is CLOSED


def test_a_probe_that_never_reports_is_forgotten() -> None:
    b = make()
    open_it(b, 0)
    lost = b.on_attempt_start(5)
    assert lost is not None
    assert not b.allow(5 + PROBE_LEASE_S - 1)
    assert b.allow(5 + PROBE_LEASE_S)
    assert b.on_attempt_start(5 + PROBE_LEASE_S) is not None


def test_open_time_doubles_and_is_capped() -> None:
    b = make(open_s=5, max_open_s=60)
    open_it(b, 0)
    now, seen = 0.0, [b.last_open_s]
    for _ in range(6):
        now += b.last_open_s
        ticket = b.on_attempt_start(now)
        assert ticket is not None
        b.on_result(F, now, ticket)
        seen.append(b.last_open_s)
    assert seen == [5, 10, 20, 40, 60, 60, 60]
    assert b.backoff_level == 7 and b.opens_total == 7


def test_backoff_resets_after_a_long_enough_closed_period() -> None:
    b = make(open_s=5, close_after=1, open_backoff_reset_s=300)
    open_it(b, 0)
    call(b, S, 5)  # closed at 5
    open_it(b, 200)  # closed only 195 s: the problem came back
    assert b.last_open_s == 10
    call(b, S, 210)  # closed at 210
    open_it(b, 510)  # closed 300 s: a fresh problem
    assert b.last_open_s == 5 and b.backoff_level == 1


def test_disabled_breaker_never_refuses() -> None:
    b = make(enabled=False, consecutive_failures=1)
    for i in range(50):
        call(b, F, i)
    assert b.state is CLOSED and b.allow(50)
    assert b.totals == {F: 50}


def test_reconfigure_keeps_state_and_shrinks_the_window() -> None:
    b = make(consecutive_failures=100, window_calls=20, min_calls=10)
    for i in range(15):
        call(b, F if i < 5 else S, 0)
    b.reconfigure(breaker_config(consecutive_failures=100, window_calls=10, min_calls=5), 1)
    assert b.snapshot(1)["window"] == {"calls": 10, "failures": 0, "slow": 0}
    open_it_cfg = breaker_config(consecutive_failures=2)
    b.reconfigure(open_it_cfg, 1)
    call(b, F, 1)
    call(b, F, 1)
    assert b.state is OPEN
    b.reconfigure(breaker_config(enabled=False), 2)  # switched off: closed at once
    assert b.state is CLOSED and b.allow(2)


def test_snapshot() -> None:
    b = make(consecutive_failures=3, open_s=5)
    call(b, Outcome.CLIENT_ERROR, 0)
    call(b, S, 0)
    open_it(b, 10)
    assert b.snapshot(12) == {
        "state": "open",
        "consecutive_failures": 0,
        "window": {"calls": 0, "failures": 0, "slow": 0},
        "failure_rate": None,
        "threshold": pytest.approx(0.5 * (1 - 0.5 * b.long_run), abs=1e-4),
        "long_run_failure_rate": round(b.long_run, 4),
        "opens_total": 1,
        "backoff_level": 1,
        "open_remaining_s": 3.0,
        "probes_in_flight": 0,
        "probe_successes": 0,
        "last_open_reason": "3 consecutive failures",
        "outcomes": {"client_error": 1, "success": 1, "server_error": 3},
    }
    assert b.snapshot(15)["state"] == "half_open"
    assert b.snapshot(15)["open_remaining_s"] == 0.0
