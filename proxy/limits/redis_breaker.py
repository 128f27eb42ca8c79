"""A small circuit breaker on the Redis store itself. Sans-I/O: every call takes ``now``, a
monotonic clock reading.

How this works: CLOSED sends every call to Redis. ``failures`` consecutive failures (errors or
timeouts) open it: for ``open_s`` no call goes to Redis at all, so a dead or stalled Redis
costs requests nothing (they are decided locally at once) instead of a timeout each. After
that the next admission is let through as the one probe (HALF_OPEN): an answer closes the
breaker, a failure opens it again for another ``open_s``. A probe that never reports (its
request went away before it ran) is forgotten after ``probe_lease_s``, so a lost probe cannot
wedge the breaker.

Background calls (releases, usage corrections, lease renewals) go only while CLOSED: they are
not worth a probe, and what they would have written expires in Redis on its own.
"""

from __future__ import annotations


class RedisBreaker:
    __slots__ = ("_consecutive", "_open_until", "_probe_at", "failures", "open_s", "probe_lease_s")

    def __init__(self, failures: int, open_s: float, probe_lease_s: float) -> None:
        if failures < 1 or open_s <= 0 or probe_lease_s <= 0:
            raise ValueError("failures must be at least 1; open_s and probe_lease_s positive")
        self.failures = failures
        self.open_s = open_s
        self.probe_lease_s = probe_lease_s
        self._consecutive = 0
        self._open_until: float | None = None  # None: closed
        self._probe_at: float | None = None  # when the half-open probe was let through

    @property
    def closed(self) -> bool:
        return self._open_until is None

    def state(self, now: float) -> str:
        if self._open_until is None:
            return "closed"
        return "open" if now < self._open_until else "half_open"

    def allow(self, now: float) -> bool:
        """Whether an admission may ask Redis now; in HALF_OPEN, claims the probe."""
        if self._open_until is None:
            return True
        if now < self._open_until:
            return False
        if self._probe_at is not None and now - self._probe_at < self.probe_lease_s:
            return False
        self._probe_at = now
        return True

    def on_success(self) -> None:
        self._consecutive = 0
        self._open_until = None
        self._probe_at = None

    def on_failure(self, now: float) -> None:
        self._consecutive += 1
        if self._probe_at is not None or self._consecutive >= self.failures:
            self._open_until = now + self.open_s
            self._probe_at = None

    def on_abandon(self) -> None:
        """A call ended without an answer either way (its request went away)."""
        self._probe_at = None
