"""The typed configuration: one frozen pydantic model per section.

Every model forbids unknown keys (a typo must fail loudly, not be ignored) and is frozen, so a
loaded config can be shared by every component and compared on reload. `JunctionConfig` is a
pydantic-settings `BaseSettings` that reads nothing by itself: the loader decides where values
come from (file, an injected environment mapping, command-line overrides), so no code path
reads `os.environ` behind the caller's back.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from proxy.config.auth import AuthConfig, RateLimitsConfig
from proxy.config.cache import CacheConfig
from proxy.config.observability import MetricsConfig, TracingConfig
from proxy.config.problems import FieldProblems, Loc, format_loc
from proxy.config.redis import RedisConfig
from proxy.config.resilience import ResilienceConfig
from proxy.dialects.transformers.registry import TransformerConfigError, build_chain, supports
from proxy.filters.api import Dialect as DialectKind
from proxy.filters.custom import filter_hooks, route_problems
from proxy.protocol.limits import CodecLimits
from proxy.upstream.api import Origin, UpstreamSettings

ENV_PREFIX = "JUNCTION_"
ENV_NESTED_DELIMITER = "__"

Port = Annotated[int, Field(ge=0, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]
Dialect = Literal["anthropic", "openai"]
Http1Codec = Literal["auto", "httptools", "h11"]
Http2Codec = Literal["auto", "native", "h2"]
UpstreamProtocol = Literal["auto", "http1", "h2", "h2c"]
RouteStrategy = Literal["priority", "weighted", "least_outstanding", "latency", "cost"]
Fraction = Annotated[float, Field(ge=0, le=1)]

_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_HEADER_SAFE = re.compile(r"[\x21-\x7e]*")


# hide_input_in_errors: pydantic's own error text must never echo an api_key; the loader's
# messages come from errors(), which still carries inputs, and show them only for safe keys.
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TlsConfig(_Section):
    cert_file: str
    key_file: str

    @field_validator("cert_file", "key_file")
    @classmethod
    def _file_exists(cls, value: str) -> str:
        return _existing_file(value)


class ListenConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 3456
    tls: TlsConfig | None = None


class AdminConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 9901
    enabled: bool = True
    # When set, every admin request needs `Authorization: Bearer <token>` (docs/observability.md).
    token: SecretStr | None = None


class ServerConfig(_Section):
    loop: Literal["auto", "uvloop", "asyncio"] = "auto"  # auto: uvloop when importable
    http: Http1Codec = "auto"  # downstream HTTP/1.1 codec
    http2: Http2Codec = "auto"  # downstream HTTP/2 codec: auto = native, h2 = the reference
    workers: Annotated[int, Field(ge=1)] = 1
    drain_timeout_s: Seconds = 30.0
    max_connections: PositiveInt = 10_000
    tls_handshake_timeout_s: Seconds = 10.0


class LimitsConfig(_Section):
    max_header_bytes: PositiveInt = 64 * 1024
    max_header_count: PositiveInt = 100
    max_body_bytes: PositiveInt = 32 * 1024 * 1024
    request_header_timeout_s: Seconds = 10.0
    request_body_timeout_s: Seconds = 60.0
    keepalive_timeout_s: Seconds = 75.0
    # Per connection/stream: once this much is queued for a peer, stop reading the other side.
    write_buffer_high_bytes: PositiveInt = 256 * 1024
    h2_max_concurrent_streams: PositiveInt = 100
    h2_initial_stream_window: Annotated[int, Field(gt=0, le=2**31 - 1)] = 256 * 1024
    h2_initial_connection_window: Annotated[int, Field(gt=0, le=2**31 - 1)] = 1024 * 1024
    # Overload protection, per worker: past this many requests in flight, new API requests get
    # 503 overloaded_error at once while the running ones finish (docs/security.md).
    max_in_flight_requests: PositiveInt = 1024

    def codec_limits(self) -> CodecLimits:
        """The downstream codecs' bounds; knobs not in the config keep CodecLimits' defaults."""
        return CodecLimits(
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            max_body_bytes=self.max_body_bytes,
            h2_max_concurrent_streams=self.h2_max_concurrent_streams,
            h2_initial_stream_window=self.h2_initial_stream_window,
            h2_initial_connection_window=self.h2_initial_connection_window,
            h2_max_pending_send_bytes=self.write_buffer_high_bytes,
        )


class TimeoutsConfig(_Section):
    """Deadlines of one provider (``providers[].timeouts``) or one route (``router.<route>.
    timeouts``). Unset keys fall back: route, then provider, then ``upstream``."""

    connect_s: Seconds | None = None  # providers only: connections are pooled per provider
    first_byte_s: Seconds | None = None  # request sent -> the response's first byte
    stream_idle_s: Seconds | None = None  # no byte from the provider mid-response
    total_s: Seconds | None = None  # the whole request, attempts and backoffs included


class ResourcesConfig(_Section):
    """Envoy-style resource limits of one provider (``providers[].resources``); unset keys
    leave that resource unbounded here (the ``upstream`` section's pool limits still hold)."""

    max_connections: PositiveInt | None = None  # per deployment; over upstream's per-origin cap
    max_pending_requests: Annotated[int, Field(ge=0)] | None = None  # waiting for a connection
    max_requests: PositiveInt | None = None  # attempts in flight on the provider
    max_retries: Annotated[int, Field(ge=0)] | None = None  # retries and fallbacks in flight


class HedgeConfig(_Section):
    """Hedged streaming requests (``router.<route>.hedge``): when the first byte is late, the
    same request goes to the next candidate too, and the first to answer is kept."""

    delay_s: Seconds = 2.0  # how late is late; with `percentile`, until enough samples exist
    percentile: Annotated[float, Field(gt=0, lt=100)] | None = None  # e.g. 95: observed p95
    min_samples: PositiveInt = 20  # first-byte times of the candidate before `percentile` counts


class ReadBatchingConfig(_Section):
    """While a worker's core is nearly full, a streamed answer's later events are read in
    batches: after each read, a pause of half a ``window_s`` to a whole one
    (proxy/upstream/read_batch.py)."""

    enabled: bool = True
    window_s: Annotated[float, Field(gt=0, le=1)] = 0.04
    start_above: Annotated[float, Field(gt=0, le=1)] = 0.75  # share of one core: on from here
    stop_below: Fraction = 0.3  # ... and off below this, batched (server/overload.py)

    @model_validator(mode="after")
    def _check_thresholds(self) -> ReadBatchingConfig:
        if self.stop_below >= self.start_above:
            raise FieldProblems([(("stop_below",), "must be below start_above")])
        return self


class UpstreamConfig(_Section):
    connect_timeout_s: Seconds = 10.0
    max_connections_per_origin: PositiveInt = 256
    max_pending_requests: PositiveInt = 1024
    idle_timeout_s: Seconds = 60.0
    dns_ttl_s: Seconds = 30.0
    http1_codec: Http1Codec = "auto"
    response_header_timeout_s: Seconds = 600.0  # time to first response byte: LLMs are slow
    stream_idle_timeout_s: Seconds = 300.0  # no bytes either way in the middle of a response
    total_timeout_s: Seconds | None = None  # a whole request, retries included; None: no limit
    read_batching: ReadBatchingConfig = ReadBatchingConfig()

    def upstream_settings(self) -> UpstreamSettings:
        """The pool settings; knobs not in the config keep UpstreamSettings' defaults."""
        return UpstreamSettings(
            connect_timeout_s=self.connect_timeout_s,
            max_connections_per_origin=self.max_connections_per_origin,
            max_pending_requests=self.max_pending_requests,
            idle_timeout_s=self.idle_timeout_s,
            dns_ttl_s=self.dns_ttl_s,
            http1_codec=self.http1_codec,
            read_batch_window_s=self.read_batching.window_s,
        )


def _key_or_none(value: Any) -> Any:
    # Surrounding whitespace is a copy-paste or secret-file artefact (a trailing newline),
    # and `${OPENAI_API_KEY:-}` expands to "" when unset: that means "no key".
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _header_safe(value: SecretStr | None) -> SecretStr | None:
    # The key becomes a header value: CR/LF would split headers, and the message must not
    # echo the key.
    if value is not None and not _HEADER_SAFE.fullmatch(value.get_secret_value()):
        raise ValueError("must be printable ASCII without spaces or control characters")
    return value


class DeploymentConfig(_Section):
    """One endpoint of a provider: several keys, regions or hosts behind one provider name."""

    name: str  # "d0", "d1", ... by position when the file leaves it out
    base_url: str
    api_key: SecretStr | None = None  # None: the provider's api_key
    weight: Annotated[float, Field(gt=0)] = 1.0
    region: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        return _key_or_none(value)

    @field_validator("api_key")
    @classmethod
    def _header_safe_key(cls, value: SecretStr | None) -> SecretStr | None:
        return _header_safe(value)


class ModelInfoConfig(_Section):
    """Per-model metadata. Only the keys written override the built-in defaults
    (proxy.routing.catalog); `null` for a number means "unknown"."""

    context_window: PositiveInt | None = None
    max_output: PositiveInt | None = None
    tools: bool = True
    images: bool = True
    thinking: bool = True
    input_price: Annotated[float, Field(ge=0)] | None = None  # USD per million tokens
    output_price: Annotated[float, Field(ge=0)] | None = None
    cached_input_price: Annotated[float, Field(ge=0)] | None = None  # prompt-cache reads
    quality: Fraction | None = None

    def overrides(self) -> dict[str, Any]:
        """The fields the config sets, to lay over the built-in defaults."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Rendered as written: a default shown as if set would override the catalog on reload.
        data: dict[str, Any] = handler(self)
        return {name: value for name, value in data.items() if name in self.model_fields_set}

    # What is set matters, not only the values: `tools: true` overrides a catalog `false`.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelInfoConfig):
            return NotImplemented
        return self.overrides() == other.overrides()

    def __hash__(self) -> int:
        return hash(frozenset(self.overrides().items()))


class ProviderConfig(_Section):
    name: str
    dialect: Dialect
    # http or https; an optional path prefix (https://openrouter.ai/api) is prepended to every
    # request path. Stored without a trailing slash. Exactly one of base_url and deployments.
    base_url: str | None = None
    api_key: SecretStr | None = None
    models: tuple[Annotated[str, Field(min_length=1)], ...] = ()  # empty: any model
    protocol: UpstreamProtocol = "auto"
    ca_file: str | None = None
    # Transformer entries: "name" or [name, {options}] (proxy.dialects.transformers.registry).
    # A model's own entries run after the provider's when that model is sent.
    transformers: list[Any] = []
    model_transformers: dict[str, list[Any]] = {}
    deployments: tuple[DeploymentConfig, ...] = ()
    model_info: dict[str, ModelInfoConfig] = {}
    timeouts: TimeoutsConfig | None = None  # over the upstream section's
    resources: ResourcesConfig | None = None  # limits of what is in flight on this provider

    @model_validator(mode="before")
    @classmethod
    def _name_deployments(cls, data: Any) -> Any:
        # Unnamed deployments are named by position, so stats, logs and affinity can refer to
        # them; the rendered config then shows the names.
        if isinstance(data, dict) and isinstance(data.get("deployments"), list | tuple):
            named = []
            for index, item in enumerate(data["deployments"]):
                if isinstance(item, dict) and item.get("name") is None:
                    item = {**item, "name": f"d{index}"}
                named.append(item)
            data = {**data, "deployments": named}
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        return _key_or_none(value)

    @field_validator("api_key")
    @classmethod
    def _header_safe_key(cls, value: SecretStr | None) -> SecretStr | None:
        return _header_safe(value)

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: str | None) -> str | None:
        return None if value is None else _existing_file(value)

    def __hash__(self) -> int:
        # The transformer entries hold lists and mappings (YAML's shapes, shown as such by
        # check-config), which the generated frozen-model hash cannot take.
        return hash((type(self), *(_frozen(getattr(self, f)) for f in type(self).model_fields)))

    @model_validator(mode="after")
    def _check_endpoints(self) -> ProviderConfig:
        if self.base_url is None and not self.deployments:
            raise FieldProblems([(("base_url",), "required (or list deployments)")])
        if self.base_url is not None and self.deployments:
            raise FieldProblems(
                [(("deployments",), "not with base_url: give each deployment its base_url")]
            )
        first_seen: dict[str, int] = {}
        problems: list[tuple[Loc, str]] = []
        for index, deployment in enumerate(self.deployments):
            if deployment.name in first_seen:
                also = first_seen[deployment.name]
                problems.append(
                    (
                        ("deployments", index, "name"),
                        f"duplicate deployment name {deployment.name!r} (also deployments[{also}])",
                    )
                )
            first_seen.setdefault(deployment.name, index)
        if problems:
            raise FieldProblems(problems)
        return self

    @model_validator(mode="after")
    def _check_transformers(self) -> ProviderConfig:
        # Built once here so a bad name or option fails check-config, not the first request.
        problems: list[tuple[Loc, str]] = []
        problems += _transformer_problems(self.transformers, ("transformers",), self.dialect)
        for model, specs in self.model_transformers.items():
            problems += self._model_problems(("model_transformers", model), model)
            problems += _transformer_problems(specs, ("model_transformers", model), self.dialect)
        for model in self.model_info:
            problems += self._model_problems(("model_info", model), model)
        if problems:
            raise FieldProblems(problems)
        return self

    def _model_problems(self, loc: Loc, model: str) -> list[tuple[Loc, str]]:
        if self.allows_model(model):
            return []
        return [(loc, f"provider {self.name!r} has no model {model!r} ({self._models_text()})")]

    def _models_text(self) -> str:
        return f"models: {', '.join(self.models)}"

    def endpoints(self) -> tuple[DeploymentConfig, ...]:
        """The deployments, each with its key resolved: a plain base_url is one deployment
        named "default"; a deployment without api_key uses the provider's."""
        if self.base_url is not None:
            only = DeploymentConfig(name="default", base_url=self.base_url)
            return (only.model_copy(update={"api_key": self.api_key}),)
        return tuple(
            d if d.api_key is not None else d.model_copy(update={"api_key": self.api_key})
            for d in self.deployments
        )

    @property
    def _url(self) -> str:
        """The base URL of the first endpoint, which the single-endpoint helpers describe."""
        return self.base_url if self.base_url is not None else self.deployments[0].base_url

    @property
    def scheme(self) -> Literal["http", "https"]:
        return _scheme(self._url)

    @property
    def host(self) -> str:
        return urlsplit(self._url).hostname or ""

    @property
    def port(self) -> int:
        return _port(self._url)

    @property
    def path_prefix(self) -> str:
        """'' or a path like '/api' (no trailing slash) to put before each request path."""
        return _path_prefix(self._url)

    @property
    def origin(self) -> Origin:
        """Where the upstream client connects for this provider (its first deployment)."""
        return self.origin_of(self._url)

    @staticmethod
    def path_prefix_of(base_url: str) -> str:
        """The path prefix of one of this provider's base URLs ('' or '/api')."""
        return _path_prefix(base_url)

    def origin_of(self, base_url: str) -> Origin:
        """The Origin of one of this provider's base URLs (protocol and CA are per provider)."""
        return Origin(
            scheme=_scheme(base_url),
            host=urlsplit(base_url).hostname or "",
            port=_port(base_url),
            protocol=self.protocol,
            ca_file=self.ca_file,
            connect_timeout_s=self.timeouts.connect_s if self.timeouts else None,
            max_connections=self.resources.max_connections if self.resources else None,
            max_pending=self.resources.max_pending_requests if self.resources else None,
        )

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models


def _scheme(url: str) -> Literal["http", "https"]:
    return "https" if urlsplit(url).scheme.lower() == "https" else "http"


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is not None:
        return port
    return 443 if _scheme(url) == "https" else 80


def _path_prefix(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def _check_name(value: str) -> str:
    if not _PROVIDER_NAME.match(value):
        raise ValueError(f"must use only letters, digits, '_', '.' and '-' (got {value!r})")
    return value


class RouteRef(NamedTuple):
    """A "provider,model" reference, as claude-code-router writes routes."""

    provider: str
    model: str


def parse_route_ref(text: str) -> RouteRef:
    provider, comma, model = text.partition(",")
    provider, model = provider.strip(), model.strip()
    if not comma or not provider or not model:
        raise ValueError(f"must be 'provider,model' (got {text!r})")
    return RouteRef(provider, model)


def _pair_refs(items: list[Any] | tuple[Any, ...]) -> list[Any]:
    """YAML's flow lists split on commas, so ``[ollama,qwen2.5-coder, p,m]`` arrives as four
    items: two neighbours without a comma are joined back into one "provider,model"."""
    out: list[Any] = []
    index = 0
    while index < len(items):
        item = items[index]
        after = items[index + 1] if index + 1 < len(items) else None
        if _bare(item) and _bare(after):
            out.append(f"{item},{after}")
            index += 2
        else:
            out.append(item)
            index += 1
    return out


def _bare(item: Any) -> bool:
    """A string without a comma: half of a "provider,model" that YAML split."""
    return isinstance(item, str) and "," not in item


class RouteConfig(_Section):
    """A route: its targets in order and how to choose among them.

    Written three ways, all normalised to this model: ``"provider,model"``, a list of them
    (primary then fallbacks), or this mapping. The form written is kept, so check-config
    renders the route as it was written and error paths point at what the user wrote
    (``router.default``, ``router.background[1]``, ``router.think.targets[1]``).
    """

    targets: tuple[str, ...] = Field(min_length=1)
    strategy: RouteStrategy = "priority"
    affinity: bool = False  # keep a session on the same deployment while it can serve
    quality_floor: Fraction | None = None  # cost: candidates below it are rejected
    cost_weight: Annotated[float, Field(ge=0)] = 1.0
    latency_weight: Annotated[float, Field(ge=0)] = 0.0
    quality_weight: Annotated[float, Field(ge=0)] = 0.0
    timeouts: TimeoutsConfig | None = None  # over the providers' and the upstream section's
    hedge: HedgeConfig | None = None  # streaming requests only
    _form: Literal["string", "list", "object"] = PrivateAttr("object")

    @field_validator("timeouts")
    @classmethod
    def _no_route_connect(cls, value: TimeoutsConfig | None) -> TimeoutsConfig | None:
        if value is not None and value.connect_s is not None:
            raise ValueError(
                "connect_s is set per provider (providers[].timeouts.connect_s): connections"
                " are pooled per provider and shared by every route"
            )
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _from_any_form(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            # A JUNCTION_ROUTER__* variable holding JSON (no "provider,model" starts so).
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError("must be 'provider,model' or valid JSON") from None
        if isinstance(value, str):
            parse_route_ref(value)  # reported at the route's own key
            route = handler({"targets": [value]})
            route._form = "string"
            return route
        if isinstance(value, list | tuple):
            targets = _pair_refs(value)
            problems: list[tuple[Loc, str]] = []
            for index, item in enumerate(targets):
                if not isinstance(item, str):
                    problems.append(((index,), "must be a string 'provider,model'"))
                    continue
                try:
                    parse_route_ref(item)
                except ValueError as error:
                    problems.append(((index,), str(error)))
            if not targets:
                raise ValueError("must not be empty")
            if problems:
                raise FieldProblems(problems)
            route = handler({"targets": targets})
            route._form = "list"
            return route
        return handler(value)

    @field_validator("targets", mode="before")
    @classmethod
    def _pair_targets(cls, value: Any) -> Any:
        return _pair_refs(value) if isinstance(value, list | tuple) else value

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems: list[tuple[Loc, str]] = []
        for index, item in enumerate(value):
            try:
                parse_route_ref(item)
            except ValueError as error:
                problems.append(((index,), str(error)))
        if problems:
            raise FieldProblems(problems)
        return value

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        if self._form == "string":
            return self.targets[0]
        if self._form == "list":
            return list(self.targets)
        out = handler(self)
        if isinstance(out, dict):
            for key in ("timeouts", "hedge"):  # optional blocks: rendered only when set
                if out.get(key) is None:
                    out.pop(key, None)
        return out

    # A route written as a plain string compares equal to that string, so code written when
    # `router.default` was a string (`cfg.router.default == "p,m"`) keeps working.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self._form == "string" and self.targets[0] == other
        return super().__eq__(other)

    def __hash__(self) -> int:
        if self._form == "string":
            return hash(self.targets[0])
        return hash((type(self), *(getattr(self, f) for f in type(self).model_fields)))

    def __str__(self) -> str:
        return ", ".join(self.targets) if self._form != "object" else repr(self)

    @property
    def refs(self) -> tuple[RouteRef, ...]:
        return tuple(parse_route_ref(target) for target in self.targets)

    def target_loc(self, index: int) -> Loc:
        """Where target `index` was written, relative to the route's key."""
        if self._form == "string":
            return ()
        return (index,) if self._form == "list" else ("targets", index)


# "package.module:function" or "package.module.function".
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")


def load_callable(path: str) -> Callable[..., Any]:
    """The function named by an import path (``pkg.mod:func`` or ``pkg.mod.func``).
    Raises ValueError with a message fit for a config error."""
    if not _IMPORT_PATH.match(path) or (":" not in path and "." not in path):
        raise ValueError(f"must be an import path 'package.module:function' (got {path!r})")
    module_name, colon, attribute = path.partition(":")
    if not colon:
        module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {path!r} ({type(error).__name__}: {error})") from None
    except Exception as error:  # the user's module raised while importing
        raise ValueError(f"importing {path!r} failed ({type(error).__name__}: {error})") from None
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if found is None:
        raise ValueError(f"cannot import {path!r} (no {attribute!r} in {module_name})")
    if not callable(found):
        raise ValueError(f"{path!r} is not callable (got a {type(found).__name__})")
    return found  # type: ignore[no-any-return]


SCENARIOS = (
    "background",
    "think",
    "long_context",
    "web_search",
    "image",
    "title",
    "compact",
    "subagent",
    "subagent_readonly",
)


class ClaudeCodeSignals(_Section):
    """Switches for the Claude Code call types recognised by shape (docs/routing.md)."""

    title: bool = True  # tools [] + output_config.format json_schema -> title, else background
    compact: bool = True  # the TEXT ONLY compaction turn -> compact, else long_context
    subagent: bool = True  # cc_is_subagent=true -> subagent_readonly / subagent
    haiku_tier: bool = True  # haiku names, Junction's aliases, max_tokens 32000 -> background


class RouterConfig(_Section):
    # NoDecode: JUNCTION_ROUTER__DEFAULT=p,m is a plain string, not JSON (RouteConfig decodes).
    default: Annotated[RouteConfig, NoDecode]
    background: RouteConfig | None = None
    think: RouteConfig | None = None
    long_context: RouteConfig | None = None
    web_search: RouteConfig | None = None
    image: RouteConfig | None = None
    title: RouteConfig | None = None  # Claude Code's session-title call
    compact: RouteConfig | None = None  # Claude Code's /compact turn
    subagent: RouteConfig | None = None  # Claude Code subagents (cc_is_subagent=true)
    subagent_readonly: RouteConfig | None = None  # ... with no file-writing tools (Explore)
    claude_code: ClaudeCodeSignals = ClaudeCodeSignals()
    long_context_threshold: PositiveInt = 60_000
    # Searched (case-insensitive) in the requested model; None: claude-code-router's rule.
    background_pattern: str | None = None
    subagent_tag: bool = True  # honour <CCR-SUBAGENT-MODEL>provider,model</CCR-SUBAGENT-MODEL>
    aliases: dict[str, RouteConfig] = {}  # model names clients send -> routes
    custom: str | None = None  # import path of a custom router function
    custom_budget_ms: Annotated[float, Field(gt=0)] = 5.0

    @field_validator("background_pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as error:
                raise ValueError(f"invalid regular expression ({error})") from None
        return value

    @field_validator("aliases")
    @classmethod
    def _check_aliases(cls, value: dict[str, RouteConfig]) -> dict[str, RouteConfig]:
        problems: list[tuple[Loc, str]] = []
        for name in value:
            if not name.strip():
                problems.append(((name,), "an alias must not be empty"))
            elif "," in name:
                problems.append(((name,), "an alias must not contain ',' (that is provider,model)"))
        if problems:
            raise FieldProblems(problems)
        return value

    @field_validator("custom")
    @classmethod
    def _check_custom(cls, value: str | None) -> str | None:
        # Imported now, so check-config catches a typo, not the first request.
        if value is not None:
            load_callable(value)
        return value

    def __hash__(self) -> int:
        return hash((type(self), *(_frozen(getattr(self, f)) for f in type(self).model_fields)))

    @property
    def default_route(self) -> RouteRef:
        return self.default.refs[0]

    def scenario_routes(self) -> dict[str, RouteConfig]:
        """The "default" route and each scenario that has one, in the config's order."""
        routes = {"default": self.default}
        for name in SCENARIOS:
            route: RouteConfig | None = getattr(self, name)
            if route is not None:
                routes[name] = route
        return routes

    def all_routes(self) -> Iterator[tuple[Loc, RouteConfig]]:
        """Every route with its key path under `router`: scenarios, then aliases."""
        for name, route in self.scenario_routes().items():
            yield (name,), route
        for alias, route in self.aliases.items():
            yield ("aliases", alias), route


class FilterConfig(_Section):
    """A custom filter (docs/extending.md): a class named by import path; each request gets
    a fresh instance, ``cls(**options)``."""

    use: str  # "package.module:Class" or "package.module.Class"
    options: dict[str, Any] = {}
    routes: tuple[str, ...] | None = None  # API paths such as /v1/messages; None: all of them

    @field_validator("use")
    @classmethod
    def _check_use(cls, value: str) -> str:
        # Imported now, so check-config catches a typo, not the first request.
        found = load_callable(value)
        if not isinstance(found, type):
            raise ValueError(f"{value!r} is not a class (got a {type(found).__name__})")
        filter_hooks(found)
        return value

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("must not be empty (leave it out for every proxy route)")
        problems = route_problems(value or ())
        if problems:
            raise FieldProblems([((index,), message) for index, message in problems])
        return value

    @model_validator(mode="after")
    def _check_options(self) -> FilterConfig:
        # Built once now with its options, so a misspelt or bad option fails check-config.
        try:
            load_callable(self.use)(**self.options)
        except Exception as error:
            raise FieldProblems(
                [(("options",), f"{self.use} rejected them ({type(error).__name__}: {error})")]
            ) from None
        return self

    def __hash__(self) -> int:
        return hash((type(self), *(_frozen(getattr(self, f)) for f in type(self).model_fields)))


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    format: Literal["json", "text"] = "json"  # access log and application log lines
    access_log_file: str | None = None  # appended to; null: standard output

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class JunctionConfig(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
    )

    listen: ListenConfig = Field(default_factory=ListenConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    providers: tuple[ProviderConfig, ...] = Field(default=(), validate_default=True)
    router: RouterConfig
    filters: tuple[FilterConfig, ...] = ()  # custom filters, in request order
    log: LogConfig = Field(default_factory=LogConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)  # downstream API keys
    # Per model / per provider request, token, concurrency and spend limits (`limits` is
    # taken: the codecs' size and time bounds). proxy/config/auth.py, docs/limits.md.
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    redis: RedisConfig | None = None  # shared limits; proxy/config/redis.py, docs/limits.md
    cache: CacheConfig | None = None  # response cache; proxy/config/cache.py, docs/cache.md
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)  # docs/observability.md
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only explicit values: the loader layers file, injected env and overrides itself.
        return (init_settings,)

    @field_validator("providers")
    @classmethod
    def _check_providers(cls, value: tuple[ProviderConfig, ...]) -> tuple[ProviderConfig, ...]:
        if not value:
            raise ValueError("at least one provider is required")
        first_seen: dict[str, int] = {}
        problems: list[tuple[Loc, str]] = []
        for index, provider in enumerate(value):
            if provider.name in first_seen:
                problems.append(
                    (
                        (index, "name"),
                        f"duplicate provider name {provider.name!r} "
                        f"(also providers[{first_seen[provider.name]}])",
                    )
                )
            else:
                first_seen[provider.name] = index
        if problems:
            raise FieldProblems(problems)
        return value

    @model_validator(mode="after")
    def _check_routes(self) -> JunctionConfig:
        # Every "provider,model" of every route, at the key path where it was written.
        problems: list[tuple[Loc, str]] = []
        for loc, route in self.router.all_routes():
            for index, ref in enumerate(route.refs):
                problem = self._route_problem(ref)
                if problem:
                    problems.append((("router", *loc, *route.target_loc(index)), problem))
        if self.cache is not None:
            problems += self.cache.route_problems(set(self.router.aliases))
        if problems:
            raise FieldProblems(problems)
        return self

    def _route_problem(self, route: RouteRef) -> str | None:
        names = [p.name for p in self.providers]
        if route.provider not in names:
            return f"unknown provider {route.provider!r} (providers: {', '.join(names)})"
        provider = self.provider(route.provider)
        if not provider.allows_model(route.model):
            return (
                f"provider {provider.name!r} has no model {route.model!r} "
                f"(models: {', '.join(provider.models)})"
            )
        return None

    def provider(self, name: str) -> ProviderConfig:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(f"no provider named {name!r}")


def _frozen(value: Any) -> Any:
    """A hashable stand-in for plain data: lists become tuples, mappings sets of pairs."""
    if isinstance(value, dict):
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


def _transformer_problems(specs: list[Any], loc: Loc, dialect: str) -> list[tuple[Loc, str]]:
    try:
        chain = build_chain(specs, where=format_loc(loc))
    except TransformerConfigError as error:
        return [((*loc, index), message) for index, message in error.problems]
    return [
        ((*loc, index), f"{t.name!r} does not work with {dialect} providers")
        for index, t in enumerate(chain)
        if not supports(t, DialectKind(dialect))
    ]


def _existing_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError(f"file not found: {value}")
    return value


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError:
        raise ValueError(f"not a valid URL (got {value!r})") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials; use api_key")
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"must start with http:// or https:// (got {value!r})")
    if not parts.hostname:
        raise ValueError(f"must name a host (got {value!r})")
    if parts.query or parts.fragment:
        raise ValueError(f"must not have a query or fragment (got {value!r})")
    if port == 0:
        raise ValueError(f"port must be 1-65535 (got {value!r})")
    return value.rstrip("/")
