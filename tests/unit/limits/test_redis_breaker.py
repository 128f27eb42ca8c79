"""The breaker on Redis, under a fake clock: opens after consecutive failures, stays open for
its time, lets one probe through, and a lost probe cannot wedge it."""

from __future__ import annotations

import pytest

from proxy.limits.redis_breaker import RedisBreaker


def test_opens_after_consecutive_failures_only() -> None:
    b = RedisBreaker(failures=3, open_s=5.0, probe_lease_s=1.0)
    b.on_failure(0.0)
    b.on_failure(0.1)
    b.on_success()  # the run is broken
    b.on_failure(0.2)
    b.on_failure(0.3)
    assert b.allow(0.3) and b.state(0.3) == "closed"
    b.on_failure(0.4)
    assert b.state(0.4) == "open" and not b.closed
    assert not b.allow(0.5) and not b.allow(5.39)


def test_one_probe_after_the_open_time_closes_or_reopens() -> None:
    b = RedisBreaker(failures=1, open_s=5.0, probe_lease_s=1.0)
    b.on_failure(0.0)
    assert b.state(5.0) == "half_open"
    assert b.allow(5.0)  # the probe
    assert not b.allow(5.1)  # only one at a time
    b.on_failure(5.2)  # the probe failed: open again, for the whole open time
    assert not b.allow(10.1) and b.allow(10.2)
    b.on_success()
    assert b.closed and b.allow(10.3) and b.allow(10.3)


def test_a_lost_probe_is_forgotten() -> None:
    b = RedisBreaker(failures=1, open_s=1.0, probe_lease_s=0.5)
    b.on_failure(0.0)
    assert b.allow(1.0)
    assert not b.allow(1.4)
    assert b.allow(1.5)  # the first probe never reported
    b.on_abandon()
    assert b.allow(1.6)


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RedisBreaker(failures=0, open_s=1.0, probe_lease_s=1.0)
    with pytest.raises(ValueError):
        RedisBreaker(failures=1, open_s=0.0, probe_lease_s=1.0)
