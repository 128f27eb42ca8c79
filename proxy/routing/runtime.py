"""The config as the data path uses it: resolved once per load, swapped whole on reload.

`RuntimeConfig.from_config` turns the validated config into providers (each with its
deployments: endpoint, injected key, weight), routes (one per scenario that has a value, one
per alias) and the `Selector` that chooses among a route's candidates. Pass the running
runtime as ``previous`` on reload so the selector keeps its live stats and session affinity,
and the `HealthBook` its breakers and outlier ejections.
"""

from __future__ import annotations

import inspect
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proxy.cache.store import ResponseCache, configured_cache
from proxy.config.model import load_callable
from proxy.dialects.transformers.registry import provider_transformers
from proxy.errors import ConfigError
from proxy.filters.api import Dialect
from proxy.filters.auth import AuthPolicy
from proxy.filters.custom import FilterSpec
from proxy.filters.limit import configured_limiter
from proxy.limits.api import Limiter
from proxy.limits.local import LocalLimiter
from proxy.resilience.health import HealthBook
from proxy.resilience.resources import ResourceBook
from proxy.resilience.retry import RetryBudget, RetryPolicy
from proxy.routing.catalog import info_for, lookup, with_overrides
from proxy.routing.claude_code import BACKGROUND_ALIASES
from proxy.routing.scenarios import ScenarioRules, compile_background_pattern
from proxy.routing.selection import Selector
from proxy.routing.types import (
    SINGLE_DEPLOYMENT,
    Deployment,
    Hedge,
    ModelInfo,
    Provider,
    Route,
    Strategy,
    Target,
    Timeouts,
)

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig, ProviderConfig, RouteConfig, TimeoutsConfig

__all__ = ["SINGLE_DEPLOYMENT", "Provider", "RuntimeConfig", "Target"]

