"""Open-loop streaming load: new SSE streams at a fixed rate, first-token latency per stream.

    python benchmarks/stream_load.py --url http://127.0.0.1:PORT/v1/messages --dialect anthropic \
        --rate 100 --warmup 10 --duration 10 --body-file req.json --header 'x-api-key: k'

How this works. Stream n is due at start + n / rate, for warmup + duration seconds; a Linux
timerfd (loadgen.PeriodicTimerFd) ticks at that rate, and on each tick every stream that is due
opens its own connection, sends the one request built at start-up, reads the streamed answer and
closes the connection when the response is complete (no reuse: a stream's connection count is
part of what a gateway pays for, and the due time of a stream never waits for another). Times
count from the due time, never from the actual connect, so a generator or server that falls
behind shows up as latency (no coordinated omission).

Per stream it records: time to the response head, time to the first *text* token (Anthropic:
the first ``text_delta``; OpenAI: the first chunk whose ``delta.content`` is a non-empty
string), and how it ended. Every --watch-every'th stream also reads each event as it comes
and gives the gaps between reads that completed at least one SSE event, from its first token
on; the others read in bursts after their first token (see `_StreamConnection`), so that
1,000 open streams do not cost the generator 50,000 reads a second. Parsing is minimal:
httptools removes the HTTP framing (in C) and `StreamWatch` searches the body bytes for a few
fixed markers; nothing is JSON-decoded.

Only streams due in the measured window [start + warmup, end) count in the TTFT figures, so
the ramp-up (the first stream-length seconds, while concurrency climbs) stays out; gaps count
when they end inside the window, whatever stream they belong to. The run stops by itself: once
arrivals end, streams get until end + --stream-timeout to finish and are then cut (timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httptools
import orjson
import uvloop

from benchmarks.histogram import LatencyHistogram
from benchmarks.loadgen import PeriodicTimerFd
from benchmarks.pacing import NS_PER_S, Window
from benchmarks.report import latency_summary
from benchmarks.target import Target, TargetError, build_request, loopback_target, parse_header

_monotonic_ns = time.monotonic_ns  # CLOCK_MONOTONIC: the timerfd's clock, and other processes'
_SAMPLE_PERIOD_S = 0.1  # concurrency samples and the timeout watchdog
_DRAIN_POLL_S = 0.05
_START_SLACK_NS = 20_000_000  # between arming the timer and the first due stream

# What a text token looks like in each dialect's stream, as compact JSON (orjson, and every
# provider SDK we have captured, write no spaces). OpenAI's marker must be followed by a
# character other than '"': the role chunk carries "content":"" and is no token.
TOKEN_MARKERS = {"anthropic": b'"text_delta"', "openai": b'"content":"'}
END_MARKERS = {"anthropic": b"event: message_stop", "openai": b"data: [DONE]"}
ERROR_MARKERS = {"anthropic": b"event: error", "openai": b'data: {"error"'}
# Outcomes a stream can have; "ok" needs a complete 200 response with the end marker.
OUTCOMES = ("ok", "status", "truncated", "in_band_error", "reset", "connect_error", "timeout")


class StreamWatch:
    """Watches one SSE body (HTTP framing removed): the first text token, the number of events,
    and at the end whether the end marker or an in-band error came.

    Bytes may arrive split anywhere: until the first token, `feed` searches the previous
    chunk's last few bytes plus the new ones, so a marker cut in two is still found. After it,
    `feed` only counts blank lines (LF LF, the line ending Junction and the mock provider
    write) and keeps the last two chunks by reference; `close` looks for the end or error
    marker in them, since either one starts the stream's last event, and both servers write
    an event in one piece. That keeps the per-event cost to one C-level count."""

    __slots__ = (
        "_end",
        "_error",
        "_keep",
        "_last",
        "_prev",
        "_tail",
        "_token",
        "_token_is_openai",
        "ended",
        "error",
        "events",
        "first_token",
    )

    def __init__(self, dialect: str) -> None:
        self._token = TOKEN_MARKERS[dialect]
        self._token_is_openai = dialect == "openai"
        self._end = END_MARKERS[dialect]
        self._error = ERROR_MARKERS[dialect]
        # Enough for the token marker whole: one that ends a chunk is found again, with the
        # character after it, in the next.
        self._keep = len(self._token)
        self._tail = b""  # the bytes before the newest chunk that a marker may start in
        self._prev = b""  # the chunk before the newest
        self._last = b""  # the newest chunk
        self.events = 0
        self.first_token = False
        self.ended = False  # set by close(): the end marker came
        self.error = False  # set by close(): an in-band error event came

    def feed(self, data: bytes) -> None:
        if not data:
            return
        last = self._last
        self.events += data.count(b"\n\n") + (last[-1:] == b"\n" and data[:1] == b"\n")
        if self.first_token:
            self._prev = last
            self._last = data
            return
        hay = self._tail + data
        self.first_token = self._has_token(hay)
        self._tail = hay[-self._keep :]
        self._prev = last
        self._last = data

    def close(self) -> None:
        """The body is complete: look for the end and error markers in its last bytes."""
        hay = self._prev + self._last
        self.ended = self._end in hay
        self.error = self._error in hay

    def _has_token(self, hay: bytes) -> bool:
        marker = self._token
        at = hay.find(marker)
        if not self._token_is_openai:
            return at >= 0
        while at >= 0:
            after = at + len(marker)
            if after >= len(hay):
                return False  # the next byte decides; the tail keeps this marker for then
            if hay[after] != 0x22:  # '"' would be the empty string of the role chunk
                return True
            at = hay.find(marker, after)
        return False


@dataclass(slots=True)
class StreamRecord:
    n: int
    due_ns: int
    start_ns: int = 0  # when the generator began connecting
    head_ns: int = 0
    first_token_ns: int = 0
    end_ns: int = 0
    status: int = 0
    events: int = 0
    outcome: str = ""
    watched: bool = True  # read every event as it came (its end time is exact)


@dataclass(slots=True)
class StreamStats:
    """Everything a run adds to; the histograms hold nanoseconds."""

    window: Window
    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)  # due streams in window
    ttft_all: LatencyHistogram = field(default_factory=LatencyHistogram)  # every stream
    head: LatencyHistogram = field(default_factory=LatencyHistogram)  # due -> response head
    start_lag: LatencyHistogram = field(default_factory=LatencyHistogram)  # due -> connect
    # between event reads of watched streams, ending in the window
    gaps: LatencyHistogram = field(default_factory=LatencyHistogram)
    duration: LatencyHistogram = field(default_factory=LatencyHistogram)  # due -> end, watched
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    statuses: dict[int, int] = field(default_factory=dict)
    scheduled: int = 0
    measured: int = 0  # streams due inside the window
    no_token: int = 0  # ok streams without a text token (a wrong marker or an empty answer)
    events: int = 0
    events_in_window: int = 0
    concurrency: list[int] = field(default_factory=list)  # open streams, sampled in the window
    ttft_by_second: dict[int, LatencyHistogram] = field(default_factory=dict)

    def in_window(self, t_ns: int) -> bool:
        return self.window.measure_from_ns <= t_ns < self.window.end_ns

    def finish(self, rec: StreamRecord) -> None:
        """Adds one finished stream's figures."""
        self.outcomes[rec.outcome] += 1
        if rec.status and rec.status != 200:
            self.statuses[rec.status] = self.statuses.get(rec.status, 0) + 1
        self.events += rec.events
        measured = self.in_window(rec.due_ns)
        self.measured += measured
        if rec.start_ns:
            self.start_lag.record(rec.start_ns - rec.due_ns)
        if rec.head_ns:
            self.head.record(rec.head_ns - rec.due_ns)
        if rec.first_token_ns:
            ttft = rec.first_token_ns - rec.due_ns
            self.ttft_all.record(ttft)
            if measured:
                self.ttft.record(ttft)
            second = (rec.due_ns - self.window.start_ns) // NS_PER_S
            self.ttft_by_second.setdefault(second, LatencyHistogram()).record(ttft)
        elif rec.outcome == "ok":
            self.no_token += 1
        if rec.outcome == "ok" and rec.watched:
            self.duration.record(rec.end_ns - rec.due_ns)


