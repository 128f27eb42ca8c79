"""The connection pool of one origin, and its synchronous assignment step.

How this works: ``assign`` runs inside ``request()`` and never awaits. It binds the exchange to
an HTTP/2 connection with a free stream, else to the most recently used idle HTTP/1.1
connection (LIFO keeps few connections warm), else queues it (FIFO). A queued exchange is
"covered" when an in-flight connect will take it: an HTTP/1.1 connect covers one waiter, an
HTTP/2 connect covers a whole connection's worth of streams, so concurrent requests to an h2
origin wait for the connection being set up instead of each dialling its own. Uncovered waiters
start a connect while the origin is below ``max_connections_per_origin``; beyond that they
queue up to ``max_pending_requests``, and the next one is an `UpstreamOverflowError`.

Connections report back: ``release`` (an HTTP/1.1 exchange completed with keep-alive, or an h2
stream freed a slot) hands the connection to the oldest waiter or parks it idle; ``on_closed``
forgets it and dials again for waiters it leaves uncovered; a failed connect fails the waiters
it covered (all of them when no connection to the origin is alive). Idle connections are stamped
with the injected clock and closed by the client's periodic ``sweep``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamOverflowError,
    UpstreamResetError,
)
from proxy.upstream.api import Origin, UpstreamSettings
from proxy.upstream.connect import Connection, Connector, connect_mode
from proxy.upstream.exchange import PooledExchange
from proxy.upstream.http1 import Http1Connection
from proxy.upstream.http2 import Http2Connection
from proxy.upstream.read_batch import ReadBatcher

if TYPE_CHECKING:
    from proxy.protocol.write_batch import WriteBatch


class PoolCounters:
    """Monotonic counters shared by all pools of one client."""

    __slots__ = (
        "connect_failures_total",
        "connects_total",
        "overflows_total",
        "reuses_total",
        "stale_retries_total",
    )

    def __init__(self) -> None:
        self.connects_total = 0
        self.connect_failures_total = 0
        self.reuses_total = 0
        self.overflows_total = 0
        self.stale_retries_total = 0


class OriginPool:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        origin: Origin,
        settings: UpstreamSettings,
        clock: Callable[[], float],
        connector: Connector,
        counters: PoolCounters,
        on_idle: Callable[[], None],
        writes: WriteBatch,
        reads: ReadBatcher,
    ) -> None:
        self.loop = loop
        self.writes = writes  # HTTP/1.1 requests leave at the end of the loop iteration
        self.reads = reads  # streamed answers' reads, batched while the worker is overloaded
        self.origin = origin
        self.settings = settings
        self.clock = clock
        self._connector = connector
        self._counters = counters
        self._on_idle = on_idle
        self._max_connections = origin.max_connections or settings.max_connections_per_origin
        self._max_pending = (
            origin.max_pending if origin.max_pending is not None else settings.max_pending_requests
        )
        # Idle keep-alive connections, least recently used first: a dict as an ordered set, so
        # taking the newest, expiring the oldest and dropping one that closed are all O(1)
        # (a list made a mass expiry or close of thousands quadratic: tens of ms of stall).
        self._idle: dict[Http1Connection, None] = {}
        self._h2: list[Http2Connection] = []  # connections that accept new streams
        self._open: set[Connection] = set()
        self._waiters: deque[PooledExchange] = deque()
        self._connecting_h1 = 0
        self._connecting_h2 = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweep_due = False  # on_idle was called since the last sweep found this pool idle
        mode = connect_mode(origin)
        # None until ALPN answered for "auto" over TLS; fixed otherwise.
        self._h2_known: bool | None = None if mode == "alpn" else mode != "h1"
        self._closed = False

    # -- assignment -----------------------------------------------------------------------
    def assign(self, ex: PooledExchange) -> None:
        if self._h2:
            for conn in self._h2:
                if conn.has_capacity():
                    if conn.exchanges:
                        self._counters.reuses_total += 1
                    if conn.bind(ex):
                        return
        idle = self._idle
        while idle:
            h1, _ = idle.popitem()  # the most recently used: its socket is the warmest
            if h1.bind(ex):
                self._counters.reuses_total += 1
                return
            self._counters.stale_retries_total += 1
        self._enqueue(ex)

    def retry_unsent(self, ex: PooledExchange) -> None:
        """A connection died with ``ex`` bound but none of its bytes written: try another."""
        self._counters.stale_retries_total += 1
        if self._closed:
            ex.fail(UpstreamResetError("upstream client closed", request_bytes_sent=False))
            return
        try:
            self.assign(ex)
        except UpstreamError as exc:  # the queue of waiting requests is full
            ex.fail(exc)

    def _enqueue(self, ex: PooledExchange) -> None:
        waiters = self._waiters
        covered = self._covered()
        if len(waiters) >= covered:
            if len(self._open) + self._connecting_h1 + self._connecting_h2 < self._max_connections:
                self._start_connect()
            elif len(waiters) - covered >= self._max_pending:
                self._counters.overflows_total += 1
                raise UpstreamOverflowError(
                    f"too many requests waiting for a connection to {self.origin.host}"
                )
        waiters.append(ex)

    def _covered(self) -> int:
        return (
            self._connecting_h1 + self._connecting_h2 * self.settings.h2_max_streams_per_connection
        )

    def remove_waiter(self, ex: PooledExchange) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(ex)

    # -- connections report back ------------------------------------------------------------
    def release(self, conn: Connection) -> None:
        """``conn`` can take work: give it waiters, or park it idle."""
        if not isinstance(conn, Http2Connection):
            self.release_http1(conn)
            return
        if self._closed:
            conn.close()
            return
        waiters = self._waiters
        while waiters and conn.has_capacity():
            ex = waiters.popleft()
            if not conn.bind(ex):
                waiters.appendleft(ex)
                break
        if conn.idle:
            self._on_idle()

    def release_http1(self, conn: Http1Connection) -> None:
        """`release` for an HTTP/1.1 connection: the per-exchange path, kept short."""
        if self._closed:
            conn.close()
            return
        conn.last_used = self.clock()  # its last answer: see Http1Connection.bind
        waiters = self._waiters
        if waiters:
            ex = waiters.popleft()
            if conn.bind(ex):
                return
            # The connection died under us: the exchange keeps its place in line.
            waiters.appendleft(ex)
            self._counters.stale_retries_total += 1
            self._dial_for_waiters()
            return
        self._idle[conn] = None
        if not self._sweep_due:
            self._sweep_due = True
            self._on_idle()

    def on_draining(self, conn: Http2Connection) -> None:
        if conn in self._h2:
            self._h2.remove(conn)
        self._dial_for_waiters()

    def on_closed(self, conn: Connection) -> None:
        self._open.discard(conn)
        if isinstance(conn, Http2Connection):
            if conn in self._h2:
                self._h2.remove(conn)
        else:
            self._idle.pop(conn, None)
        if not self._closed:
            self._dial_for_waiters()

    def _dial_for_waiters(self) -> None:
        while (
            len(self._waiters) > self._covered()
            and len(self._open) + self._connecting_h1 + self._connecting_h2 < self._max_connections
        ):
            self._start_connect()

    # -- connecting -----------------------------------------------------------------------
    def _start_connect(self) -> None:
        expect_h2 = self._h2_known is not False
        if expect_h2:
            self._connecting_h2 += 1
        else:
            self._connecting_h1 += 1
        task = self.loop.create_task(self._connect(expect_h2))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, expect_h2: bool) -> None:
        try:
            conn = await self._connector.connect(self)
        except UpstreamError as exc:
            self._connect_settled(expect_h2)
            self._connect_failed(expect_h2, exc)
            return
        except BaseException:
            self._connect_settled(expect_h2)
            raise
        self._connect_settled(expect_h2)
        self._connected(conn)

    def _connect_settled(self, expect_h2: bool) -> None:
        if expect_h2:
            self._connecting_h2 -= 1
        else:
            self._connecting_h1 -= 1

    def _connected(self, conn: Connection) -> None:
        if self._closed:
            conn.close()
            return
        self._counters.connects_total += 1
        self._open.add(conn)
        conn.last_used = self.clock()
        if isinstance(conn, Http2Connection):
            self._h2_known = True
            self._h2.append(conn)
        elif self._h2_known is None:
            self._h2_known = False
        self.release(conn)
        self._dial_for_waiters()

    def _connect_failed(self, expect_h2: bool, error: UpstreamError) -> None:
        self._counters.connect_failures_total += 1
        if self._closed:
            return
        uncovered = len(self._waiters) - self._covered()
        if uncovered <= 0:
            return
        if self._open:
            # Live connections will serve the rest in time; fail only those this connect covered.
            uncovered = min(
                uncovered, self.settings.h2_max_streams_per_connection if expect_h2 else 1
            )
        failed = [self._waiters.popleft() for _ in range(uncovered)]
        for ex in failed:
            ex.fail(_copy_error(error))

    # -- idle expiry and shutdown ---------------------------------------------------------
    def sweep(self, now: float) -> bool:
        """Close connections idle for idle_timeout_s. True while idle connections remain."""
        deadline = now - self.settings.idle_timeout_s
        idle = self._idle
        expired: list[Http1Connection] = []
        for h1 in idle:  # oldest first
            if h1.last_used > deadline:
                break
            expired.append(h1)
        for h1 in expired:
            del idle[h1]
            h1.close()
        for conn in list(self._h2):
            if conn.idle and conn.last_used <= deadline:
                conn.close()
        # The client re-arms its sweep while any pool answers True here, so a pool that keeps
        # idle connections needs not ask again until a sweep finds it has none.
        self._sweep_due = bool(idle) or any(conn.idle for conn in self._h2)
        return self._sweep_due

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        waiters = list(self._waiters)
        self._waiters.clear()
        for ex in waiters:
            ex.fail(UpstreamConnectError("upstream client closed"))
        for conn in list(self._open):
            conn.shutdown(UpstreamResetError("upstream client closed", request_bytes_sent=True))
        self._idle.clear()
        self._h2.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- stats ------------------------------------------------------------------------------
    def gauges(self) -> tuple[int, int, int, int, int]:
        """(open, idle, active exchanges, pending, connecting)."""
        idle = len(self._idle) + sum(1 for c in self._h2 if c.idle)
        active = 0
        for conn in self._open:
            if isinstance(conn, Http2Connection):
                active += conn.active
            elif not conn.idle:
                active += 1
        connecting = self._connecting_h1 + self._connecting_h2
        return len(self._open), idle, active, len(self._waiters), connecting


def _copy_error(error: UpstreamError) -> UpstreamError:
    """One exception object per exchange: tracebacks and contexts must not be shared."""
    return type(error)(error.message, request_bytes_sent=error.request_bytes_sent)
