"""Providers, candidates and configs for the resilience tests."""

from __future__ import annotations

from typing import Any

from proxy.config.resilience import BreakerConfig, OutlierConfig, ResilienceConfig
from proxy.dialects.transformers.registry import provider_transformers
from proxy.filters.api import Dialect
from proxy.routing.catalog import UNKNOWN
from proxy.routing.types import Candidate, Deployment, Provider
from proxy.upstream.api import Origin


def provider(name: str, deployments: int | tuple[str, ...] = 1) -> Provider:
    names = (
        deployments
        if isinstance(deployments, tuple)
        else tuple(f"d{i}" for i in range(deployments))
    )
    return Provider(
        name=name,
        dialect=Dialect.OPENAI,
        deployments=tuple(
            Deployment(
                provider=name,
                name=d,
                origin=Origin("http", f"{name}-{d}.test", 80),
                path_prefix=b"",
                auth_header=None,
                weight=1.0,
                region=None,
            )
            for d in names
        ),
        models=(),
        transformers=provider_transformers([], {}, where=f"providers.{name}"),
    )


def candidate(p: Provider, model: str = "m", deployment: int = 0) -> Candidate:
    return Candidate(p, p.deployments[deployment], model, UNKNOWN)


def breaker_config(**overrides: Any) -> BreakerConfig:
    return BreakerConfig(**overrides)


def outlier_config(**overrides: Any) -> OutlierConfig:
    return OutlierConfig(**overrides)


def resilience(
    breaker: dict[str, Any] | None = None, outlier: dict[str, Any] | None = None
) -> ResilienceConfig:
    return ResilienceConfig(
        breaker=BreakerConfig(**(breaker or {})), outlier=OutlierConfig(**(outlier or {}))
    )
