"""Per-provider resource limits: the counters the router takes and gives back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.resilience.resources import ClusterResources, ResourceBook


def test_requests_are_capped_and_counted_back() -> None:
    c = ClusterResources(max_requests=2, max_retries=None)
    assert c.try_acquire(False) and c.try_acquire(True)
    assert not c.try_acquire(False)
    assert c.overflows == 1
    c.release(True)
    assert c.active_requests == 1 and c.active_retries == 0
    assert c.try_acquire(False)


def test_retries_have_their_own_cap_within_the_requests() -> None:
    c = ClusterResources(max_requests=None, max_retries=1)
    assert c.try_acquire(True)
    assert not c.try_acquire(True)  # a second retry in flight
    assert c.try_acquire(False)  # a first attempt still fits
    assert c.active_requests == 2 and c.active_retries == 1
    assert c.overflows == 1


def test_zero_retries_forbids_every_retry() -> None:
    c = ClusterResources(max_requests=None, max_retries=0)
    assert not c.try_acquire(True) and c.try_acquire(False)


def test_reload_keeps_the_counts_and_takes_the_new_limits() -> None:
    old = ResourceBook([("a", 1, None), ("b", 5, 5)])
    a = old.get("a")
    assert a is not None and a.try_acquire(False)
    new = ResourceBook([("a", 3, 1)], previous=old)
    assert new.get("a") is a and a.max_requests == 3 and a.active_requests == 1
    assert new.get("b") is None  # no resources block any more
    assert new.snapshot()["a"]["active_requests"] == 1


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60))
def test_counters_never_exceed_limits_nor_go_negative(ops: list[tuple[bool, bool]]) -> None:
    c = ClusterResources(max_requests=3, max_retries=1)
    held: list[bool] = []
    for acquire, retry in ops:
        if acquire:
            if c.try_acquire(retry):
                held.append(retry)
        elif held:
            c.release(held.pop(0))
        assert 0 <= c.active_requests <= 3 and 0 <= c.active_retries <= 1
        assert c.active_requests == len(held) and c.active_retries == sum(held)
