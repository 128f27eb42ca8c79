"""The config as the data path uses it: resolved once per load, swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.dialects.transformers.registry import (
    ProviderTransformers,
    TransformerChain,
    provider_transformers,
)
from proxy.errors import ConfigError
from proxy.filters.api import Dialect
from proxy.upstream.api import Origin

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig, ProviderConfig


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    dialect: Dialect
    origin: Origin
    path_prefix: bytes  # prepended to the client's path (e.g. b"/api" for OpenRouter)
    auth_header: tuple[bytes, bytes] | None  # what we inject; the client's credentials never pass
    models: tuple[str, ...]
    transformers: ProviderTransformers

    def chain_for(self, model: str) -> TransformerChain | None:
        """The transformers for requests sending ``model``; None when there are none."""
        chain = self.transformers.chain(model)
        return chain if chain else None


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    providers: dict[str, Provider]
    default: Target
    by_model: dict[str, Target]  # a model a provider lists -> that provider (first one wins)
    access_log: bool
    response_header_timeout_s: float
    stream_idle_timeout_s: float

    @classmethod
    def from_config(cls, cfg: JunctionConfig) -> RuntimeConfig:
        providers = {p.name: _provider(p) for p in cfg.providers}
        name, _, model = cfg.router.default.partition(",")
        name, model = name.strip(), model.strip()
        if name not in providers:
            raise ConfigError(f"router.default: unknown provider {name!r}")
        by_model: dict[str, Target] = {}
        for p in providers.values():
            for m in p.models:
                by_model.setdefault(m, Target(p, m))
        return cls(
            providers=providers,
            default=Target(providers[name], model),
            by_model=by_model,
            access_log=cfg.log.access_log,
            response_header_timeout_s=cfg.upstream.response_header_timeout_s,
            stream_idle_timeout_s=cfg.upstream.stream_idle_timeout_s,
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

    def model_ids(self) -> list[tuple[str, str]]:
        """(provider, model) pairs Junction can route to, default first."""
        out = [(self.default.provider.name, self.default.model)]
        for p in self.providers.values():
            for m in p.models:
                if (p.name, m) not in out:
                    out.append((p.name, m))
        return out


def _provider(p: ProviderConfig) -> Provider:
    dialect = Dialect(p.dialect)
    key = p.api_key.get_secret_value() if p.api_key is not None else ""
    auth: tuple[bytes, bytes] | None = None
    if key:
        # The config rejects keys with spaces or control characters, so this is a safe value.
        raw = key.encode("latin-1", "replace")
        auth = (
            (b"x-api-key", raw)
            if dialect is Dialect.ANTHROPIC
            else (b"authorization", b"Bearer " + raw)
        )
    return Provider(
        name=p.name,
        dialect=dialect,
        origin=p.origin,
        path_prefix=p.path_prefix.encode("ascii"),
        auth_header=auth,
        models=tuple(p.models),
        transformers=provider_transformers(
            p.transformers, p.model_transformers, where=f"providers.{p.name}"
        ),
    )
