"""The worker's response cache: L1, L2, the flights of coalesced requests, the counters.

One per worker, kept across reloads (`configured_cache` hands the running one the new
section: L1 keeps its entries, resized; L2 is replaced when ``redis:`` changed). The routing
fingerprint goes into every key (proxy/cache/key.py), so a reload that changes routing
simply stops matching the old entries, which age out.

`CacheStats` holds the counters `/admin/cache` shows; a metrics exporter reads the same
object (``ResponseCache.stats``) — see docs/cache.md.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from proxy.cache.entry import CacheEntry, decode_entry
from proxy.cache.flight import FlightTable
from proxy.cache.key import routing_fingerprint
from proxy.cache.lru import EntryLru
from proxy.cache.policy import RoutePolicy, route_policies
from proxy.cache.redis_l2 import RedisL2
from proxy.config.cache import DEFAULT_ROUTE, CacheConfig

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig


class CacheStats:
    __slots__ = (
        "bypass_total",
        "coalesced_total",
        "hits_l1_total",
        "hits_l2_total",
        "misses_total",
        "not_stored_total",
        "served_bytes_total",
        "stored_bytes_total",
        "stores_total",
        "unusable_total",
    )

    def __init__(self) -> None:
        self.hits_l1_total = 0
        self.hits_l2_total = 0
        self.misses_total = 0
        self.bypass_total = 0
        self.coalesced_total = 0  # followers answered from a leader's upstream call
        self.stores_total = 0
        self.stored_bytes_total = 0
        self.not_stored_total = 0  # complete answers larger than max_entry_bytes
        self.served_bytes_total = 0  # body bytes answered from the cache
        self.unusable_total = 0  # entries that could not be rendered (dropped)

    def snapshot(self) -> dict[str, int]:
        # Named one by one: a compiled class has no __slots__ to read back.
        return {
            "hits_l1_total": self.hits_l1_total,
            "hits_l2_total": self.hits_l2_total,
            "misses_total": self.misses_total,
            "bypass_total": self.bypass_total,
            "coalesced_total": self.coalesced_total,
            "stores_total": self.stores_total,
            "stored_bytes_total": self.stored_bytes_total,
            "not_stored_total": self.not_stored_total,
            "served_bytes_total": self.served_bytes_total,
            "unusable_total": self.unusable_total,
        }


class ResponseCache:
    def __init__(
        self,
        cfg: CacheConfig,
        fingerprint: str,
        l2: RedisL2 | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.stats = CacheStats()
        self.l1 = EntryLru(cfg.max_entries, cfg.max_bytes)
        self.flights = FlightTable(cfg.max_flights, cfg.max_followers)
        self.l2 = l2
        self.cfg = cfg
        self.fingerprint = fingerprint
        self.policies: dict[str, RoutePolicy] = route_policies(cfg)

    def reconfigure(self, cfg: CacheConfig, fingerprint: str) -> None:
        self.cfg = cfg
        self.fingerprint = fingerprint
        self.policies = route_policies(cfg)
        self.l1.resize(cfg.max_entries, cfg.max_bytes)
        self.flights.max_flights = cfg.max_flights
        self.flights.max_followers = cfg.max_followers

    def policy_for(self, requested_model: object) -> RoutePolicy:
        """The policy of the route a request names: an alias's own, else the default's."""
        if isinstance(requested_model, str):
            found = self.policies.get(requested_model)
            if found is not None and requested_model != DEFAULT_ROUTE:
                return found
        return self.policies[DEFAULT_ROUTE]

    def lookup(self, key: str) -> CacheEntry | None:
        return self.l1.get(key, self.wall())

    def lookup_l2(self, tenant: str, key: str) -> Awaitable[CacheEntry | None] | None:
        """An L2 read to await, or None when there is no L2 or its breaker is open."""
        l2 = self.l2
        if l2 is None or not l2.available():
            return None
        return self._read_l2(l2, tenant, key)

    async def _read_l2(self, l2: RedisL2, tenant: str, key: str) -> CacheEntry | None:
        raw = await l2.get(tenant, key)
        if raw is None:
            return None
        try:
            entry = decode_entry(raw)
        except (ValueError, KeyError, TypeError):
            return None
        if entry.expires_wall_s <= self.wall():
            return None
        entry.tenant = tenant
        entry.key = key
        self.l1.put(key, entry)  # an L2 hit fills L1
        return entry

    def drop(self, entry: CacheEntry) -> None:
        """Forget an entry that turned out unusable (L1 only; L2's copy expires)."""
        self.l1.remove(entry.key, entry)
        self.stats.unusable_total += 1

    def store(self, tenant: str, key: str, entry: CacheEntry, ttl_s: float) -> None:
        entry.expires_wall_s = self.wall() + ttl_s
        entry.tenant = tenant
        entry.key = key
        raw = entry.encode()
        if entry.size > self.cfg.max_entry_bytes:
            self.stats.not_stored_total += 1
            return
        self.stats.stores_total += 1
        self.stats.stored_bytes_total += entry.size
        self.l1.put(key, entry)
        if self.l2 is not None:
            self.l2.put(tenant, key, raw, ttl_s)

    async def purge(self, tenant: str | None, prefix: str) -> dict[str, Any]:
        """Drop the entries of ``tenant`` (None: all) whose key starts with ``prefix``."""

        def match(e: CacheEntry) -> bool:
            return (tenant is None or e.tenant == tenant) and e.key.startswith(prefix)

        doc: dict[str, Any] = {"l1_purged": self.l1.purge(match)}
        if self.l2 is not None:
            try:
                doc["l2_purged"] = await self.l2.purge(tenant, prefix)
            except Exception as error:  # reported, not raised: L1 is purged anyway
                doc["l2_error"] = type(error).__name__
        return doc

    def snapshot(self) -> dict[str, Any]:
        l1 = self.l1
        doc: dict[str, Any] = {
            **self.stats.snapshot(),
            "l1": {
                "entries": len(l1),
                "bytes": l1.bytes,
                "max_entries": l1.max_entries,
                "max_bytes": l1.max_bytes,
                "evictions_total": l1.evictions_total,
                "expired_total": l1.expired_total,
            },
            "flights_active": len(self.flights),
            "fingerprint": self.fingerprint,
        }
        if self.l2 is not None:
            doc["l2"] = {
                "state": self.l2.state(),
                "errors_total": self.l2.errors_total,
                "writes_dropped_total": self.l2.writes_dropped_total,
            }
        else:
            doc["l2"] = None
        return doc

    async def aclose(self) -> None:
        if self.l2 is not None:
            await self.l2.aclose()


def fingerprint_of(cfg: JunctionConfig) -> str:
    """What decides where a request goes and how it is translated, minus secrets and
    endpoints (another deployment of the same provider serves the same model)."""
    providers = [
        p.model_dump(mode="json", exclude={"api_key", "deployments", "base_url", "ca_file"})
        for p in cfg.providers
    ]
    return routing_fingerprint(
        {
            "router": cfg.router.model_dump(mode="json"),
            "providers": providers,
            "filters": [f.model_dump(mode="json") for f in cfg.filters],
        }
    )


def configured_cache(
    cfg: JunctionConfig,
    previous: ResponseCache | None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> ResponseCache | None:
    """The worker's cache for ``cfg``: None without a ``cache:`` section; else ``previous``
    reconfigured when its L2 still fits, or a new one. The caller closes a replaced one."""
    section = cfg.cache
    if section is None:
        return None
    fingerprint = fingerprint_of(cfg)
    settings = cfg.redis.settings() if cfg.redis is not None and section.redis else None
    if previous is not None:
        old = previous.l2.settings if previous.l2 is not None else None
        if old == settings:
            previous.reconfigure(section, fingerprint)
            return previous
    l2 = RedisL2(settings, clock) if settings is not None else None
    cache = ResponseCache(section, fingerprint, l2, clock=clock)
    if previous is not None:
        cache.l1 = previous.l1
        cache.l1.resize(section.max_entries, section.max_bytes)
        cache.stats = previous.stats
    return cache
