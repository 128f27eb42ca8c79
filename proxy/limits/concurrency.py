"""A counting semaphore that never blocks: a request either gets a slot now or is refused.

Waiting for a slot would hold the client's connection and the request's body in memory while
the limit is saturated; a 429 with ``retry-after`` hands the wait back to the client, which
retries on its own. The limit can change while slots are held (a config reload): holders keep
theirs, and new ones are admitted once the count is below the new limit.
"""

from __future__ import annotations


class ConcurrencyLimit:
    __slots__ = ("in_use", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.in_use = 0

    @property
    def full(self) -> bool:
        return self.in_use >= self.limit

    def try_acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        if self.in_use <= 0:
            raise RuntimeError("release without a matching acquire")
        self.in_use -= 1
