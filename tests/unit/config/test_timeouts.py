"""The `timeouts` blocks of providers and routes, and how the levels resolve."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.config.loader import load_config_dict
from proxy.errors import ConfigError
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.types import Timeouts


def _cfg(provider: dict[str, Any] | None = None, route: dict[str, Any] | None = None) -> Any:
    return load_config_dict(
        {
            "providers": [
                {"name": "p", "dialect": "anthropic", "base_url": "http://x", **(provider or {})}
            ],
            "router": {"default": {"targets": ["p,m"], **(route or {})}},
            "upstream": {"total_timeout_s": 900},
        },
        env={},
    )


def test_route_connect_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="connect_s is set per provider"):
        _cfg(route={"timeouts": {"connect_s": 1}})


def test_unknown_and_non_positive_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="timeouts"):
        _cfg(provider={"timeouts": {"first_byte": 1}})
    with pytest.raises(ConfigError, match="first_byte_s"):
        _cfg(provider={"timeouts": {"first_byte_s": 0}})


def test_levels_reach_the_runtime() -> None:
    cfg = _cfg(
        provider={"timeouts": {"connect_s": 2, "first_byte_s": 30, "total_s": 600}},
        route={"timeouts": {"stream_idle_s": 20}},
    )
    rt = RuntimeConfig.from_config(cfg)
    provider = rt.providers["p"]
    assert provider.timeouts == Timeouts(first_byte_s=30, stream_idle_s=None, total_s=600)
    assert provider.deployments[0].origin.connect_timeout_s == 2
    assert rt.routes["default"].timeouts == Timeouts(stream_idle_s=20)
    assert rt.total_timeout_s == 900


def test_no_timeouts_cost_nothing() -> None:
    rt = RuntimeConfig.from_config(_cfg())
    assert rt.providers["p"].timeouts is None and rt.routes["default"].timeouts is None
    assert rt.providers["p"].deployments[0].origin.connect_timeout_s is None
