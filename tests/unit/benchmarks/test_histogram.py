import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.histogram import (
    BUCKET_COUNT,
    MAX_RELATIVE_ERROR,
    MAX_VALUE,
    LatencyHistogram,
    bucket_bounds,
    bucket_index,
)

PERCENTILES = st.one_of(
    st.sampled_from([0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
VALUES = st.lists(st.integers(min_value=0, max_value=1 << 40), min_size=1, max_size=300)


def nearest_rank(sorted_values: list[int], p: float) -> int:
    rank = max(1, math.ceil(Fraction(repr(p)) * len(sorted_values) / 100))
    return sorted_values[rank - 1]


@given(VALUES, PERCENTILES)
def test_percentile_never_understates_and_is_within_relative_error(
    values: list[int], p: float
) -> None:
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    exact = nearest_rank(sorted(values), p)
    got = hist.percentile(p)
    assert exact <= got <= max(values)
    assert got - exact <= exact * MAX_RELATIVE_ERROR


@given(st.integers(min_value=0, max_value=MAX_VALUE))
def test_every_value_lands_in_a_bucket_that_contains_it(value: int) -> None:
    index = bucket_index(value)
    assert 0 <= index < BUCKET_COUNT
    low, high = bucket_bounds(index)
    assert low <= value <= high
    assert high - low <= low * MAX_RELATIVE_ERROR


def test_buckets_tile_the_whole_range_without_gaps() -> None:
    assert bucket_bounds(0) == (0, 0)
    for i in range(BUCKET_COUNT - 1):
        assert bucket_bounds(i)[1] + 1 == bucket_bounds(i + 1)[0]
    assert bucket_bounds(BUCKET_COUNT - 1)[1] == MAX_VALUE


def test_small_values_are_exact_and_the_rank_of_99_9_is_not_rounded_up() -> None:
    hist = LatencyHistogram()
    for v in range(1, 201):  # below 256 every value has its own bucket
        hist.record(v)
    assert hist.percentile(25) == 50
    assert hist.percentile(99.5) == 199
    values = list(range(1, 1001))  # 99.9 % of 1,000 samples is the 999th, not the 1,000th
    hist = LatencyHistogram()
    for v in values:
        hist.record(v * 1000)
    assert nearest_rank(values, 99.9) == 999
    assert 999_000 <= hist.percentile(99.9) < 1_000_000


def test_empty_negative_and_summary_fields() -> None:
    hist = LatencyHistogram()
    assert hist.percentile(50) == 0 and hist.mean() == 0.0
    hist.record(-5)  # a clock stepping back counts as zero
    hist.record(300)
    assert hist.count == 2 and hist.min == 0 and hist.max == 300 and hist.mean() == 150.0
    assert hist.percentile(100) == 300


@given(VALUES, VALUES)
def test_merge_equals_recording_everything_in_one(a: list[int], b: list[int]) -> None:
    left, right, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in a:
        left.record(v)
        both.record(v)
    for v in b:
        right.record(v)
        both.record(v)
    left.merge(right)
    assert (left.count, left.total) == (both.count, both.total)
    assert (left.min, left.max) == (both.min, both.max)
    for p in (50, 90, 99, 99.9, 100):
        assert left.percentile(p) == both.percentile(p)
