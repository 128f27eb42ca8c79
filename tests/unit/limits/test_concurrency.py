"""The non-blocking counting semaphore: never above its limit, every slot comes back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.limits.concurrency import ConcurrencyLimit


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, 8), ops=st.lists(st.booleans(), max_size=200))
def test_never_exceeds_the_limit_and_releases_free_slots(limit: int, ops: list[bool]) -> None:
    sem = ConcurrencyLimit(limit)
    held = 0
    for acquire in ops:
        if acquire:
            got = sem.try_acquire()
            assert got == (held < limit)
            held += got
        elif held:
            sem.release()
            held -= 1
        assert sem.in_use == held <= limit
        assert sem.full == (held == limit)
    for _ in range(held):
        sem.release()
    assert sem.in_use == 0
    assert sem.try_acquire()


def test_release_without_acquire_is_a_bug_not_a_free_slot() -> None:
    sem = ConcurrencyLimit(1)
    with pytest.raises(RuntimeError):
        sem.release()
    assert sem.try_acquire() and not sem.try_acquire()


def test_a_lower_limit_keeps_holders_and_admits_below_it() -> None:
    sem = ConcurrencyLimit(3)
    for _ in range(3):
        assert sem.try_acquire()
    sem.limit = 1
    assert not sem.try_acquire()
    sem.release()
    sem.release()
    assert not sem.try_acquire()  # one still held: at the new limit
    sem.release()
    assert sem.try_acquire()


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimit(0)
