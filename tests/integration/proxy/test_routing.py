"""Routing through a running Junction: scenarios, explicit targets, aliases, fallbacks,
deployments, affinity, capability filtering and the custom router.

Which target served a request is read from the ``x-junction-route`` response header and
from what the mock providers received.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from proxy.mock_provider import MockProvider
from tests.support import custom_routers

from .harness import LoopThread, Running, start_mock

ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def providers(*mocks: MockProvider) -> list[dict[str, Any]]:
    """An Anthropic-dialect and an OpenAI-dialect provider per mock (names a, a-oai, b, ...)."""
    out: list[dict[str, Any]] = []
    for i, m in enumerate(mocks):
        name = "mock" if i == 0 else f"mock{i + 1}"
        out.append(
            {
                "name": name,
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{m.port}",
                "api_key": "${MOCK_KEY}",
                "models": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-8"],
            }
        )
        out.append(
            {
                "name": f"{name}-openai",
                "dialect": "openai",
                "base_url": f"http://127.0.0.1:{m.port}",
                "api_key": "sk-openai-provider",
                "models": ["gpt-4.1", "gpt-4.1-mini"],
            }
        )
    return out


def post(run: Running, body: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(base_url=run.url, timeout=10) as client:
        return client.post("/v1/messages", json=body, headers={**ANTHROPIC, **headers})


def msg(model: str = "claude-sonnet-4-5", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "hello"}],
        **extra,
    }


@pytest.fixture
def second_mock(lt: LoopThread) -> Iterator[MockProvider]:
    m = start_mock(lt)
    yield m
    lt.run(m.stop())


@pytest.fixture
def scenarios(junction_factory: Callable[..., Running], mock: MockProvider) -> Running:
    return junction_factory(
        providers=providers(mock),
        router={
            "default": "mock,claude-sonnet-4-5",
            "background": "mock-openai,gpt-4.1-mini",
            "think": "mock,claude-opus-4-8",
            "long_context": "mock-openai,gpt-4.1",
            "long_context_threshold": 2000,
            "web_search": "mock,claude-haiku-4-5",
            "image": "mock-openai,gpt-4.1",
            "aliases": {"sonnet": "mock-openai,gpt-4.1"},
        },
    )


WEB_SEARCH = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "what is it?"},
    ],
}


@pytest.mark.parametrize(
    ("body", "route"),
    [
        (msg(), "mock,claude-sonnet-4-5"),
        (msg("claude-haiku-4-5-20251001"), "mock-openai,gpt-4.1-mini"),
        (
            msg(thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048),
            "mock,claude-opus-4-8",
        ),
        (msg(thinking={"type": "disabled"}), "mock,claude-sonnet-4-5"),
        (msg(tools=WEB_SEARCH), "mock,claude-haiku-4-5"),
        (msg(messages=[IMAGE_MESSAGE]), "mock-openai,gpt-4.1"),
        (msg(messages=[{"role": "user", "content": "word " * 4000}]), "mock-openai,gpt-4.1"),
        (msg("mock-openai,gpt-4.1-mini"), "mock-openai,gpt-4.1-mini"),
        (msg("sonnet"), "mock-openai,gpt-4.1"),
        (msg("gpt-4.1-mini"), "mock-openai,gpt-4.1-mini"),
        # precedence: web search beats think, background beats web search
        (
            msg(
                tools=WEB_SEARCH,
                thinking={"type": "enabled", "budget_tokens": 1024},
                max_tokens=2048,
            ),
            "mock,claude-haiku-4-5",
        ),
        (msg("claude-haiku-4-5", tools=WEB_SEARCH), "mock-openai,gpt-4.1-mini"),
    ],
    ids=[
        "default",
        "background",
        "think",
        "thinking-disabled",
        "web_search",
        "image",
        "long_context",
        "explicit",
        "alias",
        "listed-model",
        "web-search-before-think",
        "background-before-web-search",
    ],
)
def test_scenarios_pick_their_routes(
    scenarios: Running, mock: MockProvider, body: dict[str, Any], route: str
) -> None:
    resp = post(scenarios, body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-junction-route"] == route
    provider, model = route.split(",")
    sent = mock.recorded[-1]
    assert sent.json()["model"] == model
    assert sent.path.startswith("/v1/chat/completions" if "openai" in provider else "/v1/messages")


def test_subagent_tag_routes_and_is_removed_before_forwarding(
    scenarios: Running, mock: MockProvider
) -> None:
    tag = "<CCR-SUBAGENT-MODEL>mock-openai,gpt-4.1-mini</CCR-SUBAGENT-MODEL>"
    body = msg(
        system=[
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": f"Explore the repo. {tag} Be quick."},
        ]
    )
    resp = post(scenarios, body)
    assert resp.headers["x-junction-route"] == "mock-openai,gpt-4.1-mini"
    sent = json.dumps(mock.recorded[-1].json())
    assert "CCR-SUBAGENT-MODEL" not in sent and "Be quick." in sent


def test_unknown_explicit_provider_is_404_in_the_clients_dialect(scenarios: Running) -> None:
    resp = post(scenarios, msg("nope,zzz"))
    assert resp.status_code == 404
    doc = resp.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "not_found_error"
    assert "'nope'" in doc["error"]["message"] and "Traceback" not in resp.text
    with httpx.Client(base_url=scenarios.url, timeout=10) as client:
        oai = client.post(
            "/v1/chat/completions",
            json={"model": "nope,zzz", "messages": [{"role": "user", "content": "x"}]},
        )
    assert oai.status_code == 404 and oai.json()["error"]["code"] == "model_not_found"


def test_long_context_follows_the_session_for_its_next_turn(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(
        providers=providers(mock),
        router={
            "default": "mock,claude-sonnet-4-5",
            "long_context": "mock-openai,gpt-4.1",
            "long_context_threshold": 30000,
        },
    )
    session = {"x-claude-code-session-id": "6b1e3c2a-session"}
    big = msg(messages=[{"role": "user", "content": "word " * 40000}])
    medium = msg(messages=[{"role": "user", "content": "word " * 25000}])
    assert post(run, medium, **session).headers["x-junction-route"] == "mock,claude-sonnet-4-5"
    assert post(run, big, **session).headers["x-junction-route"] == "mock-openai,gpt-4.1"
    # The previous turn was long: a 20k+ token turn of the same session stays long.
    assert post(run, medium, **session).headers["x-junction-route"] == "mock-openai,gpt-4.1"
    other = {"x-claude-code-session-id": "another-session"}
    assert post(run, medium, **other).headers["x-junction-route"] == "mock,claude-sonnet-4-5"


# -- fallbacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["status:529", "status:429", "status:503", "reset"])
def test_fallback_on_provider_fault_translates_for_the_other_dialect(
    junction_factory: Callable[..., Running],
    lt: LoopThread,
    second_mock: MockProvider,
    fault: str,
) -> None:
    failing = start_mock(lt, fail_rate=1.0, fail_mode=fault)
    try:
        mocks = providers(failing, second_mock)
        run = junction_factory(
            providers=mocks,
            router={"default": ["mock,claude-sonnet-4-5", "mock2-openai,gpt-4.1"]},
        )
        resp = post(run, msg())
        assert resp.status_code == 200, resp.text
        assert resp.json()["type"] == "message"
        assert resp.headers["x-junction-route"] == "mock2-openai,gpt-4.1"
        assert failing.recorder.requests_total == 1
        assert second_mock.recorded[-1].path == "/v1/chat/completions"
    finally:
        lt.run(failing.stop())


def test_fallback_when_the_first_provider_is_unreachable(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    dead = {
        "name": "dead",
        "dialect": "anthropic",
        "base_url": "http://127.0.0.1:1",
        "api_key": "k",
        "models": ["claude-sonnet-4-5"],
    }
    run = junction_factory(
        providers=[dead, *providers(mock)],
        router={"default": ["dead,claude-sonnet-4-5", "mock,claude-sonnet-4-5"]},
    )
    resp = post(run, msg())
    assert resp.status_code == 200 and resp.headers["x-junction-route"] == "mock,claude-sonnet-4-5"


def test_client_errors_do_not_fall_back(
    junction_factory: Callable[..., Running], mock: MockProvider, second_mock: MockProvider
) -> None:
    run = junction_factory(
        providers=providers(mock, second_mock),
        router={"default": ["mock,claude-sonnet-4-5", "mock2,claude-sonnet-4-5"]},
    )
    before = second_mock.recorder.requests_total
    resp = post(run, msg(), **{"x-mock-fail": "status:400"})
    assert resp.status_code == 400
    assert second_mock.recorder.requests_total == before


def test_every_candidate_failing_answers_the_last_error(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(
        providers=providers(mock),
        router={"default": ["mock,claude-sonnet-4-5", "mock-openai,gpt-4.1"]},
    )
    before = mock.recorder.requests_total
    resp = post(run, msg(), **{"x-mock-fail": "status:529"})
    assert resp.status_code == 529
    assert resp.json()["error"]["type"] == "overloaded_error"
    # both candidates, then one retry of the last (resilience.retry.max_retries: 1)
    assert mock.recorder.requests_total - before == 3


# -- deployments, strategies, affinity, capabilities ----------------------------------------


def test_weighted_deployments_share_the_load(
    junction_factory: Callable[..., Running], mock: MockProvider, second_mock: MockProvider
) -> None:
    run = junction_factory(
        providers=[
            {
                "name": "multi",
                "dialect": "anthropic",
                "api_key": "k",
                "models": ["claude-sonnet-4-5"],
                "deployments": [
                    {"name": "one", "base_url": f"http://127.0.0.1:{mock.port}", "weight": 3},
                    {"name": "two", "base_url": f"http://127.0.0.1:{second_mock.port}"},
                ],
            }
        ],
        router={"default": {"targets": ["multi,claude-sonnet-4-5"], "strategy": "weighted"}},
    )
    a0, b0 = mock.recorder.requests_total, second_mock.recorder.requests_total
    for _ in range(40):
        assert post(run, msg()).status_code == 200
    assert (mock.recorder.requests_total - a0, second_mock.recorder.requests_total - b0) == (30, 10)


def test_session_affinity_keeps_a_session_on_one_deployment(
    junction_factory: Callable[..., Running], mock: MockProvider, second_mock: MockProvider
) -> None:
    run = junction_factory(
        providers=[
            {
                "name": "multi",
                "dialect": "anthropic",
                "api_key": "k",
                "models": ["claude-sonnet-4-5"],
                "deployments": [
                    {"name": "one", "base_url": f"http://127.0.0.1:{mock.port}"},
                    {"name": "two", "base_url": f"http://127.0.0.1:{second_mock.port}"},
                ],
            }
        ],
        router={
            "default": {
                "targets": ["multi,claude-sonnet-4-5"],
                "strategy": "weighted",
                "affinity": True,
            }
        },
    )
    counts = []
    for session in ("s-1", "s-2"):
        a0, b0 = mock.recorder.requests_total, second_mock.recorder.requests_total
        for _ in range(6):
            post(run, msg(), **{"x-claude-code-session-id": session})
        counts.append((mock.recorder.requests_total - a0, second_mock.recorder.requests_total - b0))
    assert sorted(counts) == [(0, 6), (6, 0)]  # each session stuck to one deployment


def test_no_capable_candidate_is_400_naming_each_rejection(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    ps = providers(mock)
    ps[0]["model_info"] = {"claude-sonnet-4-5": {"context_window": 1000}}
    ps[1]["model_info"] = {"gpt-4.1": {"context_window": 1000}}
    run = junction_factory(
        providers=ps, router={"default": ["mock,claude-sonnet-4-5", "mock-openai,gpt-4.1"]}
    )
    resp = post(run, msg(messages=[{"role": "user", "content": "word " * 3000}]))
    assert resp.status_code == 400
    text = resp.json()["error"]["message"]
    assert "mock,claude-sonnet-4-5" in text and "mock-openai,gpt-4.1" in text
    assert "context window 1000" in text


# -- custom router ---------------------------------------------------------------------------


def _custom(junction_factory: Callable[..., Running], mock: MockProvider, fn: str) -> Running:
    return junction_factory(
        providers=providers(mock),
        router={
            "default": "mock,claude-sonnet-4-5",
            "custom": f"tests.support.custom_routers:{fn}",
            "custom_budget_ms": 20,
        },
    )


@pytest.mark.parametrize("fn", ["choose", "choose_async"])
def test_custom_router_chooses_and_falls_back_to_the_rules(
    junction_factory: Callable[..., Running], mock: MockProvider, fn: str
) -> None:
    run = _custom(junction_factory, mock, fn)
    custom_routers.CALLS.clear()
    chosen = post(run, msg(system="ROUTE-TO-MINI please"))
    assert chosen.headers["x-junction-route"] == "mock-openai,gpt-4.1-mini"
    slow = post(run, msg(system="ROUTE-SLOW"))
    assert slow.status_code == 200 and slow.headers["x-junction-route"] == "mock,claude-sonnet-4-5"
    plain = post(run, msg(system="nothing special"))
    assert plain.headers["x-junction-route"] == "mock,claude-sonnet-4-5"
    if fn == "choose":
        facts = custom_routers.CALLS[0]
        assert facts.model == "claude-sonnet-4-5" and facts.tokens > 0
        assert facts.scenario == "default" and "x-api-key" not in facts.headers
        for system in ("ROUTE-BROKEN", "ROUTE-NONSENSE"):
            resp = post(run, msg(system=system))
            assert resp.status_code == 200
            assert resp.headers["x-junction-route"] == "mock,claude-sonnet-4-5"


def test_breaker_opens_and_traffic_moves_to_the_fallback_without_trying_the_broken_one(
    junction_factory: Callable[..., Running],
    lt: LoopThread,
    second_mock: MockProvider,
) -> None:
    failing = start_mock(lt, fail_rate=1.0, fail_mode="status:500")
    try:
        run = junction_factory(
            providers=providers(failing, second_mock),
            router={"default": ["mock,claude-sonnet-4-5", "mock2,claude-sonnet-4-5"]},
            resilience={"breaker": {"consecutive_failures": 3}},
        )
        for _ in range(3):
            resp = post(run, msg())
            assert resp.status_code == 200
            assert resp.headers["x-junction-route"] == "mock2,claude-sonnet-4-5"
        assert failing.recorder.requests_total == 3
        for _ in range(5):  # the breaker is open: the failing provider is not even tried
            assert post(run, msg()).status_code == 200
        assert failing.recorder.requests_total == 3
        with httpx.Client(timeout=5) as client:
            doc = client.get(f"http://127.0.0.1:{run.admin_port}/admin/upstreams").json()
        assert "open" in json.dumps(doc)
    finally:
        lt.run(failing.stop())


@pytest.mark.parametrize("client_model", ["claude-sonnet-4-5", "gpt-4.1"])
def test_overload_inside_a_200_stream_falls_back_before_the_client_sees_anything(
    junction_factory: Callable[..., Running],
    lt: LoopThread,
    second_mock: MockProvider,
    client_model: str,
) -> None:
    failing = start_mock(lt, fail_rate=1.0, fail_mode="overloaded-in-stream")
    try:
        run = junction_factory(
            providers=providers(failing, second_mock),
            router={
                "default": ["mock,claude-sonnet-4-5", "mock2-openai,gpt-4.1"],
                # the failing provider's OpenAI side first, then the healthy one
                "aliases": {"gpt-4.1": ["mock-openai,gpt-4.1", "mock2,claude-sonnet-4-5"]},
            },
        )
        resp = post(run, msg(client_model, stream=True))
        assert resp.status_code == 200
        text = resp.text
        assert text.count("event: message_start") == 1 and "event: error" not in text
        assert "event: message_stop" in text
        assert resp.headers["x-junction-route"].startswith("mock2")
        assert failing.recorder.requests_total == 1
    finally:
        lt.run(failing.stop())
