"""Limits shared by every worker and replica through Redis, with the in-process limiter as the
fallback when Redis is down or slow.

How this works: ``admit`` answers with a coroutine that runs one atomic script covering every
limit of every scope that applies (proxy/limits/redis_scripts.py: the scripts, the key layout,
the GCRA of gcra.py in Lua), through `RedisStore` (proxy/limits/redis_store.py: the pool, the
timeout on every call, the breaker on Redis, the outage log line). When the call fails or
times out, the request is decided by the local limiter instead — or refused with 503
`LimitsUnavailableError` when ``fail_closed``. While the breaker is open nothing goes to
Redis: admissions are decided locally at once, without a coroutine.

An admission remembers which backend granted it, so its release and usage correction go back
to the same one. For Redis they are fire-and-forget calls (`RedisStore.spawn`, bounded). A
concurrency slot in Redis is a lease that lives ``lease_ttl_s``; this limiter renews the
leases of its running requests every third of that, so a worker that crashed, or a release
that was dropped, gives its slots back within ``lease_ttl_s``. A dropped usage correction
leaves the admission's estimate in place.

Limits in the local fallback are per worker, as without Redis, and each worker keeps its own
state there across outages. `aclose` (the worker's drain, or a reload that replaces this
limiter) stops the renewals and closes the store; later admissions are decided locally.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Final

from proxy.errors import ProxyError
from proxy.limits.api import (
    Admission,
    AdmitResult,
    Limiter,
    LimitSettings,
    LimitSpec,
    Pricing,
    Rejection,
    no_prices,
)
from proxy.limits.local import CONCURRENCY_RETRY_AFTER_S, LocalLimiter
from proxy.limits.redis_scripts import (
    KEYS_PER_SCOPE,
    admit_args,
    fmt_float,
    parse_admit,
    record_args,
    refusal_text,
)
from proxy.limits.redis_store import RedisDownError, RedisSettings, RedisStore
from proxy.limits.spend import cost_usd

__all__ = [
    "LimitsUnavailableError",
    "RedisLimiter",
    "RedisSettings",
    "close_limiter",
    "limiter_for",
    "limits_stats",
]

MAX_TRACKED_LEASES: Final = 100_000  # leases renewed; one beyond it simply expires
MAX_RENEW_BATCH: Final = 500  # leases renewed per script call
_CONCURRENCY_INDEX: Final = 2  # the concurrency set among a scope's keys


class LimitsUnavailableError(ProxyError):
    """``fail_closed`` and Redis does not answer: the request is refused rather than admitted
    unchecked."""

    status = 503
    flag = "RLSE"  # Envoy's "rate limit service error"
    kind = "overloaded_error"


class _RedisAdmission(Admission):
    __slots__ = ("labels", "lease", "lease_keys")

    def __init__(
        self,
        key: str | None,
        model: str,
        provider: str,
        tokens: int,
        usd: float,
        labels: tuple[str, ...],
        lease: str,
        lease_keys: tuple[str, ...],
    ) -> None:
        super().__init__(key, model, provider, tokens, usd)
        self.labels = labels
        self.lease = lease
        self.lease_keys = lease_keys


def _spends(spec: LimitSpec) -> bool:
    return spec.spend_per_day_usd is not None or spec.spend_per_month_usd is not None


class RedisLimiter:
    def __init__(
        self,
        settings: RedisSettings,
        fallback: LocalLimiter | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.fallback = fallback if fallback is not None else LocalLimiter()
        self.store = RedisStore(settings, clock)
        self._wall = wall  # lease renewals' time (admissions get theirs from the caller)
        self._scopes: dict[str, LimitSpec] = {}
        self._pricing: Pricing = no_prices
        self._leases: dict[str, tuple[str, ...]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._lease_prefix = os.urandom(6).hex()  # this limiter's leases, among every replica's
        self._lease_seq = 0
        self.unavailable_total = 0  # refused with 503 (fail_closed)

    @property
    def closed(self) -> bool:
        return self.store.closed

    # -- the Limiter protocol --------------------------------------------------------------

    def configure(self, settings: LimitSettings, pricing: Pricing) -> None:
        self.fallback.configure(settings, pricing)  # first: it checks the bounds
        scopes: dict[str, LimitSpec] = {}
        for prefix, named in (
            ("key:", settings.keys),
            ("model:", settings.models),
            ("provider:", settings.providers),
        ):
            for name, spec in named.items():
                if not spec.empty:
                    scopes[prefix + name] = spec
        self._scopes = scopes
        self._pricing = pricing

    @property
    def active(self) -> bool:
        return self.fallback.active

    def counts_tokens(self, key: str | None, model: str, provider: str) -> bool:
        return self.fallback.counts_tokens(key, model, provider)

    def admit(
        self, key: str | None, model: str, provider: str, est_tokens: int, now: float
    ) -> AdmitResult | Awaitable[AdmitResult]:
        scopes = self._applicable(key, model, provider)
        if not scopes:  # nothing limited: the local limiter's empty admission, at once
            return self.fallback.admit(key, model, provider, est_tokens, now)
        if self.store.allow():
            return self._admit_remote(scopes, key, model, provider, max(est_tokens, 0), now)
        if not self.settings.fail_closed:
            self.store.count_fallback()
            return self.fallback.admit(key, model, provider, est_tokens, now)
        refused: asyncio.Future[AdmitResult] = asyncio.get_running_loop().create_future()
        refused.set_exception(self._unavailable())
        return refused

    def release(self, admission: Admission) -> None:
        if not isinstance(admission, _RedisAdmission):
            self.fallback.release(admission)
            return
        if admission.released:
            return
        admission.released = True
        if admission.lease_keys:
            self._leases.pop(admission.lease, None)
            self.store.spawn("release", list(admission.lease_keys), [admission.lease])

    def record_usage(
        self,
        admission: Admission,
        input_tokens: int,
        output_tokens: int,
        now: float,
        cached_tokens: int = 0,
    ) -> None:
        if not isinstance(admission, _RedisAdmission):
            self.fallback.record_usage(admission, input_tokens, output_tokens, now, cached_tokens)
            return
        # The scopes' current limits, as the local limiter corrects its current buckets.
        scopes = [(lb, self._scopes[lb]) for lb in admission.labels if lb in self._scopes]
        total = max(input_tokens, 0) + max(output_tokens, 0)
        spends = any(_spends(spec) for _, spec in scopes)
        price = self._pricing(admission.provider, admission.model) if spends else None
        usd = cost_usd(max(input_tokens, 0), max(output_tokens, 0), price, cached_tokens)
        d_tokens = total - admission.tokens
        d_usd = usd - admission.usd
        admission.tokens = total
        admission.usd = usd
        wanted = [
            (label, spec)
            for label, spec in scopes
            if (d_tokens and spec.tokens_per_minute is not None) or (d_usd and _spends(spec))
        ]
        if wanted:
            keys, args = record_args(
                self.settings.key_prefix, wanted, now=now, d_tokens=d_tokens, d_usd=d_usd
            )
            self.store.spawn("record", keys, args)

    # -- admission through Redis -----------------------------------------------------------

    def _applicable(
        self, key: str | None, model: str, provider: str
    ) -> list[tuple[str, LimitSpec]]:
        labels = ["model:" + model, "provider:" + provider]
        if key is not None:
            labels.insert(0, "key:" + key)
        found = []
        for label in labels:
            spec = self._scopes.get(label)
            if spec is not None:
                found.append((label, spec))
        return found

    async def _admit_remote(
        self,
        scopes: list[tuple[str, LimitSpec]],
        key: str | None,
        model: str,
        provider: str,
        est_tokens: int,
        now: float,
    ) -> AdmitResult:
        spends = any(_spends(spec) for _, spec in scopes)
        usd = cost_usd(est_tokens, 0, self._pricing(provider, model)) if spends else 0.0
        lease = ""
        if any(spec.concurrent is not None for _, spec in scopes):
            self._lease_seq += 1
            lease = f"{self._lease_prefix}:{self._lease_seq}"
        keys, args = admit_args(
            self.settings.key_prefix,
            scopes,
            now=now,
            est_tokens=est_tokens,
            usd=usd,
            lease=lease,
            lease_ttl_s=self.settings.lease_ttl_s,
            concurrency_wait_s=CONCURRENCY_RETRY_AFTER_S,
        )
        lease_keys = tuple(
            keys[i * KEYS_PER_SCOPE + _CONCURRENCY_INDEX]
            for i, (_, spec) in enumerate(scopes)
            if spec.concurrent is not None
        )
        try:
            answer = parse_admit(await self.store.call("admit", keys, args), len(scopes))
        except asyncio.CancelledError:
            # The request went away; the script may have run: give back its lease.
            self.store.breaker.on_abandon()
            if lease:
                self.store.spawn("release", list(lease_keys), [lease])
            raise
        except (RedisDownError, ValueError) as error:
            if isinstance(error, ValueError):  # an answer no script of ours gives
                self.store.failed(error)
            if self.settings.fail_closed:
                raise self._unavailable() from None
            self.store.count_fallback()
            return self.fallback.admit(key, model, provider, est_tokens, now)
        if not answer.admitted:
            label, spec = scopes[answer.scope_index]
            return Rejection(answer.wait_s, label, refusal_text(label, spec, answer.kind))
        labels = tuple(label for label, _ in scopes)
        admission = _RedisAdmission(
            key, model, provider, est_tokens, usd, labels, lease, lease_keys
        )
        if lease:
            self._hold(lease, lease_keys)
        return admission

    def _unavailable(self) -> LimitsUnavailableError:
        self.store.count_fallback()
        self.unavailable_total += 1
        return LimitsUnavailableError(
            "rate limits cannot be checked right now (their store does not answer); retry shortly"
        )

    # -- concurrency leases ------------------------------------------------------------------

    def _hold(self, lease: str, keys: tuple[str, ...]) -> None:
        if len(self._leases) < MAX_TRACKED_LEASES:
            self._leases[lease] = keys
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    async def _renew_leases(self) -> None:
        """Push live leases' expiry forward every third of their life; ends when none is
        held (the next lease starts it again)."""
        ttl_s = self.settings.lease_ttl_s
        while self._leases and not self.closed:
            await asyncio.sleep(ttl_s / 3)
            if not self.store.breaker.closed or self.closed:
                continue
            held = list(self._leases.items())
            for start in range(0, len(held), MAX_RENEW_BATCH):
                keys: list[str] = []
                members: list[str] = []
                for lease, lease_keys in held[start : start + MAX_RENEW_BATCH]:
                    keys += lease_keys
                    members += [lease] * len(lease_keys)
                args = [fmt_float(self._wall() + ttl_s), str(int(ttl_s * 1000)), *members]
                try:
                    await self.store.call("renew", keys, args)
                except RedisDownError:
                    break

    # -- lifecycle and introspection ---------------------------------------------------------

    async def wait_idle(self) -> None:
        """Until the background calls started so far are done (tests, shutdown)."""
        await self.store.wait_idle()

    async def aclose(self) -> None:
        """Stop renewing leases and close the store. Idempotent."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        self._leases.clear()
        await self.store.aclose()

    def stats(self) -> dict[str, object]:
        store = self.store
        return {
            "backend": "redis",
            "active": self.active,
            "redis": {
                "url": self.settings.shown_url,
                "state": store.state(),
                "fail_closed": self.settings.fail_closed,
                "timeout_ms": round(self.settings.timeout_s * 1000, 3),
            },
            "redis_errors_total": store.errors_total,
            "fallbacks_total": store.fallbacks_total,
            "unavailable_total": self.unavailable_total,
            "outages_total": store.outages_total,
            "background_inflight": store.background_inflight,
            "background_dropped_total": store.background_dropped_total,
            "leases_held": len(self._leases),
        }


def limits_stats(limiter: Limiter) -> dict[str, object]:
    """The ``limits`` object of the admin listener's /stats."""
    if isinstance(limiter, RedisLimiter):
        return limiter.stats()
    return {"backend": "local", "active": limiter.active}


async def close_limiter(limiter: Limiter) -> None:
    """Close what a limiter holds (a Redis limiter's connections and tasks)."""
    if isinstance(limiter, RedisLimiter):
        await limiter.aclose()


def limiter_for(settings: RedisSettings | None, previous: Limiter | None) -> Limiter:
    """The limiter a (re)loaded config asks for, keeping what can be kept: the running local
    limiter's state (also as a Redis limiter's fallback), and the running Redis limiter
    itself when its Redis settings did not change. One that is replaced must be closed by
    the caller (`close_limiter`)."""
    local = previous.fallback if isinstance(previous, RedisLimiter) else previous
    if settings is None:
        return local if local is not None else LocalLimiter()
    if isinstance(previous, RedisLimiter) and previous.settings == settings and not previous.closed:
        return previous
    fallback = local if isinstance(local, LocalLimiter) else LocalLimiter()
    return RedisLimiter(settings, fallback)
