"""Envoy-style resource limits per cluster (a provider): requests and retries in flight.

A provider's ``resources`` block caps how much of Junction's traffic may be outstanding on it at
once, so that one slow provider cannot absorb every request (the requests pile up waiting on
it) and a retry storm cannot multiply an outage. The pool enforces the connection and queue
limits of each deployment (`Origin.max_connections`, `Origin.max_pending`); this module keeps
the two counters the router needs:

- ``max_requests``: attempts in flight on the provider. An attempt over it is not made: the
  router moves to the next candidate, or answers 503 with flag ``UO`` when none is left.
- ``max_retries``: attempts in flight on the provider that are not a request's first (retries
  and fallbacks). Over it, the same.

Counters live in one `ResourceBook` per worker and survive reloads (a reload that changes a
provider's limits applies them to the requests already counted), like the health book.
"""

from __future__ import annotations

from collections.abc import Iterable


class ClusterResources:
    """One provider's limits and what is in flight on it."""

    __slots__ = ("active_requests", "active_retries", "max_requests", "max_retries", "overflows")

    def __init__(self, max_requests: int | None, max_retries: int | None) -> None:
        self.max_requests = max_requests
        self.max_retries = max_retries
        self.active_requests = 0
        self.active_retries = 0
        self.overflows = 0  # attempts refused, for /admin/upstreams

    def try_acquire(self, retry: bool) -> bool:
        """Room for one more attempt (``retry``: not the request's first)? Takes it if so."""
        if self.max_requests is not None and self.active_requests >= self.max_requests:
            self.overflows += 1
            return False
        if retry:
            if self.max_retries is not None and self.active_retries >= self.max_retries:
                self.overflows += 1
                return False
            self.active_retries += 1
        self.active_requests += 1
        return True

    def release(self, retry: bool) -> None:
        self.active_requests = max(self.active_requests - 1, 0)
        if retry:
            self.active_retries = max(self.active_retries - 1, 0)

    def snapshot(self) -> dict[str, object]:
        return {
            "max_requests": self.max_requests,
            "max_retries": self.max_retries,
            "active_requests": self.active_requests,
            "active_retries": self.active_retries,
            "overflows_total": self.overflows,
        }


class ResourceBook:
    """`ClusterResources` by provider name, for providers with a ``resources`` block only (the
    request path looks a provider up only when its `Provider.limited` is set)."""

    __slots__ = ("_clusters",)

    def __init__(
        self,
        limits: Iterable[tuple[str, int | None, int | None]],
        previous: ResourceBook | None = None,
    ) -> None:
        old = previous._clusters if previous is not None else {}
        self._clusters: dict[str, ClusterResources] = {}
        for name, max_requests, max_retries in limits:
            cluster = old.get(name)
            if cluster is None:
                cluster = ClusterResources(max_requests, max_retries)
            else:  # in-flight attempts keep counting against the new limits
                cluster.max_requests = max_requests
                cluster.max_retries = max_retries
            self._clusters[name] = cluster

    def get(self, provider: str) -> ClusterResources | None:
        return self._clusters.get(provider)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {name: c.snapshot() for name, c in self._clusters.items()}
