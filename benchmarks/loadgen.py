"""Open-loop HTTP/1.1 load generator without coordinated omission (wrk2's idea) for loopback.

    python benchmarks/loadgen.py --url http://127.0.0.1:8080/v1/messages --rate 10000 \
        --duration 10 --connections 32 --body-file req.json --header 'x-api-key: k'

The I/O shell around benchmarks/pacing.py: one asyncio.Protocol per keep-alive connection,
httptools for response framing, uvloop, and a Linux timerfd for the open-loop ticks (uvloop's
own timers have millisecond granularity and fire up to a millisecond early, which would swamp
the sub-millisecond latencies measured here). Per request the hot path does one write, one
parser feed and a few integer operations; request bytes are built once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httptools
import orjson
import uvloop

from benchmarks.pacing import NS_PER_S, ConnectionPacer, OpenLoopSchedule, RunStats, Window
from benchmarks.report import RunSetup, render_table, summarize
from benchmarks.target import (
    Target,
    TargetError,
    build_request,
    loopback_target,
    parse_header,
)

_monotonic_ns = time.monotonic_ns  # CLOCK_MONOTONIC, the clock the timerfd is armed in
_WATCHDOG_PERIOD_S = 0.05
_RECONNECT_DELAY_S = 0.05
_DRAIN_POLL_S = 0.005


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class PeriodicTimerFd:
    """A CLOCK_MONOTONIC timerfd firing every interval_ns from an absolute first_ns."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        create = libc.timerfd_create
        create.argtypes = [ctypes.c_int, ctypes.c_int]
        self.fd = create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")

    def arm(self, first_ns: int, interval_ns: int) -> None:
        spec = _Itimerspec(
            _Timespec(*divmod(interval_ns, NS_PER_S)), _Timespec(*divmod(first_ns, NS_PER_S))
        )
        if self._settime(self.fd, 1, ctypes.byref(spec), None) != 0:  # 1 = TFD_TIMER_ABSTIME
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):  # another wake already consumed the count
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


def _not_connected(data: bytes) -> None:
    raise RuntimeError("write before connection_made")


