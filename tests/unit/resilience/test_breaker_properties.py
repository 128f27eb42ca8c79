"""Properties of the circuit breaker over arbitrary sequences of attempts, results and clock
moves (hypothesis, fake clock)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.resilience import BreakerConfig
from proxy.resilience.breaker import PROBE_LEASE_S, BreakerState, CircuitBreaker
from proxy.resilience.outcome import Outcome

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
LEGAL = {(CLOSED, OPEN), (OPEN, HALF), (HALF, CLOSED), (HALF, OPEN)}

configs = st.builds(
    lambda consecutive, rate, adaptive, window, min_frac, probes, close_after, open_s, cap: (
        BreakerConfig(
            consecutive_failures=consecutive,
            failure_rate=rate,
            adaptive=adaptive,
            window_calls=window,
            min_calls=max(1, int(window * min_frac)),
            window_s=20.0,
            slow_call_rate=0.6,
            half_open_probes=probes,
            close_after=close_after,
            open_s=open_s,
            max_open_s=open_s * cap,
            open_backoff_reset_s=50.0,
        )
    ),
    st.integers(1, 6),
    st.floats(0.05, 1.0),
    st.floats(0.0, 1.0),
    st.integers(1, 12),
    st.floats(0.0, 1.0),
    st.integers(1, 3),
    st.integers(1, 3),
    st.floats(0.5, 10.0),
    st.integers(1, 20),
)


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Finish:
    pick: int  # which of the attempts in flight
    outcome: Outcome


@dataclass(frozen=True)
class Wait:
    seconds: float


ops = st.lists(
    st.one_of(
        st.just(Start()),
        st.builds(Finish, st.integers(0, 50), st.sampled_from(list(Outcome))),
        st.builds(Wait, st.sampled_from([0.0, 0.1, 1.0, 5.0, 30.0, 200.0, PROBE_LEASE_S])),
    ),
    max_size=120,
)


def run(cfg: BreakerConfig, steps: list[Start | Finish | Wait]) -> None:
    """Drive a breaker and check the invariants after every step."""
    b = CircuitBreaker(cfg)
    now = 0.0
    flight: list[tuple[int, float]] = []  # (ticket, started) of attempts admitted
    probes: list[float] = []  # start times of admitted probes in the current half-open spell
    opens = 0
    last_open_s = 0.0
    for step in steps:
        before = b.state_at(now)
        opened_from = before
        if isinstance(step, Wait):
            now += step.seconds
        elif isinstance(step, Start):
            allowed = b.allow(now)
            assert b.state_at(now) is before  # allow changes nothing
            ticket = b.on_attempt_start(now)
            assert allowed == (ticket is not None)
            if ticket is not None:
                flight.append((ticket, now))
                if b.state is HALF:
                    probes.append(now)
        elif flight:
            ticket, started = flight.pop(step.pick % len(flight))
            if started in probes and b.state_at(now) is HALF:
                probes.remove(started)
            b.on_result(step.outcome, now, ticket)
        after = b.state_at(now)
        assert before is after or (before, after) in LEGAL, (before, after)
        if after is not HALF or b.opens_total != opens:
            probes.clear()
        # Never more probes in flight than configured (forgotten ones excepted).
        live = [t for t in probes if t + PROBE_LEASE_S > now]
        assert len(live) <= cfg.half_open_probes
        assert b.probes_in_flight <= cfg.half_open_probes
        # The open time: within [open_s, max_open_s], and growing when a probe fails.
        if b.opens_total != opens:
            assert b.opens_total == opens + 1
            assert cfg.open_s <= b.last_open_s <= cfg.max_open_s
            if opened_from is HALF:
                assert b.last_open_s >= last_open_s
                assert b.last_open_s == min(cfg.max_open_s, 2 * last_open_s)
            opens, last_open_s = b.opens_total, b.last_open_s
        # The adaptive threshold stays between its floor and the configured rate.
        floor = cfg.failure_rate * (1 - cfg.adaptive)
        assert floor - 1e-9 <= b.threshold() <= cfg.failure_rate + 1e-9
        assert 0.0 <= b.long_run <= 1.0
        # The cheap read agrees with the state.
        if after is CLOSED:
            assert b.allow(now)
        elif after is OPEN:
            assert not b.allow(now)


@settings(max_examples=300, deadline=None)
@given(configs, ops)
def test_invariants_hold_for_any_sequence(
    cfg: BreakerConfig, steps: list[Start | Finish | Wait]
) -> None:
    run(cfg, steps)


neutral = st.sampled_from([Outcome.CLIENT_ERROR, Outcome.RATE_LIMITED, Outcome.ABANDONED])


@settings(max_examples=200, deadline=None)
@given(configs, st.lists(st.tuples(neutral, st.floats(0, 5)), max_size=200))
def test_client_errors_never_open_it(
    cfg: BreakerConfig, results: list[tuple[Outcome, float]]
) -> None:
    b = CircuitBreaker(cfg)
    now = 0.0
    for outcome, dt in results:
        now += dt
        ticket = b.on_attempt_start(now)
        assert ticket is not None
        b.on_result(outcome, now, ticket)
        assert b.state is CLOSED and b.opens_total == 0 and b.long_run == 0.0


@settings(max_examples=200, deadline=None)
@given(configs, st.lists(st.booleans(), min_size=1, max_size=200))
def test_threshold_follows_the_documented_formula(cfg: BreakerConfig, fails: list[bool]) -> None:
    b = CircuitBreaker(cfg)
    ewma = 0.0
    alpha = 2.0 / 101
    now = 0.0
    for failed in fails:
        ticket = b.on_attempt_start(now)
        if ticket is None:
            now += cfg.max_open_s  # let it go half-open
            continue
        b.on_result(Outcome.SERVER_ERROR if failed else Outcome.SUCCESS, now, ticket)
        ewma += alpha * ((1.0 if failed else 0.0) - ewma)
        assert abs(b.long_run - ewma) < 1e-9
        assert abs(b.threshold() - cfg.failure_rate * (1 - cfg.adaptive * ewma)) < 1e-9
        # More failures in the long run never loosen the threshold.
        now += 0.5


@settings(max_examples=100, deadline=None)
@given(configs, st.integers(1, 30))
def test_open_time_grows_and_is_capped(cfg: BreakerConfig, reopenings: int) -> None:
    b = CircuitBreaker(cfg)
    now = 0.0
    while b.state is not OPEN:
        ticket = b.on_attempt_start(now)
        assert ticket is not None
        b.on_result(Outcome.CONNECT_FAILURE, now, ticket)
    durations = [b.last_open_s]
    for _ in range(reopenings):
        now += b.last_open_s
        ticket = b.on_attempt_start(now)
        assert ticket is not None  # the first probe
        b.on_result(Outcome.RESET, now, ticket)
        durations.append(b.last_open_s)
    expected = [min(cfg.max_open_s, cfg.open_s * 2.0**k) for k in range(len(durations))]
    assert durations == expected
    assert durations == sorted(durations) and max(durations) <= cfg.max_open_s
