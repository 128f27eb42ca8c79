"""helm/junction rendered by Helm's own engine, for the default and the sidecar values and for
the optional parts switched on.

The renderer is `helm-python-sdk` (a dev dependency on Linux x86-64): Helm's Go library as a
prebuilt shared library, rendering offline as `helm template` does, and Helm's lint. Where it
cannot be installed the tests skip; `helm lint` / `helm template` (docs/deploy.md) are then the
maintainers' step. The rendered manifests are checked for how their parts fit together, and the
gateway's container is run: Junction started with the rendered args, environment and
ConfigMap, its probes asked on the rendered paths.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import load_config
from tests.support.ports import free_ports

from .chart import SIDECAR_VALUES, chart_values, merge_values
from .support import CHART, Child, child_env, http_status, image_command, load_yaml

if importlib.util.find_spec("helm_python") is None:
    pytest.skip(
        "helm-python-sdk (Helm's engine) is not installed here: run `helm lint helm/junction` "
        "and `helm template` as docs/deploy.md says",
        allow_module_level=True,
    )

import helm_python as helm

RELEASE = "rel"
NAMESPACE = "ns"
FULLNAME = "rel-junction"
TEST_KEY = "sk-test-0123456789abcdef"

CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "sidecar": load_yaml(SIDECAR_VALUES),
    "sidecar-classic": merge_values(load_yaml(SIDECAR_VALUES), {"sidecar": {"native": False}}),
    "sidecar-no-agent": {"mode": "sidecar"},
    "gateway-all-on": {
        "secrets": {"ANTHROPIC_API_KEY": TEST_KEY},
        "existingSecret": "team-keys",
        "redis": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "autoscaling": {"inflight": {"enabled": True}},
        "extraEnv": [{"name": "JUNCTION_LOG__LEVEL", "value": "debug"}],
    },
    "gateway-external-redis": {
        "externalRedis": {"url": "redis://:pw@redis.example:6379/0"},
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "preStopSleepSeconds": 0,
    },
}


def render(override: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(override)
        out = chart.render(override, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return {path.removeprefix("junction/templates/"): text for path, text in out.items()}


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs = [
        doc
        for path, text in rendered.items()
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    kinds: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        name = doc["metadata"]["name"]
        assert name not in kinds.get(doc["kind"], {}), f"two {doc['kind']} named {name}"
        kinds.setdefault(doc["kind"], {})[name] = doc
    return kinds


def junction_container(pod: dict[str, Any]) -> dict[str, Any]:
    both = [*pod.get("initContainers", []), *pod["containers"]]
    found = [c for c in both if c["name"] == "junction"]
    assert len(found) == 1
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def check_pod(pod: dict[str, Any], values: dict[str, Any], kinds: dict[str, Any]) -> None:
    """What every pod running Junction needs, gateway or sidecar."""
    spec = pod["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == (
        values["preStopSleepSeconds"]
        + values["drainTimeoutSeconds"]
        + values["terminationMarginSeconds"]
    )
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    c = junction_container(spec)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": values["listen"]["port"], "admin": values["admin"]["port"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts) == {"/etc/junction", "/tmp"} and set(mounts.values()) <= set(volumes)
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"] == values["tmpSizeLimit"]
    assert volumes[mounts["/etc/junction"]]["configMap"]["name"] in kinds["ConfigMap"]
    assert c["image"] == f"junction:{load_yaml(CHART / 'Chart.yaml')['appVersion']}"
    env = env_of(c)
    assert env["JUNCTION_SERVER__DRAIN_TIMEOUT_S"] == str(values["drainTimeoutSeconds"])
    assert env["JUNCTION_ADMIN__HOST"] == "0.0.0.0"  # the kubelet probes the pod IP
    if values["preStopSleepSeconds"]:
        assert c["lifecycle"]["preStop"]["exec"]["command"] == [
            "sleep",
            str(values["preStopSleepSeconds"]),
        ]
    else:
        assert "lifecycle" not in c
    for source in c.get("envFrom", []):
        name = source["secretRef"]["name"]
        assert name in kinds.get("Secret", {}) or name == values["existingSecret"]
    pod_labels = pod["spec"]["template"]["metadata"]["labels"]
    assert pod["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def check_gateway(kinds: dict[str, Any], values: dict[str, Any]) -> None:
    gateway = kinds["Deployment"][FULLNAME]
    check_pod(gateway, values, kinds)
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    service = kinds["Service"][FULLNAME]
    assert selects(service["spec"]["selector"], pod_labels)
    for name, other in kinds["Deployment"].items():  # the chart's Redis is not the gateway
        other_labels = other["spec"]["template"]["metadata"]["labels"]
        assert selects(service["spec"]["selector"], other_labels) is (name == FULLNAME)
    svc_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert svc_ports["http"]["port"] == values["service"]["port"]
    assert ("admin" in svc_ports) is values["serviceMonitor"]["enabled"]
    hpa = kinds.get("HorizontalPodAutoscaler", {}).get(FULLNAME)
    assert (hpa is not None) is values["autoscaling"]["enabled"]
    if hpa is not None:
        assert "replicas" not in gateway["spec"]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": FULLNAME,
        }
        metrics = [m["type"] for m in hpa["spec"]["metrics"]]
        inflight = values["autoscaling"]["inflight"]["enabled"]
        assert metrics == (["Resource", "Pods"] if inflight else ["Resource"])
    pdb = kinds.get("PodDisruptionBudget", {}).get(FULLNAME)
    assert (pdb is not None) is values["podDisruptionBudget"]["enabled"]
    if pdb is not None:
        assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = kinds.get("ServiceMonitor", {}).get(FULLNAME)
    assert (monitor is not None) is values["serviceMonitor"]["enabled"]
    if monitor is not None:
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        assert monitor["spec"]["endpoints"][0]["port"] in svc_ports
    env = env_of(junction_container(gateway["spec"]["template"]["spec"]))
    assert env["JUNCTION_LISTEN__HOST"] == "0.0.0.0"
    if values["redis"]["enabled"]:
        redis_name = f"{FULLNAME}-redis"
        assert env["JUNCTION_REDIS__URL"] == f"redis://{redis_name}:6379/0"
        assert redis_name in kinds["Service"] and redis_name in kinds["Deployment"]
    elif values["externalRedis"]["url"]:
        secret = kinds["Secret"][f"{FULLNAME}-secrets"]
        assert secret["stringData"]["JUNCTION_REDIS__URL"] == values["externalRedis"]["url"]
    else:
        assert "JUNCTION_REDIS__URL" not in env


def check_sidecar(kinds: dict[str, Any], values: dict[str, Any]) -> None:
    assert "Service" not in kinds and "HorizontalPodAutoscaler" not in kinds
    assert "PodDisruptionBudget" not in kinds
    if not values["sidecar"]["agent"]["enabled"]:
        assert "Deployment" not in kinds
        return
    pod = kinds["Deployment"][f"{FULLNAME}-agent"]
    check_pod(pod, values, kinds)
    spec = pod["spec"]["template"]["spec"]
    c = junction_container(spec)
    assert env_of(c)["JUNCTION_LISTEN__HOST"] == "127.0.0.1"
    if values["sidecar"]["native"]:
        assert spec["initContainers"] == [c] and c["restartPolicy"] == "Always"
    else:
        assert "initContainers" not in spec and "restartPolicy" not in c
    agent = next(x for x in spec["containers"] if x["name"] == "agent")
    assert env_of(agent)["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{values['listen']['port']}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_chart_renders_and_its_parts_fit(case: str) -> None:
    values = merge_values(chart_values(), CASES[case])
    rendered = render(CASES[case])
    kinds = by_kind(manifests(rendered))
    config = kinds["ConfigMap"][FULLNAME]["data"]["junction.yaml"]
    assert yaml.safe_load(config) == values["config"]
    (check_sidecar if values["mode"] == "sidecar" else check_gateway)(kinds, values)
    assert rendered["NOTES.txt"].strip()


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_strict(case: str) -> None:
    report = helm.lint(CHART, CASES[case], strict=True, namespace=NAMESPACE, kube_version="v1.29.0")
    assert report["total_charts_linted"] == 1
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == [] and not report["errors"]


def test_sidecar_notes_print_the_container_the_pod_would_run() -> None:
    """The container a user pastes from the install notes is the one the chart itself runs."""
    notes = render({"mode": "sidecar"})["NOTES.txt"]
    blocks = [b for b in notes.split("\n\n") if b.startswith("- name: junction\n")]
    assert len(blocks) == 1
    printed = yaml.safe_load(blocks[0])
    classic = merge_values(load_yaml(SIDECAR_VALUES), {"sidecar": {"native": False}})
    for key in ("workers", "resources", "preStopSleepSeconds", "config"):
        classic[key] = chart_values()[key]
    pod = by_kind(manifests(render(classic)))["Deployment"][f"{FULLNAME}-agent"]
    assert printed == [junction_container(pod["spec"]["template"]["spec"])]
    volumes = next(b for b in notes.split("\n\n") if b.startswith("- name: junction-config"))
    assert yaml.safe_load(volumes) == pod["spec"]["template"]["spec"]["volumes"]


@pytest.mark.parametrize(
    "override",
    [{"servce": {"port": 80}}, {"mode": "sidecar", "sidecar": {"agent": {"enabled": True}}}],
    ids=["typo", "agent-without-image"],
)
def test_helm_refuses(override: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(override)


def test_rendered_gateway_container_runs(tmp_path: Path) -> None:
    """The gateway's container as rendered: its args, its environment (hosts and ports moved to
    free loopback ones), its ConfigMap at the path the args name. Its probes answer on the
    rendered paths; SIGTERM ends it cleanly within the rendered grace period."""
    kinds = by_kind(manifests(render({"secrets": {"ANTHROPIC_API_KEY": TEST_KEY}})))
    spec = kinds["Deployment"][FULLNAME]["spec"]["template"]["spec"]
    c = junction_container(spec)
    config = tmp_path / "junction.yaml"
    config.write_text(kinds["ConfigMap"][FULLNAME]["data"]["junction.yaml"], encoding="utf-8")
    args = [str(config) if a == "/etc/junction/junction.yaml" else a for a in c["args"]]
    env = {k: v for k, v in env_of(c).items() if isinstance(v, str)}
    env.update(kinds["Secret"][f"{FULLNAME}-secrets"]["stringData"])  # what envFrom brings
    port, admin = free_ports(2)
    env.update(
        JUNCTION_LISTEN__HOST="127.0.0.1",
        JUNCTION_LISTEN__PORT=str(port),
        JUNCTION_ADMIN__HOST="127.0.0.1",
        JUNCTION_ADMIN__PORT=str(admin),
    )
    cfg = load_config(config, env=env)
    assert cfg.providers[0].api_key is not None
    child = Child(image_command(["junction", *args]), child_env(env), tmp_path)
    try:
        child.wait_until(f"http://127.0.0.1:{admin}{c['startupProbe']['httpGet']['path']}")
        for probe in ("livenessProbe", "readinessProbe"):
            assert http_status(f"http://127.0.0.1:{admin}{c[probe]['httpGet']['path']}") == 200
        assert http_status(f"http://127.0.0.1:{port}/") == 200
    finally:
        status = child.stop()
    assert status == 0, child.output()
