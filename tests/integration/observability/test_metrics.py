"""GET /metrics on a running Junction, parsed with prometheus_client's text parser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.proxy.harness import Running
from tests.support.h1server import ScriptedHttp1Server

from .support import admin, failing_first, message, post, scripted_config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(run: Running) -> tuple[dict[str, str], Samples]:
    r = admin(run, "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_requests_latency_tokens_and_cost_are_counted(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(auth={"keys": [{"name": "team-a", "key": "sk-junction-team-a-0001"}]})
    key = {"x-api-key": "sk-junction-team-a-0001"}
    for _ in range(3):
        assert post(run, message(), **key).status_code == 200
    streamed = post(run, message(stream=True), **key)
    assert streamed.status_code == 200 and "message_stop" in streamed.text
    assert post(run, message(), **{"x-api-key": "wrong"}).status_code == 401

    types, samples = scrape(run)
    assert types["junction_requests"] == "counter"
    assert types["junction_request_duration_seconds"] == "histogram"
    ok = dict(dialect="anthropic", route="default", code="200")
    assert value(samples, "junction_requests_total", **ok) == 4
    assert total(samples, "junction_requests_total", code="401") == 1
    pm = dict(provider="mock", model="claude-sonnet-4-5")
    assert value(samples, "junction_request_duration_seconds_count", **pm) == 4
    inf = value(samples, "junction_request_duration_seconds_bucket", le="+Inf", **pm)
    assert inf == 4
    assert value(samples, "junction_time_to_first_token_seconds_count", **pm) == 1
    tokens_in = value(samples, "junction_tokens_total", key="team-a", type="input", **pm)
    tokens_out = value(samples, "junction_tokens_total", key="team-a", type="output", **pm)
    assert tokens_in > 0 and tokens_out > 0
    # claude-sonnet-4-5 is priced in the catalog: $3 / $15 per million tokens.
    cost = value(samples, "junction_cost_usd_total", key="team-a", **pm)
    assert cost == pytest.approx((tokens_in * 3 + tokens_out * 15) / 1e6)
    attempts = value(samples, "junction_upstream_attempts_total", outcome="success", **pm)
    assert attempts == 4
    # Read at scrape time from the live state.
    assert value(samples, "junction_downstream_connections_total") >= 1
    assert value(samples, "junction_streams_active") == 0
    assert (
        value(
            samples,
            "junction_breaker_state",
            provider="mock",
            deployment="default",
            model="claude-sonnet-4-5",
            state="closed",
        )
        == 1
    )
    assert value(samples, "junction_outlier_ejected", provider="mock", deployment="default") == 0
    assert total(samples, "junction_upstream_connections", state="open") >= 0
    # A worker this idle never batches reads (proxy/server/overload.py).
    for name in ("junction_upstream_read_batching", "junction_upstream_read_holds_total"):
        assert samples[(name, frozenset())] == 0
    assert ("junction_event_loop_lag_seconds_count", frozenset()) in samples
    assert total(samples, "junction_worker_info") == 1


def test_retries_and_upstream_errors_by_outcome(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    server = upstream(failing_first(2, status=529))
    run = junction_factory(**scripted_config(server))
    assert post(run, message()).status_code == 200
    _, samples = scrape(run)
    pm = dict(provider="scripted", model="claude-sonnet-4-5")
    assert value(samples, "junction_upstream_attempts_total", outcome="server_error", **pm) == 2
    assert value(samples, "junction_upstream_attempts_total", outcome="success", **pm) == 1
    assert value(samples, "junction_upstream_retries_total") == 2
    assert value(samples, "junction_response_flags_total", flag="RT") == 1
    # cached tokens reported by the provider are counted apart (input includes them)
    assert value(samples, "junction_tokens_total", key="-", type="cached", **pm) == 20
    assert value(samples, "junction_tokens_total", key="-", type="input", **pm) == 50


def test_metrics_off_answers_404(junction_factory: Callable[..., Running]) -> None:
    run = junction_factory(metrics={"enabled": False})
    assert post(run, message()).status_code == 200
    r = httpx.get(f"http://127.0.0.1:{run.admin_port}/metrics", timeout=5)
    assert r.status_code == 404


def test_the_grafana_dashboard_queries_only_exported_metrics(
    junction_factory: Callable[..., Running],
) -> None:
    dashboard = Path(__file__).parents[3] / "deploy" / "grafana" / "junction-dashboard.json"
    doc = json.loads(dashboard.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\bjunction_[a-z_]+", e)}
    assert len(used) >= 15
    run = junction_factory()
    assert post(run, message()).status_code == 200
    types, _ = scrape(run)
    exported = set(types)
    for name, kind in types.items():
        if kind == "histogram":
            exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "counter":
            exported.add(f"{name}_total")
    assert used <= exported, used - exported
