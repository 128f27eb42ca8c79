"""Typed configuration: the model, loading from YAML + environment, rendering."""

from proxy.config.loader import (
    config_from_env,
    find_config_path,
    load_config,
    mask_secret,
    render_config,
)
from proxy.config.model import (
    AdminConfig,
    JunctionConfig,
    LimitsConfig,
    ListenConfig,
    LogConfig,
    ProviderConfig,
    RouterConfig,
    RouteRef,
    ServerConfig,
    TlsConfig,
    UpstreamConfig,
    parse_route_ref,
)

__all__ = [
    "AdminConfig",
    "JunctionConfig",
    "LimitsConfig",
    "ListenConfig",
    "LogConfig",
    "ProviderConfig",
    "RouteRef",
    "RouterConfig",
    "ServerConfig",
    "TlsConfig",
    "UpstreamConfig",
    "config_from_env",
    "find_config_path",
    "load_config",
    "mask_secret",
    "parse_route_ref",
    "render_config",
]
