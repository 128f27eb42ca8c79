"""The admin API beyond health: ``/metrics``, ``/admin/config``, ``/admin/routes``,
``/admin/usage`` and ``POST /admin/reload``, plus the optional bearer token.

`AdminApi` holds what the answers are read from (callables into the running worker), so the
admin listener's filter stays a dispatcher. Every document is built when asked for, never on
the request path of the proxy.

Secrets in ``/admin/config``: provider and deployment keys show only their last four
characters (as ``junction config`` does), downstream keys and the admin token not even that,
and any string holding the value of an environment variable the config file references as
``${NAME}`` (or of a ``JUNCTION_*`` override) is replaced by ``"****"`` — such values are how
secrets reach a config, and the model does not remember where a value came from.
"""

from __future__ import annotations

import contextlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from proxy.config.loader import mask_secret
from proxy.config.model import ENV_PREFIX

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig
    from proxy.routing.runtime import RuntimeConfig
    from proxy.routing.types import Route

MASK: Final = "****"
MIN_MASKED_VALUE_CHARS: Final = 4  # shorter env values would mask unrelated text
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
METRICS_PATH: Final = b"/metrics"
CONFIG_PATH: Final = b"/admin/config"
ROUTES_PATH: Final = b"/admin/routes"
USAGE_PATH: Final = b"/admin/usage"
RELOAD_PATH: Final = b"/admin/reload"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass
class AdminApi:
    """Sources of the answers; any left None answers 404."""

    token: bytes | None = None
    metrics: Callable[[], bytes] | None = None
    config: Callable[[], dict[str, Any]] | None = None
    routes: Callable[[], dict[str, Any]] | None = None
    usage: Callable[[], dict[str, object]] | None = None
    reload: Callable[[], dict[str, object]] | None = None

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """True without a configured token; else the request's bearer token must match
        (compared in constant time)."""
        if self.token is None:
            return True
        for k, v in headers:
            if k == b"authorization":
                scheme, _, given = v.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
                    return True
        return False

    def paths(self) -> list[str]:
        named = (
            (self.metrics, METRICS_PATH),
            (self.config, CONFIG_PATH),
            (self.routes, ROUTES_PATH),
            (self.usage, USAGE_PATH),
            (self.reload, RELOAD_PATH),
        )
        return [path.decode() for source, path in named if source is not None]


def config_doc(
    cfg: JunctionConfig, config_path: Path | None, env: Mapping[str, str]
) -> dict[str, Any]:
    """The effective config with secrets masked (see the module docstring)."""
    data: dict[str, Any] = cfg.model_dump(mode="json")
    for index, provider in enumerate(cfg.providers):
        shown = data["providers"][index]
        shown["api_key"] = mask_secret(provider.api_key)
        for number, deployment in enumerate(provider.deployments):
            shown["deployments"][number]["api_key"] = mask_secret(deployment.api_key)
    for key in data.get("auth", {}).get("keys", []):
        key["key"] = MASK
    if data.get("admin", {}).get("token") is not None:
        data["admin"]["token"] = MASK
    secrets = _referenced_values(config_path, env)
    return _mask_values(data, secrets)  # type: ignore[no-any-return]


def _referenced_values(config_path: Path | None, env: Mapping[str, str]) -> list[str]:
    names = {name for name in env if name.startswith(ENV_PREFIX)}
    if config_path is not None:
        # Unreadable now: the running config came from it; the other masking rules remain.
        with contextlib.suppress(OSError, UnicodeDecodeError):
            names.update(_REFERENCE.findall(config_path.read_text(encoding="utf-8")))
    values = {env[n] for n in names if len(env.get(n, "")) >= MIN_MASKED_VALUE_CHARS}
    return sorted(values, key=len, reverse=True)


def _mask_values(node: Any, secrets: list[str]) -> Any:
    if isinstance(node, str):
        return MASK if any(s in node for s in secrets) else node
    if isinstance(node, dict):
        return {k: _mask_values(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask_values(v, secrets) for v in node]
    return node


def _route_doc(route: Route, runtime: RuntimeConfig) -> dict[str, Any]:
    return {
        "strategy": route.strategy.value,
        "affinity": route.affinity,
        "targets": [f"{t.provider.name},{t.model}" for t in route.targets],
        "candidates": [c.key for c in runtime.selector.candidates(route)],
    }


def routes_doc(cfg: JunctionConfig, runtime: RuntimeConfig) -> dict[str, Any]:
    """The route table: each scenario's and alias's targets and candidates (deployments
    expanded), and the scenario rules as configured."""
    rules = cfg.router.model_dump(mode="json")
    for section in ("default", "aliases"):
        rules.pop(section, None)
    return {
        "routes": {name: _route_doc(r, runtime) for name, r in runtime.routes.items()},
        "aliases": {name: _route_doc(r, runtime) for name, r in runtime.aliases.items()},
        "router": rules,
    }
