"""GCRA under a fake clock: the window bound, exact retry times, debt and refunds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.limits.gcra import Gcra

rates = st.integers(min_value=1, max_value=1000)
periods = st.sampled_from([1.0, 60.0, 3600.0])
# (seconds since the previous attempt, cost as a share of the burst)
steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(rate=rates, period=periods, burst_share=st.floats(0.05, 2.0), steps=steps)
def test_never_admits_more_than_burst_plus_rate_times_window(
    rate: int, period: float, burst_share: float, steps: list[tuple[float, float]]
) -> None:
    burst = max(rate * burst_share, 1.0)
    g = Gcra(rate, period, burst)
    now = 1_700_000_000.0
    admitted: list[tuple[float, float]] = []
    for dt, share in steps:
        now += dt
        cost = share * burst
        if g.take(cost, now) == 0.0:
            admitted.append((now, cost))
    # The heaviest window starts and ends at admissions.
    for i, (start, _) in enumerate(admitted):
        total = 0.0
        for end, cost in admitted[i:]:
            total += cost
            bound = burst + rate * (end - start) / period
            assert total <= bound + 1e-6 * max(bound, 1.0)


@settings(max_examples=300, deadline=None)
@given(rate=rates, period=periods, steps=steps, share=st.floats(0.01, 1.0))
def test_retry_after_is_exact(
    rate: int, period: float, steps: list[tuple[float, float]], share: float
) -> None:
    g = Gcra(rate, period)
    now = 1_000.0
    for dt, s in steps:
        now += dt / 10
        g.take(s * g.burst, now)
    cost = share * g.burst
    wait = g.wait_s(cost, now)
    if wait == 0.0:
        return
    # A moment early is still refused; exactly on time conforms.
    early = max(wait * 0.999, wait - 1e-3)
    if wait > 1e-6:
        assert g.wait_s(cost, now + early) > 0.0
    assert g.wait_s(cost, now + wait) == 0.0
    assert g.take(cost, now + wait) == 0.0


def test_requests_per_minute_burst_then_one_per_interval() -> None:
    g = Gcra(3, 60.0)  # 3 per minute: a full bucket of 3, then one every 20 s
    assert [g.take(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert g.take(1, 0.0) == pytest.approx(20.0)
    assert g.take(1, 19.9) == pytest.approx(0.1)
    assert g.take(1, 20.0) == 0.0
    assert g.take(1, 20.0) == pytest.approx(20.0)


def test_refused_take_costs_nothing() -> None:
    g = Gcra(2, 60.0)
    g.take(2, 0.0)
    for _ in range(10):
        assert g.take(1, 1.0) == pytest.approx(29.0)
    assert g.take(1, 30.0) == 0.0


def test_debt_from_usage_delays_the_next_request_exactly() -> None:
    g = Gcra(1000, 60.0)  # 1000 tokens per minute, 0.06 s per token
    assert g.take(100, 0.0) == 0.0  # the estimate
    g.adjust(1400, 0.0)  # the provider reported 1500: 500 tokens of debt
    assert g.available(0.0) == pytest.approx(-500)
    # 600 tokens need the debt paid and 600 back in the bucket: 1100 tokens' worth of time.
    assert g.wait_s(600, 0.0) == pytest.approx(66.0)
    assert g.take(600, 66.0) == 0.0


def test_refund_gives_back_but_never_more_than_a_full_bucket() -> None:
    g = Gcra(1000, 60.0)
    g.take(800, 0.0)
    g.adjust(-600, 0.0)  # used 200, not 800
    assert g.available(0.0) == pytest.approx(800)
    g.adjust(-5000, 0.0)
    assert g.available(0.0) == pytest.approx(1000)
    assert g.take(1000, 0.0) == 0.0
    assert g.wait_s(1, 0.0) > 0.0


def test_a_take_larger_than_the_bucket_needs_a_full_bucket_and_leaves_debt() -> None:
    g = Gcra(1000, 60.0)
    g.take(1, 0.0)
    assert g.wait_s(2500, 0.0) == pytest.approx(0.06)  # the one token must be paid off
    assert g.take(2500, 0.06) == 0.0
    # 1500 tokens of debt beyond the bucket: 90 s until anything fits again.
    assert g.wait_s(1, 0.06) == pytest.approx(90.06)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Gcra(0, 60.0)
    with pytest.raises(ValueError):
        Gcra(1, 0.0)
    with pytest.raises(ValueError):
        Gcra(1, 60.0, burst=0)
