"""The cyclic garbage collector, tuned for a long-running event loop: what start-up made is
frozen out of its sight, and the young and middle generations are collected on a timer.

Why a timer: CPython (3.11) collects the young generation when the tracked objects allocated
minus those freed since the last collection pass a threshold. In a server whose long-lived
objects (open streams and their connections) are freed as fast as new ones are made, that
difference stays near zero, so young objects pile up uncollected until a burst tips the count,
and then one collection walks all of them. Measured with `gc.callbacks` around a worker
carrying ~1,050 translated streams (`benchmarks/stream_load.py --rate 100`, 500 tokens at 50
tokens/s): no collection for 8 s at a time, then a young collection of 67,000 objects that
stopped the loop for 11-24 ms, once in every run; every stream due in that time, and in the
backlog after it, waited. With the pacer, over two runs of the same: young collections took
0.25-0.39 ms at most, the middle ones 0.5 ms (median) and 1.6 ms at most; in the mock
provider, which had paused 7-9 ms every ~2.4 s, 1.9 ms at most.

How this works: `GcPacer` re-arms one loop timer; each tick collects the young generation,
every `middle_every`-th the middle one (which takes the young with it), every `full_every`-th
all three. Automatic collection stays on for bursts of allocation between ticks (parsing a
large request body). The oldest generation is walked rarely: nothing on the request path makes
reference cycles (tests check connections are freed by reference counting), and a full walk of
the heap of a thousand open streams costs ~15-20 ms.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

GC_GEN0_THRESHOLD = 10_000  # allocations between automatic young collections (default 700)
YOUNG_INTERVAL_S = 0.1
MIDDLE_EVERY = 5  # ticks: the middle generation every 0.5 s
FULL_EVERY = 6_000  # ticks: every generation every 10 minutes


def tune_gc() -> None:
    """Move everything made at start-up out of the collector's sight and collect young objects
    less often: a request makes a few dozen short-lived objects, and scanning the long-lived
    heap for them cost about 6 % of the per-request time here."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


class GcPacer:
    __slots__ = (
        "_collect",
        "_full_every",
        "_interval",
        "_loop",
        "_middle_every",
        "_ticks",
        "_timer",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval_s: float = YOUNG_INTERVAL_S,
        middle_every: int = MIDDLE_EVERY,
        full_every: int = FULL_EVERY,
        collect: Callable[[int], object] = gc.collect,
    ) -> None:
        if interval_s <= 0 or middle_every < 1 or full_every < 1:
            raise ValueError("GcPacer: the interval and the periods must be positive")
        self._loop = loop
        self._interval = interval_s
        self._middle_every = middle_every
        self._full_every = full_every
        self._collect = collect
        self._ticks = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(self._interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._ticks += 1
        n = self._ticks
        if n % self._full_every == 0:
            self._collect(2)
        elif n % self._middle_every == 0:
            self._collect(1)
        else:
            self._collect(0)
        self._timer = self._loop.call_later(self._interval, self._tick)
