"""Spend windows: calendar UTC days and months, rollover, costs from prices."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.limits.api import ModelPrice
from proxy.limits.spend import (
    Period,
    SpendWindow,
    cost_usd,
    day_index,
    month_index,
    window_end,
    window_index,
)


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def test_day_and_month_boundaries_are_utc_calendar_ones() -> None:
    assert day_index(ts("1970-01-01T23:59:59")) == 0
    assert day_index(ts("1970-01-02T00:00:00")) == 1
    assert month_index(ts("1970-01-31T23:59:59")) == 0
    assert month_index(ts("1971-02-01T00:00:00")) == 13
    assert window_end("day", ts("2025-12-31T12:00:00")) == ts("2026-01-01T00:00:00")
    assert window_end("month", ts("2025-12-31T23:59:59")) == ts("2026-01-01T00:00:00")
    assert window_end("month", ts("2024-02-10T08:00:00")) == ts("2024-03-01T00:00:00")
    assert window_end("month", ts("2024-02-29T23:00:00")) == ts("2024-03-01T00:00:00")


@settings(max_examples=300, deadline=None)
@given(
    now=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
    period=st.sampled_from(["day", "month"]),
)
def test_window_end_is_the_start_of_the_next_window(now: float, period: Period) -> None:
    end = window_end(period, now)
    assert end > now
    assert window_index(period, end) == window_index(period, now) + 1
    assert window_index(period, end - 1e-3) == window_index(period, now)


def test_day_window_refuses_at_the_limit_until_utc_midnight() -> None:
    w = SpendWindow("day")
    noon = ts("2026-03-14T12:00:00")
    w.add(19.5, noon)
    assert w.wait_s(20.0, noon) == 0.0
    w.add(0.75, noon + 60)  # the request that crosses the limit was admitted
    assert w.spent(noon + 60) == pytest.approx(20.25)
    assert w.wait_s(20.0, noon + 60) == pytest.approx(12 * 3600 - 60)
    midnight = ts("2026-03-15T00:00:00")
    assert w.wait_s(20.0, midnight - 0.001) > 0
    assert w.wait_s(20.0, midnight) == 0.0 and w.spent(midnight) == 0.0


def test_month_window_rolls_over_on_the_first_and_never_goes_negative() -> None:
    w = SpendWindow("month")
    w.add(300.0, ts("2026-01-31T23:59:00"))
    assert w.wait_s(300.0, ts("2026-01-31T23:59:30")) == pytest.approx(30.0)
    assert w.spent(ts("2026-02-01T00:00:00")) == 0.0
    w.add(5.0, ts("2026-02-02T00:00:00"))
    w.add(-9.0, ts("2026-02-02T00:00:00"))  # an estimate corrected down
    assert w.spent(ts("2026-02-02T00:00:00")) == 0.0


def test_cost_is_per_million_tokens_and_unknown_prices_cost_nothing() -> None:
    sonnet = ModelPrice(3.0, 15.0)
    assert cost_usd(1_000_000, 0, sonnet) == pytest.approx(3.0)
    assert cost_usd(2000, 1000, sonnet) == pytest.approx(0.006 + 0.015)
    assert cost_usd(10**9, 10**9, None) == 0.0
