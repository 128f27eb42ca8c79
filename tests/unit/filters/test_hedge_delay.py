"""The hedge delay: fixed, or a percentile of the candidate's recent first-byte times."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.filters.hedge import RECENT_SAMPLES, hedge_delay, percentile
from proxy.routing.selection import CandidateStats
from proxy.routing.types import Hedge


def test_fixed_delay() -> None:
    stats = CandidateStats()
    assert hedge_delay(Hedge(delay_s=1.5), stats) == 1.5
    assert stats.recent is None  # no samples kept for a fixed delay


def test_percentile_after_enough_samples() -> None:
    stats = CandidateStats()
    policy = Hedge(delay_s=2.0, percentile=95, min_samples=20)
    assert hedge_delay(policy, stats) == 2.0  # asking starts the window
    assert stats.recent is not None
    for i in range(19):
        stats.recent.append(0.1 * (i + 1))
    assert hedge_delay(policy, stats) == 2.0  # 19 < min_samples
    stats.recent.append(2.0)
    # 20 samples 0.1..1.9 and 2.0: the 95th percentile by nearest rank is the 19th value.
    assert abs(hedge_delay(policy, stats) - 1.9) < 1e-9


def test_window_is_bounded() -> None:
    stats = CandidateStats()
    hedge_delay(Hedge(percentile=50), stats)
    assert stats.recent is not None
    for i in range(RECENT_SAMPLES * 3):
        stats.recent.append(float(i))
    assert len(stats.recent) == RECENT_SAMPLES


@given(st.lists(st.floats(0, 100), min_size=1, max_size=80), st.floats(0.5, 99.5))
def test_percentile_is_a_sample_and_monotonic(values: list[float], p: float) -> None:
    ordered = sorted(values)
    got = percentile(ordered, p)
    assert got in ordered
    assert percentile(ordered, min(p + 0.4, 99.9)) >= got
    assert sum(v <= got for v in ordered) >= len(ordered) * p / 100
