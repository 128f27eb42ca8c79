"""Retry delays, provider reset hints and the retry budget."""

from __future__ import annotations

import random
from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from proxy.resilience.retry import RetryBudget, RetryPolicy, reset_hint

NOW = 1_800_000_000.0


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(max_retries=3, base_s=0.5, cap_s=1.5)
    rng = random.Random(1)
    for retry, cap in ((1, 0.5), (2, 1.0), (3, 1.5)):
        for _ in range(200):
            d = policy.delay(retry, None, rng)
            assert d is not None and 0 <= d <= cap
    assert policy.delay(4, None, rng) is None


def test_a_hint_is_used_as_is_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=1, cap_s=5.0)
    rng = random.Random(1)
    assert policy.delay(1, 2.5, rng) == 2.5
    assert policy.delay(1, 6.0, rng) is None


def test_reset_hints_in_every_shape() -> None:
    assert reset_hint([(b"retry-after", b"7")], NOW) == 7.0
    assert reset_hint([(b"retry-after-ms", b"1500"), (b"retry-after", b"9")], NOW) == 1.5
    date = formatdate(NOW + 12, usegmt=True).encode()
    assert reset_hint([(b"retry-after", date)], NOW) == 12.0
    reset = b"2027-01-15T08:00:10Z"
    from datetime import datetime

    base = datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()
    assert reset_hint([(b"anthropic-ratelimit-requests-reset", reset)], base) == 10.0
    hints = [(b"x-ratelimit-reset-requests", b"6m0s"), (b"x-ratelimit-reset-tokens", b"250ms")]
    assert reset_hint(hints, NOW) == 0.25
    assert reset_hint([(b"x-ratelimit-reset-requests", b"1h2m3.5s")], NOW) == 3723.5
    assert reset_hint([(b"retry-after", b"soon")], NOW) is None
    assert reset_hint([(b"retry-after", b"-5")], NOW) is None
    assert reset_hint([], NOW) is None


@given(st.binary(max_size=40))
def test_garbage_hints_never_raise(value: bytes) -> None:
    for name in (b"retry-after", b"retry-after-ms", b"x-ratelimit-reset-tokens"):
        hint = reset_hint([(name, value)], NOW)
        assert hint is None or 0 <= hint <= 24 * 3600


@given(st.integers(min_value=0, max_value=500), st.floats(min_value=0, max_value=1))
def test_the_budget_never_exceeds_its_share(active: int, ratio: float) -> None:
    budget = RetryBudget(ratio=ratio, min_concurrent=2)
    budget.active_requests = active
    granted = sum(budget.try_acquire() for _ in range(active + 5))
    assert granted == max(2, int(ratio * active))
    for _ in range(granted):
        budget.release()
    assert budget.active_retries == 0