class _ClientConnection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    __slots__ = ("_gen", "_parser", "_request", "_write", "pacer", "slot", "transport")

    def __init__(self, gen: LoadGenerator, slot: int, pacer: ConnectionPacer) -> None:
        self._gen = gen
        self.slot = slot
        self.pacer = pacer
        self._request = gen.request
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._write: Callable[[bytes], None] = _not_connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._write = self.transport.write  # bound once: the hot path skips two lookups
        self._gen.on_connected(self)

    def kick(self, now: int) -> None:
        if self.pacer.try_send(now):
            self._write(self._request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def on_message_complete(self) -> None:
        now = _monotonic_ns()
        pacer = self.pacer
        if not pacer.busy:  # a response nobody asked for: the stream is out of sync
            self.abort()
            return
        pacer.complete(now, self._parser.get_status_code())
        if not self._parser.should_keep_alive():
            self.abort()  # nothing is in flight now; connection_lost reconnects
        elif pacer.try_send(now):
            self._write(self._request)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gen.on_lost(self)


class LoadGenerator:
    def __init__(
        self,
        target: Target,
        request: bytes,
        *,
        connections: int,
        rate: float | None,
        warmup_s: float,
        duration_s: float,
        timeout_s: float,
    ) -> None:
        self.target = target
        self.request = request
        self.stats = RunStats()
        self._connections = connections
        self._rate = rate
        self._warmup_s = warmup_s
        self._duration_s = duration_s
        self._timeout_ns = round(timeout_s * NS_PER_S)
        self._conns: list[_ClientConnection | None] = [None] * connections
        self._pacers: list[ConnectionPacer] = []
        self._schedule: OpenLoopSchedule | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._next_n = 0
        self._timer: PeriodicTimerFd | None = None

    # -- connection events -------------------------------------------------------------------
    @property
    def effective_rate(self) -> float | None:
        """Open loop: the rate after rounding the interval to whole nanoseconds."""
        return NS_PER_S / self._schedule.interval_ns if self._schedule else None

    def on_connected(self, conn: _ClientConnection) -> None:
        now = _monotonic_ns()
        self._conns[conn.slot] = conn
        conn.pacer.connected(now)
        conn.kick(now)  # open loop: send what queued up while down; closed loop: start

    def on_lost(self, conn: _ClientConnection) -> None:
        if self._conns[conn.slot] is not conn:
            return
        self._conns[conn.slot] = None
        conn.pacer.disconnected(_monotonic_ns())
        if not self._stopping:
            task = asyncio.get_running_loop().create_task(self._reconnect(conn.slot))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, slot: int, pacer: ConnectionPacer) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(
            loop.create_connection(
                lambda: _ClientConnection(self, slot, pacer), self.target.host, self.target.port
            ),
            timeout=self._timeout_ns / NS_PER_S,
        )

    async def _reconnect(self, slot: int) -> None:
        while not self._stopping:
            try:
                await self._connect(slot, self._pacers[slot])
                return
            except (OSError, TimeoutError):
                self.stats.connect_failures += 1
                await asyncio.sleep(_RECONNECT_DELAY_S)

    # -- open-loop ticks and the timeout watchdog --------------------------------------------
    def _on_tick(self) -> None:
        timer = self._timer
        schedule = self._schedule
        assert timer is not None and schedule is not None
        timer.drain()
        now = _monotonic_ns()
        n = self._next_n
        due = schedule.due_ns(n)
        end = schedule.window.end_ns
        interval = schedule.interval_ns
        conns = self._conns
        count = self._connections
        while due <= now:
            if due >= end:
                asyncio.get_running_loop().remove_reader(timer.fd)
                break
            conn = conns[n % count]
            if conn is not None:
                conn.kick(now)
            n += 1
            due += interval
        self._next_n = n

    def _watchdog(self) -> None:
        now = _monotonic_ns()
        for conn in self._conns:
            if conn is not None and conn.pacer.busy and now - conn.pacer.sent_ns > self._timeout_ns:
                conn.pacer.fail(now, timed_out=True)
                conn.abort()
        if not self._stopping:
            asyncio.get_running_loop().call_later(_WATCHDOG_PERIOD_S, self._watchdog)

    def _drained(self) -> bool:
        return not any(p.busy or p.count_unsent() for p in self._pacers)

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> tuple[float, float]:
        """Connect, load, drain; returns (generator CPU seconds, elapsed seconds)."""
        loop = asyncio.get_running_loop()
        # Pacers need the window, which starts once every connection is up; connect with
        # placeholder pacers whose window is already over (they send nothing), then swap.
        over = Window(0, 0, 0)
        placeholders = [
            ConnectionPacer(self.stats, over, i, None) for i in range(self._connections)
        ]
        self._pacers = placeholders
        await asyncio.gather(*(self._connect(i, p) for i, p in enumerate(placeholders)))
        cpu0 = time.process_time()
        start = _monotonic_ns() + 2_000_000  # 2 ms of slack to arm everything
        window = Window.after(start, self._warmup_s, self._duration_s)
        if self._rate is not None:
            self._schedule = OpenLoopSchedule.for_rate(window, self._rate, self._connections)
        self._pacers = [
            ConnectionPacer(self.stats, window, i, self._schedule) for i in range(self._connections)
        ]
        for conn in self._conns:
            if conn is not None:
                conn.pacer = self._pacers[conn.slot]
        loop.call_later(_WATCHDOG_PERIOD_S, self._watchdog)
        if self._schedule is not None:
            self._timer = PeriodicTimerFd()
            self._timer.arm(start, self._schedule.interval_ns)
            loop.add_reader(self._timer.fd, self._on_tick)
        else:
            await asyncio.sleep((start - _monotonic_ns()) / NS_PER_S)
            now = _monotonic_ns()
            for conn in self._conns:
                if conn is not None:
                    conn.kick(now)
        await asyncio.sleep(max(0.0, (window.end_ns - _monotonic_ns()) / NS_PER_S))
        deadline = window.end_ns + self._timeout_ns
        while not self._drained() and _monotonic_ns() < deadline:
            await asyncio.sleep(_DRAIN_POLL_S)
        self._stopping = True
        now = _monotonic_ns()
        for pacer in self._pacers:
            pacer.fail(now, timed_out=True)  # still in flight at the deadline: no-op if idle
            self.stats.unsent += pacer.count_unsent()
        if self._timer is not None:
            loop.remove_reader(self._timer.fd)
            self._timer.close()
        for conn in self._conns:
            if conn is not None:
                conn.abort()
        for task in list(self._tasks):
            task.cancel()
        cpu = time.process_time() - cpu0
        return cpu, (now - start) / NS_PER_S


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    p.add_argument("--rate", type=float, help="open loop: requests per second (all connections)")
    p.add_argument("--closed-loop", action="store_true", help="send as fast as responses come")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--method", default="POST")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body", help="request body (JSON text)")
    body.add_argument("--body-file", type=Path)
    p.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    p.add_argument("--timeout", type=float, default=5.0, help="per request and connect, seconds")
    p.add_argument("--json-out", type=Path, help="also write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="no table on stdout")
    args = p.parse_args(argv)
    if args.closed_loop == (args.rate is not None):
        p.error("give exactly one of --rate (open loop) or --closed-loop")
    if args.connections < 1 or args.duration <= 0 or args.warmup < 0 or args.timeout <= 0:
        p.error("connections, duration and timeout must be positive, warmup not negative")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        target = loopback_target(args.url)
        headers = [parse_header(h) for h in args.header]
        if args.body_file is not None:
            body = args.body_file.read_bytes()
        else:
            body = (args.body or "").encode()
        request = build_request(args.method, target, headers, body)
    except (TargetError, OSError) as e:
        print(f"loadgen: {e}", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 64), hard))
    gen = LoadGenerator(
        target,
        request,
        connections=args.connections,
        rate=args.rate,
        warmup_s=args.warmup,
        duration_s=args.duration,
        timeout_s=args.timeout,
    )
    gc.disable()  # a collection mid-run shows up as a latency spike of the generator's own
    try:
        cpu_s, elapsed_s = uvloop.run(gen.run())
    except (OSError, TimeoutError) as e:
        print(f"loadgen: cannot connect to {args.url}: {e or type(e).__name__}", file=sys.stderr)
        return 1
    finally:
        gc.enable()
    setup = RunSetup(
        url=args.url,
        closed_loop=args.closed_loop,
        connections=args.connections,
        warmup_s=args.warmup,
        duration_s=args.duration,
        target_rate=args.rate,
        effective_rate=gen.effective_rate,
    )
    summary: dict[str, Any] = summarize(setup, gen.stats, cpu_s, elapsed_s)
    if args.json_out is not None:
        args.json_out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if not args.quiet:
        print(render_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
