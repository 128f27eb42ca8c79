"""Read batching for streamed answers while the worker is overloaded.

Why: a streamed answer arrives as one small event per provider write. Each costs Junction a
read of the provider's socket (with the ACK the kernel sends for it), a pass through the
translator and a write to the client: on loopback about 60 % of a worker's CPU per event is
the kernel's (docs/architecture.md). When one worker carries
so many streams that its core is nearly always busy, every stall of the machine leaves a
backlog that takes many times its length to clear, and new streams' first tokens wait behind
it. Letting a stream's events gather in the kernel for a short window and reading them in one
go shares those per-read and per-write costs among the events, and a worker that falls
behind reads each stream at most once per hold instead of once per event, so no backlog of
reads builds up for new streams' first tokens to wait behind.

How this works: `ReadBatcher` is off (`active` False) until the worker's overload monitor
turns it on (proxy/server/overload.py). While it is on, an HTTP/1.1 upstream connection whose
exchange allows it (`PooledExchange.gatherable`: the client already has the stream's first
content, so a first token is never held) pauses reading after each read that left the
response unfinished, and `hold` schedules it to read again between half a window and a
window later (`JITTER_SHARE`). Releases are made in passes: each pass resumes every
connection due within the next millisecond, so the timer fires at most about once a
millisecond whatever the number of streams, and the reads the releases bring stay as evenly
spread as the holds were (released in larger groups, they came back as bursts that new
streams' first tokens waited behind). A connection paused for the client's own back-pressure
stays paused when its window ends; one that closed meanwhile is skipped. Turning the
batcher off stops new holds; the held ones end with their window.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable
from typing import Protocol

# A pass releases what is due within this long: bounds the timer's rate, while keeping the
# releases (and so the reads they bring) as evenly spread as the holds were.
RELEASE_SLACK_S = 0.001
# Each hold lasts between (1 - JITTER_SHARE) and 1 window, drawn at random: a stall of the
# worker makes many streams' reads (and so their holds) fall together, and with one fixed
# window that cohort would come back as a burst every window, each time making new first
# tokens wait behind it.
JITTER_SHARE = 0.5


class Holdable(Protocol):
    def release_hold(self) -> None:
        """The window ended: read again unless paused for another reason or closed."""
        ...


class ReadBatcher:
    __slots__ = (
        "_clock",
        "_held",
        "_jitter",
        "_loop",
        "_seq",
        "_timer",
        "_timer_at",
        "active",
        "holds_total",
        "window_s",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float],
        window_s: float,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """``jitter`` returns a number in [0, 1) per hold (tests pass their own)."""
        if window_s <= 0:
            raise ValueError("ReadBatcher: the window must be positive")
        self._loop = loop
        self._clock = clock
        self._jitter = jitter
        self.window_s = window_s
        self.active = False
        self.holds_total = 0  # reads deferred, for /stats and metrics
        # Held connections by the time their hold ends (a heap; the sequence number keeps
        # equal times in hold order). Bounded by the open connections: one entry per
        # connection at a time (Http1Connection's _held flag).
        self._held: list[tuple[float, int, Holdable]] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def hold(self, conn: Holdable) -> None:
        """``conn`` has just paused reading: resume it when its hold ends."""
        now = self._clock()
        due = now + self.window_s * (1.0 - JITTER_SHARE * self._jitter())
        self._seq += 1
        heapq.heappush(self._held, (due, self._seq, conn))
        self.holds_total += 1
        if self._timer is None or due < self._timer_at - RELEASE_SLACK_S:
            if self._timer is not None:
                self._timer.cancel()
            self._arm(due, now)

    def _arm(self, due: float, now: float) -> None:
        self._timer_at = due
        self._timer = self._loop.call_later(max(due - now, 0.0), self._release)

    @property
    def held(self) -> int:
        return len(self._held)

    def _release(self) -> None:
        self._timer = None
        held = self._held
        now = self._clock()
        horizon = now + RELEASE_SLACK_S
        while held and held[0][0] <= horizon:
            heapq.heappop(held)[2].release_hold()
        if held:
            self._arm(held[0][0], self._clock())

    def close(self) -> None:
        """Release everything now (the client is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.active = False
        held = sorted(self._held)
        self._held = []
        for entry in held:
            entry[2].release_hold()
