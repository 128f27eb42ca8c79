"""L2: cache entries in Redis, shared by workers and replicas. The thin I/O shell.

How this works: keys are ``{redis.key_prefix}cache:{tenant}:{hash}`` (the tenant
percent-encoded, so purging one tenant is a SCAN on its own pattern), values the entry's
encoding (proxy/cache/entry.py) set with a PX expiry. Every call is bounded by the `redis:`
section's ``timeout_ms`` as a whole; an error or a timeout is a miss (or a dropped write),
never a failure, and feeds the same kind of breaker the shared limits use
(proxy/limits/redis_breaker.py): while it is open nothing goes to Redis, so a dead or stalled
Redis costs a request nothing. Writes are fire-and-forget, at most `MAX_PENDING_WRITES` at
once. The client (redis-py asyncio, hiredis parser, bounded pool, no client-side retries) is
made at the first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from proxy.limits.redis_breaker import RedisBreaker
from proxy.limits.redis_store import RedisSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("junction.cache")

MAX_PENDING_WRITES: Final = 256
PURGE_SCAN_COUNT: Final = 500  # keys per SCAN step
PURGE_TIMEOUT_S: Final = 30.0  # an admin purge as a whole


def tenant_part(tenant: str) -> str:
    return quote(tenant, safe="") or "-"


class RedisL2:
    def __init__(self, settings: RedisSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self.breaker = RedisBreaker(
            settings.breaker_failures, settings.breaker_open_s, settings.timeout_s + 1.0
        )
        self._client: Redis | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._down = False
        self.closed = False
        self.errors_total = 0
        self.writes_dropped_total = 0

    def key(self, tenant: str, key: str) -> str:
        return f"{self.settings.key_prefix}cache:{tenant_part(tenant)}:{key}"

    def available(self) -> bool:
        return not self.closed and self.breaker.allow(self._clock())

    def state(self) -> str:
        return "closed" if self.closed else self.breaker.state(self._clock())

    def _redis(self) -> Redis:
        if self._client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            s = self.settings
            pool = BlockingConnectionPool.from_url(
                s.url,
                max_connections=s.max_connections,
                timeout=s.timeout_s,
                socket_timeout=s.timeout_s,
                socket_connect_timeout=s.timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._client = Redis(connection_pool=pool)
        return self._client

    async def get(self, tenant: str, key: str) -> bytes | None:
        """The stored value, or None: absent, or Redis failed (counted, breaker fed)."""
        if self.closed:
            return None
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                value = await self._redis().get(self.key(tenant, key))
        except asyncio.CancelledError:
            self.breaker.on_abandon()
            raise
        except Exception as error:  # any failure of the store is a miss
            self._failed(error)
            return None
        self._succeeded()
        return value if isinstance(value, bytes) else None

    def put(self, tenant: str, key: str, value: bytes, ttl_s: float) -> None:
        """Store in the background, or drop (counted) when that cannot be now."""
        if self.closed or not self.breaker.closed or len(self._writes) >= MAX_PENDING_WRITES:
            self.writes_dropped_total += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._set(self.key(tenant, key), value, max(1, int(ttl_s * 1000)))
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _set(self, name: str, value: bytes, ttl_ms: int) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                await self._redis().set(name, value, px=ttl_ms)
        except Exception as error:
            self._failed(error)
            return
        self._succeeded()

    async def purge(self, tenant: str | None, prefix: str) -> int:
        """Delete the entries of ``tenant`` (None: every tenant) whose hash starts with
        ``prefix``; returns how many. Raises on a Redis failure (the admin call reports it)."""
        glob = _glob_escape
        tenant_glob = glob(tenant_part(tenant)) if tenant is not None else "*"
        pattern = f"{glob(self.settings.key_prefix)}cache:{tenant_glob}:{glob(prefix)}*"
        client = self._redis()
        deleted = 0
        async with asyncio.timeout(PURGE_TIMEOUT_S):
            batch: list[bytes] = []
            async for name in client.scan_iter(match=pattern, count=PURGE_SCAN_COUNT):
                batch.append(name)
                if len(batch) >= PURGE_SCAN_COUNT:
                    deleted += int(await client.delete(*batch))
                    batch.clear()
            if batch:
                deleted += int(await client.delete(*batch))
        return deleted

    def _succeeded(self) -> None:
        self.breaker.on_success()
        if self._down:
            self._down = False
            log.info("response cache: Redis at %s answers again", self.settings.shown_url)

    def _failed(self, error: BaseException) -> None:
        self.errors_total += 1
        self.breaker.on_failure(self._clock())
        if not self._down:
            self._down = True  # one line per outage
            log.warning(
                "response cache: Redis at %s failed (%s); L2 lookups are misses until it "
                "answers again",
                self.settings.shown_url,
                type(error).__name__,
            )

    async def wait_idle(self) -> None:
        while self._writes:
            await asyncio.wait(set(self._writes))

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._writes:
            tasks = set(self._writes)
            _, late = await asyncio.wait(tasks, timeout=self.settings.timeout_s * 2)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
                await client.connection_pool.aclose()


def _glob_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)
