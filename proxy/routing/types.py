"""The routing data model as the data path sees it: frozen, slotted, built once per config.

A `Route` (a scenario's or an alias's value) lists `Target`s, ``provider,model`` pairs. Each
target expands to one `Candidate` per `Deployment` of its provider (an endpoint: base URL, key,
weight, region); `proxy.routing.selection` filters candidates by what a request needs
(`Requirements`) and orders them by the route's `Strategy` into a `Selection`. `ModelInfo` is
what Junction knows of a model (built-in defaults in `proxy.routing.catalog`, overridden per
provider in the config). None of these types does I/O or holds mutable state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.dialects.transformers.registry import ProviderTransformers, TransformerChain
from proxy.filters.api import Dialect
from proxy.upstream.api import Origin

# The name of the one deployment of a provider configured with a plain `base_url`.
SINGLE_DEPLOYMENT = "default"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a model can do and costs. None means unknown: no filtering on that field."""

    context_window: int | None  # tokens, input and output together
    max_output: int | None  # tokens
    tools: bool
    images: bool
    thinking: bool
    input_price: float | None  # USD per million input tokens
    output_price: float | None  # USD per million output tokens
    quality: float | None  # 0..1, a rough ranking for the cost strategy's quality floor
    # USD per million input tokens read from the provider's prompt cache; None: input_price.
    cached_input_price: float | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    """One endpoint of a provider: where to connect and with which key."""

    provider: str
    name: str
    origin: Origin
    path_prefix: bytes  # prepended to the client's path (e.g. b"/api" for OpenRouter)
    # What we inject (the client's credentials never pass). Not in repr: it holds the key.
    auth_header: tuple[bytes, bytes] | None = field(repr=False)
    weight: float
    region: str | None


# eq=False: providers compare and hash by identity. A provider holds mappings (transformer
# chains, model metadata) that a generated hash cannot take, and two loads of one config are
# different runtimes anyway.
@dataclass(frozen=True, slots=True)
class Timeouts:
    """A provider's or a route's own deadlines (seconds); None: the next level decides
    (route, then provider, then the upstream section)."""

    first_byte_s: float | None = None
    stream_idle_s: float | None = None
    total_s: float | None = None


@dataclass(frozen=True, slots=True)
class Hedge:
    """A route's hedging policy (proxy/filters/hedge.py)."""

    delay_s: float = 2.0
    percentile: float | None = None
    min_samples: int = 20


@dataclass(frozen=True, slots=True, eq=False)
class Provider:
    name: str
    dialect: Dialect
    deployments: tuple[Deployment, ...]  # at least one; a plain base_url gives one "default"
    models: tuple[str, ...]
    transformers: ProviderTransformers
    model_info: Mapping[str, ModelInfo] = field(default_factory=dict)  # configured models only
    timeouts: Timeouts | None = None
    limited: bool = False  # requests or retries in flight are capped (RuntimeConfig.resources)

    # The first deployment's endpoint: what a caller that does not select deployments uses.
    @property
    def origin(self) -> Origin:
        return self.deployments[0].origin

    @property
    def path_prefix(self) -> bytes:
        return self.deployments[0].path_prefix

    @property
    def auth_header(self) -> tuple[bytes, bytes] | None:
        return self.deployments[0].auth_header

    def chain_for(self, model: str) -> TransformerChain | None:
        """The transformers for requests sending ``model``; None when there are none."""
        chain = self.transformers.chain(model)
        return chain if chain else None


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str

    @property
    def ref(self) -> str:
        """``provider,model``, as routes are written."""
        return f"{self.provider.name},{self.model}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One deployment serving one model: the unit that selection ranks and stats track."""

    provider: Provider
    deployment: Deployment
    model: str
    info: ModelInfo
    # "provider/deployment/model": stable across config reloads, so live stats carry over.
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        key = f"{self.provider.name}/{self.deployment.name}/{self.model}"
        object.__setattr__(self, "key", key)

    @property
    def ref(self) -> str:
        return f"{self.provider.name},{self.model}"


class Strategy(enum.Enum):
    PRIORITY = "priority"  # config order
    WEIGHTED = "weighted"  # smooth weighted round robin over deployment weights
    LEAST_OUTSTANDING = "least_outstanding"  # power of two random choices
    LATENCY = "latency"  # lowest EWMA of time to first byte
    COST = "cost"  # cheapest above a quality floor, with latency and quality weights


@dataclass(frozen=True, slots=True)
class Route:
    """A scenario's or an alias's value: targets in order and how to choose among them."""

    name: str
    targets: tuple[Target, ...]
    strategy: Strategy = Strategy.PRIORITY
    affinity: bool = False
    quality_floor: float | None = None
    cost_weight: float = 1.0
    latency_weight: float = 0.0
    quality_weight: float = 0.0
    timeouts: Timeouts | None = None
    hedge: Hedge | None = None


@dataclass(slots=True, init=False)
class Requirements:
    """What one request needs from a model."""

    tokens: int  # estimated input tokens
    max_tokens: int  # the output the client allows
    tools: bool = False
    images: bool = False
    thinking: bool = False

    def __init__(
        self,
        tokens: int,
        max_tokens: int,
        tools: bool = False,
        images: bool = False,
        thinking: bool = False,
    ) -> None:
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.tools = tools
        self.images = images
        self.thinking = thinking


@dataclass(slots=True, init=False)
class Selection:
    """``ordered[0]`` is the choice and the rest are fallbacks in order; ``rejected`` names
    every candidate that could not serve the request, with a reason a person can read."""

    ordered: tuple[Candidate, ...]
    rejected: tuple[tuple[Candidate, str], ...]

    def __init__(
        self, ordered: tuple[Candidate, ...], rejected: tuple[tuple[Candidate, str], ...]
    ) -> None:
        self.ordered = ordered
        self.rejected = rejected

    @property
    def choice(self) -> Candidate | None:
        return self.ordered[0] if self.ordered else None
