"""The `cache:` section: the response cache (proxy/cache/, docs/cache.md has the whole story).

```yaml
cache:
  policy: deterministic      # off | deterministic | all: the default of every route
  ttl_s: 300                 # how long an answer is served; x-junction-cache-ttl may ask
  min_ttl_s: 1               #   for another value, clamped to [min_ttl_s, max_ttl_s]
  max_ttl_s: 86400
  max_entries: 10000         # L1 (in-process, per worker) bounds
  max_bytes: 268435456
  max_entry_bytes: 1048576   # a larger answer is not stored (L1 nor L2)
  redis: true                # L2 through the `redis:` section's server, when it is set
  coalesce: true             # identical concurrent misses share one upstream call
  coalesce_wait_s: 30        # how long a follower waits for the leader's first byte
  routes:                    # per route: "default" or an alias name of router.aliases
    default: {policy: deterministic}
    eval: {policy: all, ttl_s: 3600}
```

Without the section the cache filter is not in the chain at all. Same style as
proxy/config/model.py: unknown keys fail, sections are frozen.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CachePolicy = Literal["off", "deterministic", "all"]
Seconds = Annotated[float, Field(gt=0, le=365 * 86_400)]
DEFAULT_ROUTE = "default"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class RouteCacheConfig(_Section):
    """One route's policy; a key left out takes the section's value."""

    policy: CachePolicy | None = None
    ttl_s: Seconds | None = None


class CacheConfig(_Section):
    policy: CachePolicy = "deterministic"
    ttl_s: Seconds = 300.0
    min_ttl_s: Seconds = 1.0
    max_ttl_s: Seconds = 86_400.0
    max_entries: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000
    max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    max_entry_bytes: Annotated[int, Field(ge=256)] = 1024 * 1024
    redis: bool = True
    coalesce: bool = True
    coalesce_wait_s: Seconds = 30.0
    max_followers: Annotated[int, Field(ge=1, le=100_000)] = 1000  # per request in flight
    max_flights: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000  # requests led at once
    routes: dict[str, RouteCacheConfig] = {}

    @model_validator(mode="after")
    def _check_bounds(self) -> CacheConfig:
        if self.min_ttl_s > self.max_ttl_s:
            raise ValueError("min_ttl_s must not exceed max_ttl_s")
        if self.max_entry_bytes > self.max_bytes:
            raise ValueError("max_entry_bytes must not exceed max_bytes")
        return self

    def route_problems(self, aliases: set[str]) -> list[tuple[tuple[str, ...], str]]:
        """Names under ``routes`` that are neither ``default`` nor an alias."""
        known = sorted(aliases)
        return [
            (
                ("cache", "routes", name),
                f"no such route: use 'default' or an alias ({', '.join(known) or 'none set'})",
            )
            for name in self.routes
            if name != DEFAULT_ROUTE and name not in aliases
        ]

    def clamp_ttl(self, ttl_s: float) -> float:
        return min(max(ttl_s, self.min_ttl_s), self.max_ttl_s)
