"""The typed configuration: one frozen pydantic model per section.

Every model forbids unknown keys (a typo must fail loudly, not be ignored) and is frozen, so a
loaded config can be shared by every component and compared on reload. `JunctionConfig` is a
pydantic-settings `BaseSettings` that reads nothing by itself: the loader decides where values
come from (file, an injected environment mapping, command-line overrides), so no code path
reads `os.environ` behind the caller's back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from proxy.config.problems import FieldProblems, Loc, format_loc
from proxy.dialects.transformers.registry import TransformerConfigError, build_chain, supports
from proxy.filters.api import Dialect as DialectKind
from proxy.protocol.limits import CodecLimits
from proxy.upstream.api import Origin, UpstreamSettings

ENV_PREFIX = "JUNCTION_"
ENV_NESTED_DELIMITER = "__"

Port = Annotated[int, Field(ge=0, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]
Dialect = Literal["anthropic", "openai"]
Http1Codec = Literal["auto", "httptools", "h11"]
UpstreamProtocol = Literal["auto", "http1", "h2", "h2c"]

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


class ServerConfig(_Section):
    loop: Literal["auto", "uvloop", "asyncio"] = "auto"  # auto: uvloop when importable
    http: Http1Codec = "auto"  # downstream HTTP/1.1 codec
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


class UpstreamConfig(_Section):
    connect_timeout_s: Seconds = 10.0
    max_connections_per_origin: PositiveInt = 256
    max_pending_requests: PositiveInt = 1024
    idle_timeout_s: Seconds = 60.0
    dns_ttl_s: Seconds = 30.0
    http1_codec: Http1Codec = "auto"
    response_header_timeout_s: Seconds = 600.0  # time to first response byte: LLMs are slow
    stream_idle_timeout_s: Seconds = 300.0  # no bytes either way in the middle of a response

    def upstream_settings(self) -> UpstreamSettings:
        """The pool settings; knobs not in the config keep UpstreamSettings' defaults."""
        return UpstreamSettings(
            connect_timeout_s=self.connect_timeout_s,
            max_connections_per_origin=self.max_connections_per_origin,
            max_pending_requests=self.max_pending_requests,
            idle_timeout_s=self.idle_timeout_s,
            dns_ttl_s=self.dns_ttl_s,
            http1_codec=self.http1_codec,
        )


class ProviderConfig(_Section):
    name: str
    dialect: Dialect
    # http or https; an optional path prefix (https://openrouter.ai/api) is prepended to every
    # request path. Stored without a trailing slash.
    base_url: str
    api_key: SecretStr | None = None
    models: tuple[Annotated[str, Field(min_length=1)], ...] = ()  # empty: any model
    protocol: UpstreamProtocol = "auto"
    ca_file: str | None = None
    # Transformer entries: "name" or [name, {options}] (proxy.dialects.transformers.registry).
    # A model's own entries run after the provider's when that model is sent.
    transformers: list[Any] = []
    model_transformers: dict[str, list[Any]] = {}

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PROVIDER_NAME.match(value):
            raise ValueError(f"must use only letters, digits, '_', '.' and '-' (got {value!r})")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        # Surrounding whitespace is a copy-paste or secret-file artefact (a trailing newline),
        # and `${OPENAI_API_KEY:-}` expands to "" when unset: that means "no key".
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("api_key")
    @classmethod
    def _header_safe_key(cls, value: SecretStr | None) -> SecretStr | None:
        # The key becomes a header value: CR/LF would split headers, and the message must not
        # echo the key.
        if value is not None and not _HEADER_SAFE.fullmatch(value.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces or control characters")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: str | None) -> str | None:
        return None if value is None else _existing_file(value)

    def __hash__(self) -> int:
        # The transformer entries hold lists and mappings (YAML's shapes, shown as such by
        # check-config), which the generated frozen-model hash cannot take.
        return hash((type(self), *(_frozen(getattr(self, f)) for f in type(self).model_fields)))

    @model_validator(mode="after")
    def _check_transformers(self) -> ProviderConfig:
        # Built once here so a bad name or option fails check-config, not the first request.
        problems: list[tuple[Loc, str]] = []
        problems += _transformer_problems(self.transformers, ("transformers",), self.dialect)
        for model, specs in self.model_transformers.items():
            if self.models and model not in self.models:
                problems.append(
                    (
                        ("model_transformers", model),
                        f"provider {self.name!r} has no model {model!r} "
                        f"(models: {', '.join(self.models)})",
                    )
                )
            problems += _transformer_problems(specs, ("model_transformers", model), self.dialect)
        if problems:
            raise FieldProblems(problems)
        return self

    @property
    def scheme(self) -> Literal["http", "https"]:
        return "https" if urlsplit(self.base_url).scheme.lower() == "https" else "http"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        port = urlsplit(self.base_url).port
        if port is not None:
            return port
        return 443 if self.scheme == "https" else 80

    @property
    def path_prefix(self) -> str:
        """'' or a path like '/api' (no trailing slash) to put before each request path."""
        return urlsplit(self.base_url).path.rstrip("/")

    @property
    def origin(self) -> Origin:
        """Where the upstream client connects for this provider."""
        return Origin(
            scheme=self.scheme,
            host=self.host,
            port=self.port,
            protocol=self.protocol,
            ca_file=self.ca_file,
        )

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models


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


class RouterConfig(_Section):
    default: str

    @field_validator("default")
    @classmethod
    def _check_default(cls, value: str) -> str:
        parse_route_ref(value)
        return value

    @property
    def default_route(self) -> RouteRef:
        return parse_route_ref(self.default)


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True

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
    log: LogConfig = Field(default_factory=LogConfig)

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
        problem = self._route_problem(self.router.default_route)
        if problem:
            raise FieldProblems([(("router", "default"), problem)])
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
