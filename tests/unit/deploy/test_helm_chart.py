"""helm/junction: what can be checked without rendering (test_helm_render.py renders with
Helm's own engine; maintainers also run `helm lint` and `helm template`).

Chart.yaml's fields; values.yaml and the sidecar values file against values.schema.json, and
the schema's refusals; every `.Values.x.y` a template reads exists in the values; the
junction.yaml each values file carries loads as Junction loads it, with the JUNCTION_*
variables the chart's container sets.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from proxy.config import load_config
from proxy.config.model import ServerConfig

from .chart import SIDECAR_VALUES, chart_values, merge_values
from .support import CHART, load_yaml

VALUES_PATH = re.compile(r"\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _schema() -> dict[str, Any]:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def _errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema())
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)
    ]


def test_chart_yaml() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "junction" == CHART.name
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    import proxy

    assert chart["appVersion"] == proxy.__version__  # the default image tag is this release
    assert "dependencies" not in chart  # the optional Redis is the chart's own template


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(_schema())


@pytest.mark.parametrize("files", [(), (SIDECAR_VALUES,)], ids=["default", "sidecar"])
def test_values_validate(files: tuple[Any, ...]) -> None:
    assert _errors(chart_values(*files)) == []


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"mode": "daemonset"}, "mode"),
        ({"servce": {"port": 80}}, ""),  # a typo is refused, not ignored
        ({"service": {"port": 0}}, "service.port"),
        ({"drainTimeoutSeconds": 0}, "drainTimeoutSeconds"),
        ({"secrets": {"not-an-env-name": "x"}}, "secrets"),
        ({"externalRedis": {"url": "http://redis:6379"}}, "externalRedis.url"),
        ({"redis": {"enabled": True}, "externalRedis": {"url": "redis://r:6379/0"}}, ""),
        ({"mode": "sidecar", "sidecar": {"agent": {"enabled": True}}}, ""),  # no image
        ({"config": {"router": {"default": "a,b"}}}, ""),  # `providers` left out
    ],
)
def test_schema_refuses(override: dict[str, Any], where: str) -> None:
    values = chart_values()
    if "config" in override:
        values["config"] = override["config"]
    else:
        values = merge_values(values, override)
    errors = _errors(values)
    assert errors, f"accepted {override}"
    assert any(e.startswith(where) for e in errors), errors


def _template_paths() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((CHART / "templates").iterdir()):
        for match in VALUES_PATH.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1)[1:], set()).add(path.name)
    return found


@pytest.mark.parametrize("files", [(), (SIDECAR_VALUES,)], ids=["default", "sidecar"])
def test_every_value_a_template_reads_exists(files: tuple[Any, ...]) -> None:
    values = chart_values(*files)
    paths = _template_paths()
    assert len(paths) > 40  # the regex does find them
    missing = []
    for dotted, where in sorted(paths.items()):
        node: Any = values
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                missing.append(f"{dotted} ({', '.join(sorted(where))})")
                break
            node = node[key]
    assert missing == []


def _leaves(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def test_every_value_is_read_by_a_template() -> None:
    """A value no template reads would be a setting that silently does nothing. A map handed
    whole to toYaml (config, resources, ...) is read with everything in it."""
    paths = set(_template_paths())
    unread = [
        leaf
        for leaf in _leaves(chart_values())
        if not any(leaf == p or leaf.startswith(p + ".") for p in paths)
    ]
    assert unread == []


def _chart_env(values: dict[str, Any]) -> dict[str, str]:
    """The JUNCTION_* variables the chart's container sets (templates/_helpers.tpl)."""
    host = values["listen"]["sidecarHost"] if values["mode"] == "sidecar" else "0.0.0.0"
    return {
        "JUNCTION_LISTEN__HOST": host,
        "JUNCTION_LISTEN__PORT": str(values["listen"]["port"]),
        "JUNCTION_ADMIN__HOST": "0.0.0.0",
        "JUNCTION_ADMIN__PORT": str(values["admin"]["port"]),
        "JUNCTION_SERVER__DRAIN_TIMEOUT_S": str(values["drainTimeoutSeconds"]),
        "JUNCTION_SERVER__WORKERS": str(values["workers"]),
        "ANTHROPIC_API_KEY": "sk-test-0123456789abcdef",
    }


@pytest.mark.parametrize("files", [(), (SIDECAR_VALUES,)], ids=["default", "sidecar"])
def test_config_in_values_loads_with_the_charts_environment(
    files: tuple[Any, ...], tmp_path: Any
) -> None:
    import yaml

    values = chart_values(*files)
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(values["config"]), encoding="utf-8")
    cfg = load_config(path, env=_chart_env(values))
    assert cfg.listen.port == values["listen"]["port"]
    assert cfg.admin.port == values["admin"]["port"] and cfg.admin.host == "0.0.0.0"
    assert cfg.server.drain_timeout_s == values["drainTimeoutSeconds"]
    if values["mode"] == "sidecar":
        assert cfg.listen.host == "127.0.0.1"  # reachable only inside the pod


def test_defaults_match_junctions_own() -> None:
    values = chart_values()
    assert values["drainTimeoutSeconds"] == ServerConfig().drain_timeout_s
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["podSecurityContext"]["runAsNonRoot"] is True
