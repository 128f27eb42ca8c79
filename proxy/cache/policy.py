"""Whether a request may use the cache, and how: route policy and per-request controls. Pure.

``deterministic`` counts a request as deterministic when it samples greedily — ``temperature``
present and equal to 0, or ``top_k`` equal to 1 — and asks for one answer (``n`` absent or 1:
a client asking for several samples wants them to differ). A request that leaves temperature
out samples at the provider's default (1.0), so it is not deterministic. ``all`` caches every
request; ``off`` none.

Per request: ``cache-control: no-store`` skips the cache both ways; ``no-cache`` skips the
lookup but stores the fresh answer; ``x-junction-cache-ttl: <seconds>`` asks for a TTL,
clamped to the section's bounds (a value that is not a positive number is ignored).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from proxy.config.cache import DEFAULT_ROUTE, CacheConfig, CachePolicy

CACHEABLE_PATHS: Final = frozenset({"/v1/messages", "/v1/chat/completions"})
TTL_HEADER: Final = b"x-junction-cache-ttl"
MAX_TTL_HEADER_BYTES: Final = 32


class Mode(enum.Enum):
    BYPASS = 0  # neither read nor write
    REFRESH = 1  # no-cache: skip the lookup, store the answer
    NORMAL = 2  # look up, store on a miss


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    policy: CachePolicy
    ttl_s: float


def route_policies(cfg: CacheConfig) -> dict[str, RoutePolicy]:
    """Every configured route's effective policy; ``default`` is always there."""
    out = {DEFAULT_ROUTE: RoutePolicy(cfg.policy, cfg.clamp_ttl(cfg.ttl_s))}
    for name, route in cfg.routes.items():
        out[name] = RoutePolicy(
            route.policy if route.policy is not None else cfg.policy,
            cfg.clamp_ttl(route.ttl_s if route.ttl_s is not None else cfg.ttl_s),
        )
    return out


def is_deterministic(body: dict[str, Any]) -> bool:
    n = body.get("n")
    if n is not None and n != 1:
        return False
    temperature = body.get("temperature")
    if type(temperature) in (int, float) and temperature == 0:
        return True
    top_k = body.get("top_k")
    return type(top_k) is int and top_k == 1


def admits(policy: CachePolicy, body: dict[str, Any]) -> bool:
    if policy == "all":
        return True
    return policy == "deterministic" and is_deterministic(body)


def request_mode(headers: list[tuple[bytes, bytes]]) -> tuple[Mode, float | None]:
    """The client's cache-control directives and requested TTL (None: the route's)."""
    mode = Mode.NORMAL
    ttl: float | None = None
    for k, v in headers:
        if k == b"cache-control":
            tokens = {t.strip().lower().split(b"=", 1)[0] for t in v.split(b",")}
            if b"no-store" in tokens:
                return Mode.BYPASS, None
            if b"no-cache" in tokens:
                mode = Mode.REFRESH
        elif k == TTL_HEADER and len(v) <= MAX_TTL_HEADER_BYTES:
            try:
                asked = float(v)
            except ValueError:
                continue
            if asked > 0 and asked != float("inf"):
                ttl = asked
    return mode, ttl
