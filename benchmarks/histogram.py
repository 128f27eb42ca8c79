"""A log-linear latency histogram (HdrHistogram's idea, in a few lines of pure Python).

How this works: values are non-negative integers (nanoseconds here). Values below 256 get a
bucket each. Above that, a value v with bit length b falls in "octave" s = b - 8, where the
top 8 bits of v (128..255) pick one of 128 equal-width sub-buckets. A bucket therefore spans
1/128 of its lower bound at most, so reporting its highest value overstates the true sample by
less than 0.79 % and never understates it. Recording is one bit_length, one shift and one list
increment; the whole 63-bit range needs 7,296 counters.
"""

from __future__ import annotations

import math
from fractions import Fraction

SUB_BUCKET_BITS = 8
_LINEAR_LIMIT = 1 << SUB_BUCKET_BITS  # 256: values below this are exact
_HALF = _LINEAR_LIMIT >> 1  # 128 sub-buckets per octave
MAX_VALUE = (1 << 63) - 1
BUCKET_COUNT = (63 - SUB_BUCKET_BITS + 1) * _HALF + _LINEAR_LIMIT - _HALF
# Worst-case overstatement of a reported percentile, relative to the true sample.
MAX_RELATIVE_ERROR = 1 / _HALF


def bucket_index(value: int) -> int:
    if value < _LINEAR_LIMIT:
        return value if value > 0 else 0
    shift = value.bit_length() - SUB_BUCKET_BITS
    return (shift << 7) + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value that land in bucket `index` (both inclusive)."""
    if index < _LINEAR_LIMIT:
        return index, index
    shift = (index >> 7) - 1
    top = index - (shift << 7)
    return top << shift, ((top + 1) << shift) - 1


class LatencyHistogram:
    __slots__ = ("_counts", "count", "max", "min", "total")

    def __init__(self) -> None:
        self._counts = [0] * BUCKET_COUNT
        self.count = 0
        self.total = 0
        self.min = MAX_VALUE
        self.max = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0  # a clock step backwards must not corrupt the histogram
        elif value > MAX_VALUE:
            value = MAX_VALUE
        if value < _LINEAR_LIMIT:
            self._counts[value] += 1
        else:
            shift = value.bit_length() - SUB_BUCKET_BITS
            self._counts[(shift << 7) + (value >> shift)] += 1
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value

    def merge(self, other: LatencyHistogram) -> None:
        counts = self._counts
        for i, c in enumerate(other._counts):
            if c:
                counts[i] += c
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)

    def percentile(self, p: float) -> int:
        """The value at or below which p percent of the samples fall (nearest-rank definition).

        Returns the highest value of the bucket holding that sample, capped at the exact
        maximum, so the answer is never below the true sample. 0 for an empty histogram.
        """
        if not 0 <= p <= 100:
            raise ValueError(f"percentile out of range: {p}")
        if self.count == 0:
            return 0
        # Fraction(repr(p)) keeps 99.9 exact, so 99.9 % of 1,000 samples is rank 999, not 1,000.
        rank = max(1, math.ceil(Fraction(repr(p)) * self.count / 100))
        seen = 0
        for index, c in enumerate(self._counts):
            if c:
                seen += c
                if seen >= rank:
                    return min(bucket_bounds(index)[1], self.max)
        return self.max  # unreachable while counts and count agree

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0