ALIAS_ROUTE_PREFIX = "alias:"  # Route.name of an alias: "alias:sonnet"
EXPLICIT_ROUTE = "explicit"  # Route.name of a route the request names ("provider,model")


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    providers: dict[str, Provider]
    default: Target
    by_model: dict[str, Target]  # a model a provider lists -> that provider (first one wins)
    access_log: bool
    response_header_timeout_s: float
    stream_idle_timeout_s: float
    total_timeout_s: float | None
    routes: dict[str, Route]  # "default" and each scenario the config sets
    aliases: dict[str, Route]  # a model name clients send -> its route
    selector: Selector
    health: HealthBook  # breakers and outlier ejection; carried over on reload
    resources: ResourceBook  # requests and retries in flight per limited provider; likewise
    retry: RetryPolicy
    retry_budget: RetryBudget  # per worker: carried over on reload
    max_attempts: int
    rng: random.Random  # backoff jitter
    rules: ScenarioRules
    custom: Callable[..., Any] | None  # router.custom, imported and checked at load
    custom_async: bool  # an ``async def`` custom router: awaited within its budget
    custom_budget_s: float
    # The smallest context window among the configured targets and listed models: requests
    # that surely fit it skip the exact token count (proxy/routing/decide.py).
    min_context_window: float
    filters: tuple[FilterSpec, ...] = ()  # custom filters (cfg.filters), in config order
    auth: AuthPolicy = field(default_factory=AuthPolicy)  # downstream API keys (cfg.auth)
    limiter: Limiter = field(default_factory=LocalLimiter)  # one per worker, kept on reload
    cache: ResponseCache | None = None  # cfg.cache; one per worker, kept on reload
    # Read the provider's reported usage on passthrough answers too (metrics, access log,
    # traces and /admin/usage need it; limits read it anyway).
    track_usage: bool = False
    max_in_flight: int = 1024  # cfg.limits.max_in_flight_requests: overload protection

    @classmethod
    def from_config(
        cls,
        cfg: JunctionConfig,
        *,
        previous: RuntimeConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> RuntimeConfig:
        providers = {p.name: _provider(p) for p in cfg.providers}
        routes = {
            name: _route(name, value, providers, f"router.{name}")
            for name, value in cfg.router.scenario_routes().items()
        }
        aliases = {
            alias: _route(ALIAS_ROUTE_PREFIX + alias, value, providers, f"router.aliases.{alias}")
            for alias, value in cfg.router.aliases.items()
        }
        # What `junction claude` names Claude Code's small models: the background route.
        for alias in BACKGROUND_ALIASES:
            aliases.setdefault(alias, routes.get("background", routes["default"]))
        by_model: dict[str, Target] = {}
        for p in providers.values():
            for m in p.models:
                by_model.setdefault(m, Target(p, m))
        selector = Selector(
            [*routes.values(), *aliases.values()],
            clock=clock,
            rng=rng if rng is not None else random.Random(),
            previous=previous.selector if previous is not None else None,
        )
        custom = load_callable(cfg.router.custom) if cfg.router.custom else None
        retry_cfg = cfg.resilience.retry
        budget = previous.retry_budget if previous is not None else RetryBudget()
        budget.ratio = retry_cfg.budget_ratio
        budget.min_concurrent = retry_cfg.budget_min_concurrent
        resources = ResourceBook(
            (
                (p.name, p.resources.max_requests, p.resources.max_retries)
                for p in cfg.providers
                if p.resources is not None
            ),
            previous=previous.resources if previous is not None else None,
        )
        health = HealthBook(
            cfg.resilience,
            providers.values(),
            now=clock(),
            previous=previous.health if previous is not None else None,
        )
        return cls(
            providers=providers,
            default=routes["default"].targets[0],
            by_model=by_model,
            access_log=cfg.log.access_log,
            track_usage=cfg.log.access_log or cfg.metrics.enabled or cfg.tracing.enabled,
            max_in_flight=cfg.limits.max_in_flight_requests,
            response_header_timeout_s=cfg.upstream.response_header_timeout_s,
            stream_idle_timeout_s=cfg.upstream.stream_idle_timeout_s,
            total_timeout_s=cfg.upstream.total_timeout_s,
            routes=routes,
            aliases=aliases,
            selector=selector,
            health=health,
            resources=resources,
            retry=RetryPolicy(
                max_retries=retry_cfg.max_retries,
                base_s=retry_cfg.base_backoff_s,
                cap_s=retry_cfg.max_backoff_s,
            ),
            retry_budget=budget,
            max_attempts=retry_cfg.max_attempts,
            rng=random.Random(),
            rules=_rules(cfg, routes),
            custom=custom,
            custom_async=inspect.iscoroutinefunction(custom),
            custom_budget_s=cfg.router.custom_budget_ms / 1000.0,
            min_context_window=_min_window(providers, [*routes.values(), *aliases.values()]),
            filters=tuple(
                FilterSpec.build(load_callable(f.use), f.options, f.routes) for f in cfg.filters
            ),
            auth=AuthPolicy.from_config(cfg.auth),
            # Last: it reconfigures the running limiter in place, once the rest succeeded.
            limiter=configured_limiter(
                cfg, providers, previous.limiter if previous is not None else None
            ),
            # After the limiter (which may still refuse the config): reconfigures in place.
            cache=configured_cache(
                cfg, previous.cache if previous is not None else None, clock=clock
            ),
        )

    def target_for(self, requested: object) -> Target:
        """The target of a request asking for ``requested``: ``provider,model`` names both;
        a model some provider lists goes there; anything else goes to the default."""
        if isinstance(requested, str) and requested:
            hit = self.by_model.get(requested)
            if hit is not None:
                return hit
            name, sep, model = requested.partition(",")
            if sep:
                provider = self.providers.get(name.strip())
                if provider is not None and model.strip():
                    return Target(provider, model.strip())
        return self.default

    def explicit_route(self, provider: str, model: str) -> Route | None:
        """A one-target priority route for a "provider,model" the request names; None when
        no provider has that name (exact, else ignoring case, as claude-code-router)."""
        found = self.providers.get(provider)
        if found is None:
            folded = provider.casefold()
            found = next((p for p in self.providers.values() if p.name.casefold() == folded), None)
        if found is None or not model:
            return None
        return Route(EXPLICIT_ROUTE, (Target(found, model),))

    def model_ids(self) -> list[tuple[str, str]]:
        """(provider, model) pairs Junction can route to, default first."""
        out = [(self.default.provider.name, self.default.model)]
        for p in self.providers.values():
            for m in p.models:
                if (p.name, m) not in out:
                    out.append((p.name, m))
        return out


def _min_window(providers: dict[str, Provider], routes: list[Route]) -> float:
    windows = [info_for(t.provider, t.model).context_window for r in routes for t in r.targets]
    windows += [info_for(p, m).context_window for p in providers.values() for m in p.models]
    known = [w for w in windows if w]
    return float(min(known)) if known else math.inf


def _rules(cfg: JunctionConfig, routes: dict[str, Route]) -> ScenarioRules:
    pattern = cfg.router.background_pattern
    signals = cfg.router.claude_code
    return ScenarioRules(
        background="background" in routes,
        think="think" in routes,
        long_context="long_context" in routes,
        web_search="web_search" in routes,
        image="image" in routes,
        long_context_threshold=cfg.router.long_context_threshold,
        background_pattern=compile_background_pattern(pattern) if pattern else None,
        subagent_tag=cfg.router.subagent_tag,
        title="title" in routes,
        compact="compact" in routes,
        subagent="subagent" in routes,
        subagent_readonly="subagent_readonly" in routes,
        cc_title=signals.title,
        cc_compact=signals.compact,
        cc_subagent=signals.subagent,
        haiku_tier=signals.haiku_tier,
    )


def _route(name: str, value: RouteConfig, providers: dict[str, Provider], where: str) -> Route:
    targets = []
    for ref in value.refs:
        provider = providers.get(ref.provider)
        if provider is None:  # the config's validation rejects this; kept for direct callers
            raise ConfigError(f"{where}: unknown provider {ref.provider!r}")
        targets.append(Target(provider, ref.model))
    return Route(
        name=name,
        targets=tuple(targets),
        strategy=Strategy(value.strategy),
        affinity=value.affinity,
        quality_floor=value.quality_floor,
        cost_weight=value.cost_weight,
        latency_weight=value.latency_weight,
        quality_weight=value.quality_weight,
        timeouts=_timeouts(value.timeouts),
        hedge=Hedge(value.hedge.delay_s, value.hedge.percentile, value.hedge.min_samples)
        if value.hedge is not None
        else None,
    )


def _timeouts(cfg: TimeoutsConfig | None) -> Timeouts | None:
    if cfg is None or (cfg.first_byte_s is None and cfg.stream_idle_s is None and not cfg.total_s):
        return None
    return Timeouts(cfg.first_byte_s, cfg.stream_idle_s, cfg.total_s)


def _auth(dialect: Dialect, key: str) -> tuple[bytes, bytes] | None:
    if not key:
        return None
    # The config rejects keys with spaces or control characters, so this is a safe value.
    raw = key.encode("latin-1", "replace")
    if dialect is Dialect.ANTHROPIC:
        return (b"x-api-key", raw)
    return (b"authorization", b"Bearer " + raw)


def _provider(p: ProviderConfig) -> Provider:
    dialect = Dialect(p.dialect)
    deployments = tuple(
        Deployment(
            provider=p.name,
            name=SINGLE_DEPLOYMENT if p.base_url is not None else d.name,
            origin=p.origin_of(d.base_url),
            path_prefix=p.path_prefix_of(d.base_url).encode("ascii"),
            auth_header=_auth(dialect, d.api_key.get_secret_value() if d.api_key else ""),
            weight=d.weight,
            region=d.region,
        )
        for d in p.endpoints()
    )
    model_info: dict[str, ModelInfo] = {
        model: with_overrides(lookup(model), entry.overrides())
        for model, entry in p.model_info.items()
    }
    return Provider(
        name=p.name,
        dialect=dialect,
        deployments=deployments,
        models=tuple(p.models),
        transformers=provider_transformers(
            p.transformers, p.model_transformers, where=f"providers.{p.name}"
        ),
        model_info=model_info,
        timeouts=_timeouts(p.timeouts),
        limited=p.resources is not None
        and (p.resources.max_requests is not None or p.resources.max_retries is not None),
    )
