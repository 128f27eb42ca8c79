"""The Redis side of the shared limits: one connection pool, the limit scripts, a breaker on
Redis itself, the outage log line, and a bounded set of fire-and-forget calls.

How this works: `call` runs one of the scripts of proxy/limits/redis_scripts.py (EVALSHA,
loaded on first use) bounded by ``timeout_s`` as a whole — waiting for a pooled connection,
connecting, the round trip — so nobody waits longer than that on Redis. Any failure (error,
timeout, refused connection) is counted, fed to the breaker (proxy/limits/redis_breaker.py)
and raised as `RedisDownError` for the caller to decide without Redis. The first failure of an
outage logs one warning; the first answer after it logs one line at info level with how long
it lasted and how many decisions were made without Redis meanwhile (`count_fallback`).

`spawn` runs a call nobody waits for (a release, a usage correction, a lease renewal), at most
`MAX_BACKGROUND_CALLS` at once; beyond that, or while the breaker is not closed, the call is
dropped and counted. `aclose` lets those finish within the timeout, ends the rest and closes
every connection.

The client (redis-py's asyncio client with the hiredis parser, a bounded blocking pool, no
client-side retries: the breaker and the fallback handle failures) is made at the first call,
so a config check or a worker that never sees a limited request opens no socket and never
imports redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from proxy.limits.redis_breaker import RedisBreaker
from proxy.limits.redis_scripts import ADMIT_LUA, RECORD_LUA, RELEASE_LUA, RENEW_LUA

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("junction.limits")

MAX_BACKGROUND_CALLS: Final = 256  # releases, corrections and renewals in flight at once
SCRIPTS: Final = {
    "admit": ADMIT_LUA,
    "record": RECORD_LUA,
    "release": RELEASE_LUA,
    "renew": RENEW_LUA,
}


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str  # redis://, rediss:// or unix://; may hold a password
    shown_url: str  # the same with the password masked, for logs and /stats
    timeout_s: float = 0.05
    fail_closed: bool = False
    key_prefix: str = "junction:"
    breaker_failures: int = 3
    breaker_open_s: float = 5.0
    lease_ttl_s: float = 30.0
    max_connections: int = 32


class RedisDownError(Exception):
    """A call failed or timed out (already counted and logged)."""


class RedisStore:
    def __init__(
        self, settings: RedisSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        # A probe that never reports is forgotten a little after its call would have ended.
        self.breaker = RedisBreaker(
            settings.breaker_failures, settings.breaker_open_s, settings.timeout_s + 1.0
        )
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outage_since: float | None = None
        self._outage_fallbacks = 0
        self.closed = False
        self.errors_total = 0
        self.outages_total = 0
        self.fallbacks_total = 0  # decisions made without Redis
        self.background_dropped_total = 0

    @property
    def background_inflight(self) -> int:
        return len(self._tasks)

    def allow(self) -> bool:
        """Whether a decision may ask Redis now (the breaker, and not closed)."""
        return not self.closed and self.breaker.allow(self._clock())

    def state(self) -> str:
        return "closed" if self.closed else self.breaker.state(self._clock())

    def count_fallback(self) -> None:
        self.fallbacks_total += 1
        self._outage_fallbacks += 1

    def _redis(self) -> dict[str, AsyncScript]:
        if self._client is None:
            # Imported here: a worker without `redis:` never loads the client.
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            s = self.settings
            pool = BlockingConnectionPool.from_url(
                s.url,
                max_connections=s.max_connections,
                timeout=s.timeout_s,  # waiting for a free connection
                socket_timeout=s.timeout_s,
                socket_connect_timeout=s.timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._client = Redis(connection_pool=pool)
            self._scripts = {
                name: self._client.register_script(text) for name, text in SCRIPTS.items()
            }
        return self._scripts

    async def call(self, name: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run script ``name``; raises RedisDownError when Redis fails or is too slow."""
        if self.closed:
            raise RedisDownError("closed")
        scripts = self._redis()
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                reply = await scripts[name](keys=keys, args=args)
        except Exception as error:  # any failure of the store: decide without it
            self._failed(error)
            raise RedisDownError from error
        self._succeeded()
        if task is not None and task.cancelling() > cancels:
            # A cancellation that lands just as the client finishes a command can be lost
            # inside it (seen with redis-py 8.1): honour it here.
            raise asyncio.CancelledError
        return reply

    def _succeeded(self) -> None:
        self.breaker.on_success()
        if self._outage_since is not None:
            log.info(
                "shared limits: Redis at %s answers again after %.1f s; %d decisions were "
                "made without it",
                self.settings.shown_url,
                self._clock() - self._outage_since,
                self._outage_fallbacks,
            )
            self._outage_since = None

    def _failed(self, error: BaseException) -> None:
        now = self._clock()
        self.errors_total += 1
        self.breaker.on_failure(now)
        if self._outage_since is None:
            # Once per outage, however many requests it touches.
            self._outage_since = now
            self._outage_fallbacks = 0
            self.outages_total += 1
            what = type(error).__name__ + (f": {error}" if str(error) else "")
            then = (
                "limited requests are refused with 503"
                if self.settings.fail_closed
                else "limits are decided locally, per worker"
            )
            log.warning(
                "shared limits: Redis at %s failed (%s); until it answers again, %s",
                self.settings.shown_url,
                what,
                then,
            )

    def failed(self, error: BaseException) -> None:
        """An answer no script of ours gives counts as a failure too."""
        self._failed(error)

    def spawn(self, name: str, keys: list[str], args: list[str]) -> None:
        """Run a call in the background, or drop it (counted) when that cannot be now."""
        if self.closed or not self.breaker.closed or len(self._tasks) >= MAX_BACKGROUND_CALLS:
            self.background_dropped_total += 1
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called from outside the loop: nothing to run it on
            self.background_dropped_total += 1
            return
        task = loop.create_task(self._background(name, keys, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background(self, name: str, keys: list[str], args: list[str]) -> None:
        # A failure is counted; what the call would have written expires on its own.
        with contextlib.suppress(RedisDownError):
            await self.call(name, keys, args)

    async def wait_idle(self) -> None:
        """Until the background calls started so far are done (each within the timeout)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Let background calls finish within the timeout, end the rest, close every
        connection. Idempotent; later calls fail at once."""
        if self.closed:
            return
        self.closed = True
        if self._tasks:
            tasks = set(self._tasks)
            _, late = await asyncio.wait(tasks, timeout=self.settings.timeout_s * 2)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
            await client.connection_pool.aclose()