def summarize_streams(
    stats: StreamStats, setup: dict[str, Any], cpu_s: float, cpu_window_s: float
) -> dict[str, Any]:
    """The run's JSON summary (pure: counters in, dict out)."""
    duration_s = (stats.window.end_ns - stats.window.measure_from_ns) / NS_PER_S
    conc = stats.concurrency
    failed = sum(v for k, v in stats.outcomes.items() if k != "ok")
    return {
        **setup,
        "window_ns": [stats.window.start_ns, stats.window.measure_from_ns, stats.window.end_ns],
        "scheduled": stats.scheduled,
        "measured_streams": stats.measured,
        "outcomes": dict(stats.outcomes),
        "failed": failed,
        "by_status": {str(k): v for k, v in sorted(stats.statuses.items())},
        "ok_without_token": stats.no_token,
        "ttft_ms": latency_summary(stats.ttft),
        "ttft_all_ms": latency_summary(stats.ttft_all),
        "head_ms": latency_summary(stats.head),
        "start_lag_ms": latency_summary(stats.start_lag),
        "gap_ms": latency_summary(stats.gaps),
        "stream_duration_ms": latency_summary(stats.duration),
        "events": stats.events,
        "events_per_s_in_window": round(stats.events_in_window / duration_s, 1),
        "concurrency": {
            "samples": len(conc),
            "min": min(conc, default=0),
            "mean": round(sum(conc) / len(conc), 1) if conc else 0,
            "max": max(conc, default=0),
        },
        # second of the schedule -> [streams, TTFT p50 ms, max ms]: shows a server falling behind
        "ttft_by_second": {
            str(s): [h.count, round(h.percentile(50) / 1e6, 3), round(h.max / 1e6, 3)]
            for s, h in sorted(stats.ttft_by_second.items())
        },
        "generator_cpu_s": round(cpu_s, 3),
        "generator_cpu_percent_in_window": round(100 * cpu_window_s / duration_s, 1),
    }


