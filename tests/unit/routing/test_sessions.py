"""SessionUsage: the bounded, expiring memory of each session's last input tokens."""

from __future__ import annotations

import pytest

from proxy.routing.sessions import MAX_SESSIONS, SESSION_TTL_S, SessionUsage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defaults() -> None:
    assert (MAX_SESSIONS, SESSION_TTL_S) == (10_000, 3600.0)
    usage = SessionUsage(clock=Clock())
    for i in range(MAX_SESSIONS + 5):
        usage.put(f"s{i}", i)
    assert len(usage) == MAX_SESSIONS
    assert usage.get("s4") is None
    assert usage.get("s5") == 5


def test_get_put_overwrite() -> None:
    usage = SessionUsage(clock=Clock())
    assert usage.get("a") is None
    usage.put("a", 70_000)
    usage.put("b", 10)
    assert usage.get("a") == 70_000
    usage.put("a", 12)
    assert (usage.get("a"), usage.get("b"), len(usage)) == (12, 10, 2)


def test_bound_evicts_the_oldest_write() -> None:
    usage = SessionUsage(max_sessions=3, clock=Clock())
    for name in "abc":
        usage.put(name, 1)
    usage.put("d", 1)
    assert [usage.get(n) for n in "abcd"] == [None, 1, 1, 1]
    assert len(usage) == 3


def test_rewrite_refreshes_recency() -> None:
    usage = SessionUsage(max_sessions=3, clock=Clock())
    for name in "abc":
        usage.put(name, 1)
    usage.put("a", 2)  # a is now the newest; b the oldest
    usage.put("d", 1)
    assert [usage.get(n) for n in "abcd"] == [2, None, 1, 1]


def test_get_does_not_refresh_recency() -> None:
    # Recency is by write (each turn ends with a put), which keeps the front the first to expire.
    usage = SessionUsage(max_sessions=2, clock=Clock())
    usage.put("a", 1)
    usage.put("b", 1)
    assert usage.get("a") == 1
    usage.put("c", 1)
    assert [usage.get(n) for n in "abc"] == [None, 1, 1]


def test_ttl_expiry() -> None:
    clock = Clock()
    usage = SessionUsage(ttl_s=60.0, clock=clock)
    usage.put("a", 5)
    clock.now += 59.9
    assert usage.get("a") == 5
    clock.now += 0.1
    assert usage.get("a") is None
    assert len(usage) == 0  # the expired entry was dropped


def test_put_restarts_ttl() -> None:
    clock = Clock()
    usage = SessionUsage(ttl_s=60.0, clock=clock)
    usage.put("a", 5)
    clock.now += 50
    usage.put("a", 6)
    clock.now += 50
    assert usage.get("a") == 6


def test_put_drops_expired_entries() -> None:
    clock = Clock()
    usage = SessionUsage(ttl_s=60.0, clock=clock)
    usage.put("old1", 1)
    usage.put("old2", 1)
    clock.now += 30
    usage.put("mid", 1)
    clock.now += 31  # old1 and old2 expired, mid has 29 s left
    usage.put("new", 1)
    assert len(usage) == 2
    assert [usage.get(n) for n in ("old1", "old2", "mid", "new")] == [None, None, 1, 1]


@pytest.mark.parametrize(
    ("kw", "message"), [({"max_sessions": 0}, "max_sessions"), ({"ttl_s": 0.0}, "ttl_s")]
)
def test_bad_bounds(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SessionUsage(**kw)  # type: ignore[arg-type]
