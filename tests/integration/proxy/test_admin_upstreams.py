"""GET /admin/upstreams on a running Junction: every candidate's breaker, ejection and live
selector stats, and the state surviving a config reload."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from proxy.mock_provider import MockProvider
from proxy.resilience.outcome import Outcome
from proxy.routing.types import Candidate

from .harness import Running

ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
RESILIENCE = {
    "breaker": {"consecutive_failures": 2, "open_s": 60},
    "outlier": {"consecutive_5xx": 3},
}


@pytest.fixture
def run(junction_factory: Callable[..., Running], mock: MockProvider) -> Running:
    return junction_factory(
        router={"default": "mock,claude-sonnet-4-5", "aliases": {"fast": "mock,claude-haiku-4-5"}},
        resilience=RESILIENCE,
    )


def upstreams(run: Running) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{run.admin_port}/admin/upstreams", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc: dict[str, Any] = r.json()
    return doc


def fail_twice(run: Running, key: str) -> None:
    """Two server errors reported the way the router reports them, on the worker's loop."""

    def report() -> None:
        runtime = run.worker.holder.current
        cand: Candidate = next(
            c
            for route in runtime.routes.values()
            for c in runtime.selector.candidates(route)
            if c.key == key
        )
        now = time.monotonic()
        for _ in range(2):
            ticket = runtime.health.on_start(cand, now)
            assert ticket is not None
            runtime.health.on_result(cand, ticket, Outcome.SERVER_ERROR, now)

    run.lt.call(report)


def test_every_candidate_with_its_state(run: Running) -> None:
    with httpx.Client(base_url=run.url, timeout=10) as client:
        r = client.post(
            "/v1/messages",
            json={"model": "x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
            headers=ANTHROPIC,
        )
    assert r.status_code == 200
    doc = upstreams(run)
    assert list(doc["candidates"]) == [
        "mock/default/claude-sonnet-4-5",
        "mock/default/claude-haiku-4-5",
    ]
    sonnet = doc["candidates"]["mock/default/claude-sonnet-4-5"]
    assert (sonnet["provider"], sonnet["deployment"], sonnet["model"]) == (
        "mock",
        "default",
        "claude-sonnet-4-5",
    )
    assert sonnet["healthy"] is True
    assert sonnet["breaker"]["state"] == "closed"
    assert sonnet["outlier"]["ejected"] is False
    live = sonnet["selector"]
    assert live["requests"] == 1 and live["outstanding"] == 0 and live["errors"] == 0
    assert live["ttft_samples"] == 1 and live["ttft_ewma_s"] > 0
    assert doc["candidates"]["mock/default/claude-haiku-4-5"]["selector"]["requests"] == 0
    assert set(doc["clusters"]) == {"mock", "mock-openai"}
    assert doc["clusters"]["mock"]["max_ejected"] == 1
    assert list(doc["clusters"]["mock"]["deployments"]) == ["default"]
    assert doc["health"]["max_tracked"] == 4096


def test_an_open_breaker_shows_and_survives_a_reload(run: Running) -> None:
    fail_twice(run, "mock/default/claude-sonnet-4-5")
    doc = upstreams(run)
    sonnet = doc["candidates"]["mock/default/claude-sonnet-4-5"]
    assert sonnet["healthy"] is False
    breaker = sonnet["breaker"]
    assert breaker["state"] == "open"
    assert breaker["last_open_reason"] == "2 consecutive failures"
    assert breaker["outcomes"] == {"server_error": 2}
    assert 0 < breaker["open_remaining_s"] <= 60
    assert sonnet["outlier"]["consecutive_5xx"] == 2
    assert doc["candidates"]["mock/default/claude-haiku-4-5"]["healthy"] is True
    assert doc["health"]["tracked"] == 1

    # A reload with other thresholds keeps what was measured.
    cfg = yaml.safe_load(run.config_path.read_text())
    cfg["resilience"]["breaker"]["consecutive_failures"] = 9
    run.config_path.write_text(yaml.safe_dump(cfg))
    assert run.lt.call(run.worker.reload) is True
    after = upstreams(run)["candidates"]["mock/default/claude-sonnet-4-5"]
    assert after["breaker"]["state"] == "open" and after["healthy"] is False
    assert after["outlier"]["consecutive_5xx"] == 2


def test_unknown_admin_path_lists_it(run: Running) -> None:
    r = httpx.get(f"http://127.0.0.1:{run.admin_port}/admin/nope", timeout=5)
    assert r.status_code == 404
    assert "/admin/upstreams" in r.json()["paths"]