class _StreamConnection(asyncio.Protocol):
    """One stream: connect, send, read the SSE answer, close.

    A watched stream reads every event as it comes and measures the gaps between them. The
    others, once their first token is in, stop reading for `burst_s` at a time and then take
    what queued up in one read: the server writes exactly as before (the socket buffers hold
    a burst many times over), and the generator does one read per burst instead of one per
    event, which keeps it from saturating the core it shares with the mock."""

    __slots__ = (
        "_last_ns",
        "_load",
        "_parser",
        "_seen",
        "_watch",
        "_watched",
        "rec",
        "transport",
    )

    def __init__(self, load: StreamLoad, rec: StreamRecord) -> None:
        self._load = load
        self.rec = rec
        self._parser = httptools.HttpResponseParser(self)
        self._watch = StreamWatch(load.dialect)
        self._seen = 0  # events counted up to the previous read
        self._last_ns = 0  # the previous event-completing read, from the first token on
        self._watched = rec.n % load.watch_every == 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._load.opened(self)
        self.transport.write(self._load.request)

    def data_received(self, data: bytes) -> None:
        now = _monotonic_ns()
        rec = self.rec
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._end("reset", now)
            return
        if not rec.head_ns and rec.status:
            rec.head_ns = now
        watch = self._watch
        new = watch.events - self._seen
        if new:
            self._seen = watch.events
            stats = self._load.stats
            if stats.in_window(now):
                stats.events_in_window += new
                if self._watched and self._last_ns:
                    stats.gaps.record(now - self._last_ns)
            if self._last_ns:
                self._last_ns = now
        if not self._last_ns:
            if not watch.first_token:
                return
            rec.first_token_ns = self._last_ns = now
        if not self._watched and not rec.outcome:
            self._doze()

    def _doze(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(self._load.burst_s, self._wake)

    def _wake(self) -> None:
        if not self.rec.outcome and self.transport is not None:
            self.transport.resume_reading()

    def on_headers_complete(self) -> None:
        self.rec.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._watch.feed(body)

    def on_message_complete(self) -> None:
        watch = self._watch
        watch.close()
        if self.rec.status != 200:
            outcome = "status"
        elif watch.error:
            outcome = "in_band_error"
        elif watch.ended:
            outcome = "ok"
        else:
            outcome = "truncated"
        self._end(outcome, _monotonic_ns())

    def _end(self, outcome: str, now: int) -> None:
        rec = self.rec
        if rec.outcome:
            return
        rec.outcome = outcome
        rec.end_ns = now
        rec.events = self._watch.events
        rec.watched = self._watched
        if self.transport is not None:
            self.transport.abort()  # no reuse, and no lingering close handshake to wait for
        self._load.finished(self)

    def timeout(self, now: int) -> None:
        self._end("timeout", now)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("reset", _monotonic_ns())


class StreamLoad:
    def __init__(
        self,
        target: Target,
        request: bytes,
        *,
        dialect: str,
        rate: float,
        warmup_s: float,
        duration_s: float,
        stream_timeout_s: float,
        watch_every: int = 1,
        burst_s: float = 0.5,
    ) -> None:
        if rate <= 0 or duration_s <= 0 or warmup_s < 0 or stream_timeout_s <= 0:
            raise ValueError("rate, duration and stream timeout must be positive")
        if watch_every < 1 or burst_s <= 0:
            raise ValueError("watch every must be at least 1 and the burst pause positive")
        self.watch_every = watch_every  # every Nth stream reads each event (gap figures)
        self.burst_s = burst_s
        self.target = target
        self.request = request
        self.dialect = dialect
        self._interval_ns = max(1, round(NS_PER_S / rate))
        self._warmup_s = warmup_s
        self._duration_s = duration_s
        self._timeout_ns = round(stream_timeout_s * NS_PER_S)
        self.stats = StreamStats(Window(0, 0, 0))
        self._open: set[_StreamConnection] = set()
        self._pending = 0  # streams started whose connection is not up yet, or open
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: PeriodicTimerFd | None = None
        self._next_n = 0
        self._stopping = False
        self._cpu_marks: list[float] = []  # process time at the window's start and end

    # -- stream lifecycle ---------------------------------------------------------------------
    def opened(self, conn: _StreamConnection) -> None:
        self._open.add(conn)

    def finished(self, conn: _StreamConnection) -> None:
        self._open.discard(conn)
        self._pending -= 1
        self.stats.finish(conn.rec)

    async def _start(self, rec: StreamRecord) -> None:
        loop = asyncio.get_running_loop()
        rec.start_ns = _monotonic_ns()
        try:
            await loop.create_connection(
                lambda: _StreamConnection(self, rec), self.target.host, self.target.port
            )
        except OSError:
            self._not_connected(rec, "connect_error")
        except asyncio.CancelledError:  # still connecting when the run's deadline came
            self._not_connected(rec, "timeout")

    def _not_connected(self, rec: StreamRecord, outcome: str) -> None:
        rec.outcome = outcome
        rec.end_ns = _monotonic_ns()
        self._pending -= 1
        self.stats.finish(rec)

    def _on_tick(self) -> None:
        timer = self._timer
        assert timer is not None
        timer.drain()
        now = _monotonic_ns()
        window = self.stats.window
        loop = asyncio.get_running_loop()
        n = self._next_n
        due = window.start_ns + n * self._interval_ns
        while due <= now:
            if due >= window.end_ns:
                loop.remove_reader(timer.fd)
                break
            self._pending += 1
            self.stats.scheduled += 1
            task = loop.create_task(self._start(StreamRecord(n, due)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1
            due += self._interval_ns
        self._next_n = n

    def _sample(self) -> None:
        """Concurrency, the generator's own CPU at the window's edges, and stream timeouts."""
        now = _monotonic_ns()
        stats = self.stats
        if stats.in_window(now):
            if not self._cpu_marks:
                self._cpu_marks.append(time.process_time())
            stats.concurrency.append(self._pending)
        elif now >= stats.window.end_ns and len(self._cpu_marks) == 1:
            self._cpu_marks.append(time.process_time())
        for conn in [c for c in self._open if now - c.rec.due_ns > self._timeout_ns]:
            conn.timeout(now)
        if not self._stopping:
            asyncio.get_running_loop().call_later(_SAMPLE_PERIOD_S, self._sample)

    # -- the run ------------------------------------------------------------------------------
    async def run(self) -> tuple[float, float]:
        """Load, drain; returns (generator CPU seconds, of which inside the window)."""
        loop = asyncio.get_running_loop()
        cpu0 = time.process_time()
        start = _monotonic_ns() + _START_SLACK_NS
        window = Window.after(start, self._warmup_s, self._duration_s)
        self.stats.window = window
        self._timer = PeriodicTimerFd()
        self._timer.arm(start, self._interval_ns)
        loop.add_reader(self._timer.fd, self._on_tick)
        loop.call_later(_SAMPLE_PERIOD_S, self._sample)
        await asyncio.sleep(max(0.0, (window.end_ns - _monotonic_ns()) / NS_PER_S))
        deadline = window.end_ns + self._timeout_ns
        while self._pending and _monotonic_ns() < deadline:
            await asyncio.sleep(_DRAIN_POLL_S)
        self._stopping = True
        now = _monotonic_ns()
        for conn in list(self._open):
            conn.timeout(now)
        for task in list(self._tasks):
            task.cancel()  # connects that never completed
        loop.remove_reader(self._timer.fd)
        self._timer.close()
        cpu = time.process_time() - cpu0
        marks = self._cpu_marks
        return cpu, (marks[1] - marks[0]) if len(marks) == 2 else 0.0


def render_summary(s: dict[str, Any]) -> str:
    lines = [
        f"{s['url']}  {s['rate']:g} streams/s, warmup {s['warmup_s']:g} s + "
        f"{s['duration_s']:g} s measured; {s['scheduled']} streams, {s['failed']} failed "
        f"{ {k: v for k, v in s['outcomes'].items() if v} }",
        f"concurrency in window: mean {s['concurrency']['mean']}, max "
        f"{s['concurrency']['max']}; generator CPU {s['generator_cpu_percent_in_window']} %",
        f"{'ms':<14}{'p50':>10}{'p90':>10}{'p99':>10}{'p99.9':>10}{'max':>10}",
    ]
    for name in ("ttft_ms", "head_ms", "start_lag_ms", "gap_ms"):
        h = s[name]
        cells = "".join(f"{h[k]:>10.3f}" for k in ("p50", "p90", "p99", "p99.9", "max"))
        lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    p.add_argument("--dialect", choices=sorted(TOKEN_MARKERS), required=True)
    p.add_argument("--rate", type=float, default=100.0, help="new streams per second")
    p.add_argument("--warmup", type=float, default=10.0, help="unmeasured ramp-up seconds")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds of arrivals")
    p.add_argument("--stream-timeout", type=float, default=60.0, help="seconds from due")
    p.add_argument(
        "--watch-every",
        type=int,
        default=1,
        help="every Nth stream reads each event and gives the gap figures; the others read in"
        " bursts after their first token (1: all streams read each event)",
    )
    p.add_argument("--burst", type=float, default=0.5, help="seconds between burst reads")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="request body (JSON text)")
    body.add_argument("--body-file", type=Path)
    p.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        target = loopback_target(args.url)
        body = args.body_file.read_bytes() if args.body_file else args.body.encode()
        request = build_request("POST", target, [parse_header(h) for h in args.header], body)
        load = StreamLoad(
            target,
            request,
            dialect=args.dialect,
            rate=args.rate,
            warmup_s=args.warmup,
            duration_s=args.duration,
            stream_timeout_s=args.stream_timeout,
            watch_every=args.watch_every,
            burst_s=args.burst,
        )
    except (TargetError, OSError, ValueError) as e:
        print(f"stream_load: {e}", file=sys.stderr)
        return 2
    # Every open stream holds a socket; peak concurrency is about rate x stream length.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gc.disable()  # a collection mid-run would show up as the generator's own latency spike
    try:
        cpu_s, cpu_window_s = uvloop.run(load.run())
    finally:
        gc.enable()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    setup = {
        "url": args.url,
        "dialect": args.dialect,
        "rate": args.rate,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "stream_timeout_s": args.stream_timeout,
        "watch_every": args.watch_every,
        "burst_s": args.burst,
    }
    summary = summarize_streams(load.stats, setup, cpu_s, cpu_window_s)
    if args.json_out is not None:
        args.json_out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if not args.quiet:
        print(render_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
