"""The load generator's sans-I/O core: when each request goes out and what its latency is.

How this works. Open loop (the default): request number n of the whole run is due at
start + n * interval, and connection i owns the numbers i, i + C, i + 2C, ... (C connections),
so the rate is spread evenly. A connection sends its next request when that request is due
*and* the previous one has completed (one outstanding request per connection, no pipelining).
Latency is measured from the due time, never from the actual send: when the server stalls,
requests queue behind the busy connection and their waiting counts, so a stall shows up as
the latency a real client at that rate would see (no coordinated omission, as in wrk2). A
request sent after its due time because its connection was busy (or down) is "late".

Closed loop: a connection sends its next request as soon as the previous one completes;
latency is measured from the send.

Only requests due (open) or sent (closed) inside the measured window [measure_from, end) are
recorded; the warmup before it exercises the same path. Every method takes `now` in integer
nanoseconds of one monotonic clock, so tests drive it with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.histogram import LatencyHistogram

NS_PER_S = 1_000_000_000
_FAR_FUTURE = 1 << 62  # 'idle since' of a connection that is down


@dataclass(frozen=True, slots=True)
class Window:
    """The run's timeline in monotonic nanoseconds."""

    start_ns: int
    measure_from_ns: int
    end_ns: int

    @classmethod
    def after(cls, start_ns: int, warmup_s: float, duration_s: float) -> Window:
        measure_from = start_ns + round(warmup_s * NS_PER_S)
        return cls(start_ns, measure_from, measure_from + round(duration_s * NS_PER_S))


@dataclass(frozen=True, slots=True)
class OpenLoopSchedule:
    window: Window
    interval_ns: int  # between consecutive requests of the whole run
    connections: int

    @classmethod
    def for_rate(cls, window: Window, rate_per_s: float, connections: int) -> OpenLoopSchedule:
        if rate_per_s <= 0 or connections <= 0:
            raise ValueError("rate and connections must be positive")
        return cls(window, max(1, round(NS_PER_S / rate_per_s)), connections)

    def due_ns(self, n: int) -> int:
        return self.window.start_ns + n * self.interval_ns

    def count_due_before(self, t_ns: int, first: int) -> int:
        """How many of the numbers first, first + C, ... are due strictly before t_ns."""
        step = self.connections * self.interval_ns
        span = t_ns - self.due_ns(first)
        return 0 if span <= 0 else (span + step - 1) // step


@dataclass(slots=True)
class RunStats:
    """What every connection of a run adds to. Counters cover the measured window only,
    except total_responses, which counts every response (for CPU-per-request figures)."""

    latency: LatencyHistogram = field(default_factory=LatencyHistogram)  # from due (open)/send
    service: LatencyHistogram = field(default_factory=LatencyHistogram)  # from the actual send
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)  # on-time sends only
    sent: int = 0
    completed: int = 0
    ok: int = 0
    late: int = 0
    timeouts: int = 0
    connection_errors: int = 0  # requests lost to a reset, refused connection or bad framing
    connect_failures: int = 0  # connection attempts that failed, at any time of the run
    unsent: int = 0  # open loop: due in the window but still queued when the run stopped
    status_errors: dict[int, int] = field(default_factory=dict)  # non-2xx by status code
    total_responses: int = 0
    # Recorded requests that completed before the window closed: the throughput figure.
    # Requests completing after the end (a server falling behind) do not inflate it.
    completed_in_window: int = 0


class ConnectionPacer:
    """One connection's request lifecycle: idle -> in flight -> idle, in either loop mode."""

    __slots__ = (
        "_closed_loop",
        "_end_ns",
        "_measure_from_ns",
        "_schedule",
        "_stats",
        "busy",
        "idle_since_ns",
        "next_n",
        "origin_ns",
        "recording",
        "sent_ns",
    )

    def __init__(
        self,
        stats: RunStats,
        window: Window,
        index: int,
        schedule: OpenLoopSchedule | None,
    ) -> None:
        self._stats = stats
        self._schedule = schedule
        self._closed_loop = schedule is None
        self._measure_from_ns = window.measure_from_ns
        self._end_ns = window.end_ns
        self.next_n = index  # open loop: the global number of the next request to send
        self.busy = False
        self.recording = False
        self.origin_ns = 0
        self.sent_ns = 0
        self.idle_since_ns = window.start_ns

    def next_due_ns(self) -> int:
        """Open loop: when the next request is due. Closed loop: the start of the run."""
        if self._schedule is None:
            return self._measure_from_ns
        return self._schedule.due_ns(self.next_n)

    def try_send(self, now: int) -> bool:
        """If a request should go out at `now`, mark it in flight and return True."""
        if self.busy:
            return False
        if self._closed_loop:
            if now >= self._end_ns:
                return False
            origin = now
            self.recording = now >= self._measure_from_ns
        else:
            schedule = self._schedule
            assert schedule is not None
            origin = schedule.due_ns(self.next_n)
            if origin > now or origin >= self._end_ns:
                return False
            self.next_n += schedule.connections
            recording = self.recording = origin >= self._measure_from_ns
            if recording:
                if self.idle_since_ns > origin:
                    self._stats.late += 1
                else:
                    self._stats.send_lag.record(now - origin)
        self.busy = True
        self.origin_ns = origin
        self.sent_ns = now
        if self.recording:
            self._stats.sent += 1
        return True

    def complete(self, now: int, status: int) -> None:
        """The in-flight request got a whole response with `status`."""
        self.busy = False
        self.idle_since_ns = now
        stats = self._stats
        stats.total_responses += 1
        if not self.recording:
            return
        stats.completed += 1
        if now < self._end_ns:
            stats.completed_in_window += 1
        stats.latency.record(now - self.origin_ns)
        stats.service.record(now - self.sent_ns)
        if 200 <= status < 300:
            stats.ok += 1
        else:
            stats.status_errors[status] = stats.status_errors.get(status, 0) + 1

    def fail(self, now: int, *, timed_out: bool) -> None:
        """The in-flight request is lost (timeout, reset, bad framing); it is not retried."""
        if not self.busy:
            return
        self.busy = False
        self.idle_since_ns = now
        if self.recording:
            if timed_out:
                self._stats.timeouts += 1
            else:
                self._stats.connection_errors += 1

    def disconnected(self, now: int) -> None:
        """The connection is down: requests due until it is back count as late."""
        self.fail(now, timed_out=False)
        self.idle_since_ns = _FAR_FUTURE

    def connected(self, now: int) -> None:
        self.idle_since_ns = now

    def count_unsent(self) -> int:
        """Open loop, at the end: requests due in the window that never went out."""
        schedule = self._schedule
        if schedule is None:
            return 0
        first = self.next_n
        skipped = schedule.count_due_before(self._measure_from_ns, first)
        return schedule.count_due_before(self._end_ns, first) - skipped
