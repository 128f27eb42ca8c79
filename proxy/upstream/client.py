"""`PooledUpstreamClient`: the `UpstreamClient` of api.py over per-origin keep-alive pools.

How this works: one `OriginPool` per distinct `Origin`, created on first use. ``request`` builds
the exchange and runs the pool's synchronous assignment step; nothing awaits on that path and
no handler callback runs inside it. One timer sweeps idle connections, armed only while some
pool has any, so a busy hot path sets no per-request timer. ``close`` fails what is queued,
closes every connection and waits for the connect tasks it cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.errors import UpstreamConnectError
from proxy.headers import Headers
from proxy.protocol.write_batch import WriteBatch
from proxy.upstream.api import (
    Exchange,
    Origin,
    ResponseHandler,
    UpstreamClient,
    UpstreamSettings,
)
from proxy.upstream.connect import Connector
from proxy.upstream.exchange import PooledExchange
from proxy.upstream.pool import OriginPool, PoolCounters
from proxy.upstream.read_batch import ReadBatcher

# Bound on the identity cache of request(): Origin objects beyond it take the hashing path.
_POOL_BY_ID_ENTRIES = 64


class PooledUpstreamClient:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settings: UpstreamSettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        sweep_interval_s: float = 1.0,
        writes: WriteBatch | None = None,
    ) -> None:
        """``writes``: the worker's write batch, so that requests and responses of one loop
        iteration leave together; a client of its own otherwise."""
        self._loop = loop
        self._writes = writes if writes is not None else WriteBatch(loop)
        self._settings = settings
        self._clock = clock
        self._sweep_interval_s = sweep_interval_s
        self._connector = Connector(loop, settings, clock)
        self._counters = PoolCounters()
        # Off until the worker's overload monitor turns it on (proxy/server/overload.py).
        self.reads = ReadBatcher(loop, clock, settings.read_batch_window_s)
        self._pools: dict[Origin, OriginPool] = {}
        self._pool_by_id: dict[int, tuple[Origin, OriginPool]] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._closed = False

    def request(
        self,
        origin: Origin,
        method: bytes,
        path: bytes,
        headers: Headers,
        handler: ResponseHandler,
        end_stream: bool,
        body: bytes = b"",
        urgent: bool = False,
    ) -> Exchange:
        # Origin's dataclass hash runs in Python: callers pass the same few Origin objects,
        # so look them up by identity first.
        hit = self._pool_by_id.get(id(origin))
        pool = hit[1] if hit is not None and hit[0] is origin else self._pool_for(origin)
        ex = PooledExchange(
            self._loop, pool, origin, method, path, headers, handler, end_stream, body, urgent
        )
        if pool is None:
            ex.fail_soon(UpstreamConnectError("upstream client closed"))
        else:
            pool.assign(ex)
        return ex

    def _pool_for(self, origin: Origin) -> OriginPool | None:
        if self._closed:
            return None
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = OriginPool(
                self._loop,
                origin,
                self._settings,
                self._clock,
                self._connector,
                self._counters,
                self._arm_sweep,
                self._writes,
                self.reads,
            )
        if len(self._pool_by_id) < _POOL_BY_ID_ENTRIES:
            # The entry keeps ``origin`` alive, so its id cannot be reused by another object.
            self._pool_by_id[id(origin)] = (origin, pool)
        return pool

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self._pool_by_id.clear()
        self.reads.close()
        pools = list(self._pools.values())
        for pool in pools:
            await pool.close()
        self._pools.clear()

    def stats(self) -> dict[str, int]:
        open_ = idle = active = pending = connecting = 0
        for pool in self._pools.values():
            o, i, a, p, c = pool.gauges()
            open_ += o
            idle += i
            active += a
            pending += p
            connecting += c
        counters = self._counters
        return {
            "connections_open": open_,
            "connections_idle": idle,
            "connections_connecting": connecting,
            "exchanges_active": active,
            "exchanges_pending": pending,
            "connects_total": counters.connects_total,
            "connect_failures_total": counters.connect_failures_total,
            "reuses_total": counters.reuses_total,
            "overflows_total": counters.overflows_total,
            "stale_retries_total": counters.stale_retries_total,
            "dns_cache_entries": len(self._connector.dns),
            "read_batching": int(self.reads.active),
            "reads_held": self.reads.held,
            "read_holds_total": self.reads.holds_total,
        }

    # -- idle sweep -------------------------------------------------------------------------
    def _arm_sweep(self) -> None:
        if self._sweep_handle is None and not self._closed:
            self._sweep_handle = self._loop.call_later(self._sweep_interval_s, self._sweep)

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = self._clock()
        remaining = False
        for pool in self._pools.values():
            if pool.sweep(now):
                remaining = True
        if remaining:
            self._arm_sweep()


if TYPE_CHECKING:  # mypy proves the classes satisfy the interfaces of api.py
    _client: type[UpstreamClient] = PooledUpstreamClient
    _exchange: type[Exchange] = PooledExchange
