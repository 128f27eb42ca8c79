"""Claude Code's TUI calls (the real captures, replayed with their headers) through a running
Junction to the bundled mock provider: each lands on its scenario's target with and without
ANTHROPIC_SMALL_FAST_MODEL / ANTHROPIC_DEFAULT_HAIKU_MODEL; the title call answered by an
OpenAI-dialect provider comes back as a title JSON; an Explore subagent's tool loop streams
through translation both ways (read by the official anthropic SDK); a failing title call is
tried twice at most; a title call and a main turn of one session run side by side."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from proxy.mock_provider import MockProvider
from proxy.routing.claude_code import HAIKU_ALIAS, SMALL_FAST_ALIAS
from tests.integration.proxy.harness import Running

FIXTURES = Path(__file__).parents[2] / "fixtures" / "routing"
SKIP_HEADERS = {"host", "content-length", "connection", "accept-encoding"}

TITLE_MAIN = "cc_tui_01_title_main_model"
MAIN = "cc_tui_02_main_turn1"
COMPACT = "cc_tui_03_compact"
TITLE_SMALL = "cc_tui_04_title_small_fast"
EXPLORE_CUSTOM = "cc_tui_05_explore_subagent_custom_haiku"
EXPLORE_DEFAULT = "cc_tui_06_explore_subagent_default_haiku"

PROVIDERS = [
    {
        "name": "mock",
        "dialect": "anthropic",
        "base_url": "http://127.0.0.1:{port}",
        "api_key": "${MOCK_KEY}",
        "models": ["claude-opus-4-8", "claude-sonnet-4-5", "claude-haiku-4-5"],
    },
    {
        "name": "mock-openai",
        "dialect": "openai",
        "base_url": "http://127.0.0.1:{port}",
        "api_key": "sk-openai-provider",
        "models": ["gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini", "o4-mini"],
    },
]
ROUTES = {
    "default": "mock,claude-opus-4-8",
    "think": "mock,claude-sonnet-4-5",
    "background": "mock-openai,gpt-4.1-mini",
    "title": "mock-openai,gpt-4o-mini",
    "compact": "mock-openai,gpt-4.1",
    "subagent": "mock,claude-haiku-4-5",
    "subagent_readonly": "mock-openai,o4-mini",
}


def providers(mock: MockProvider) -> list[dict[str, Any]]:
    return [{**p, "base_url": str(p["base_url"]).format(port=mock.port)} for p in PROVIDERS]


def capture(name: str, model: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    raw = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    headers = {k: v for k, v in raw["headers"] if k.lower() not in SKIP_HEADERS}
    body = raw["body"]
    if model is not None:
        body["model"] = model
    return body, headers


def replay(
    run: Running, body: dict[str, Any], headers: dict[str, str], **extra: str
) -> httpx.Response:
    with httpx.Client(base_url=run.url, timeout=20) as client:
        return client.post(
            "/v1/messages?beta=true", content=orjson.dumps(body), headers={**headers, **extra}
        )


def sse_text(resp: httpx.Response) -> str:
    """The text a streamed Anthropic answer holds (text_delta fragments joined)."""
    out: list[str] = []
    for line in resp.text.splitlines():
        if line.startswith("data: "):
            data = json.loads(line[6:])
            delta = data.get("delta") or {}
            if data.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
                out.append(delta["text"])
    return "".join(out)


@pytest.fixture
def every_route(junction_factory: Callable[..., Running], mock: MockProvider) -> Running:
    return junction_factory(providers=providers(mock), router=ROUTES)


CASES = [
    # without the variables
    (TITLE_MAIN, None, "title"),
    (EXPLORE_DEFAULT, None, "subagent_readonly"),
    (MAIN, None, "think"),
    (COMPACT, None, "compact"),
    # with them: the recorded custom names, then the aliases `junction claude` sets
    (TITLE_SMALL, None, "title"),
    (EXPLORE_CUSTOM, None, "subagent_readonly"),
    (TITLE_MAIN, SMALL_FAST_ALIAS, "title"),
    (EXPLORE_DEFAULT, HAIKU_ALIAS, "subagent_readonly"),
]


@pytest.mark.parametrize(("name", "model", "route"), CASES)
def test_each_capture_reaches_its_scenarios_target(
    every_route: Running, mock: MockProvider, name: str, model: str | None, route: str
) -> None:
    body, headers = capture(name, model)
    resp = replay(every_route, body, headers)
    assert resp.status_code == 200, resp.text
    target = ROUTES[route]
    assert resp.headers["x-junction-route"] == target
    provider, upstream_model = target.split(",")
    sent = mock.recorded[-1]
    assert sent.json()["model"] == upstream_model
    assert sent.path.startswith("/v1/chat/completions" if "openai" in provider else "/v1/messages")
    assert "event: message_stop" in resp.text  # a whole stream in Anthropic's grammar


@pytest.mark.parametrize(
    ("name", "model", "target"),
    [
        (TITLE_MAIN, None, "mock-openai,gpt-4.1-mini"),
        (TITLE_SMALL, None, "mock-openai,gpt-4.1-mini"),
        (TITLE_MAIN, SMALL_FAST_ALIAS, "mock-openai,gpt-4.1-mini"),
        (EXPLORE_DEFAULT, None, "mock-openai,gpt-4.1-mini"),
        (EXPLORE_CUSTOM, None, "mock-openai,gpt-4.1-mini"),
        (EXPLORE_DEFAULT, HAIKU_ALIAS, "mock-openai,gpt-4.1-mini"),
        (MAIN, None, "mock,claude-opus-4-8"),
    ],
)
def test_only_background_set_takes_title_and_explore(
    junction_factory: Callable[..., Running],
    mock: MockProvider,
    name: str,
    model: str | None,
    target: str,
) -> None:
    run = junction_factory(
        providers=providers(mock),
        router={"default": "mock,claude-opus-4-8", "background": "mock-openai,gpt-4.1-mini"},
    )
    body, headers = capture(name, model)
    resp = replay(run, body, headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-junction-route"] == target


def test_title_call_on_an_openai_provider_returns_a_title(
    every_route: Running, mock: MockProvider
) -> None:
    body, headers = capture(TITLE_MAIN)
    resp = replay(every_route, body, headers)
    assert resp.status_code == 200, resp.text
    title = json.loads(sse_text(resp))
    assert isinstance(title, dict) and isinstance(title["title"], str) and title["title"]
    sent = mock.recorded[-1].json()
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": body["output_config"]["format"]["schema"]},
    }
    assert "reasoning_effort" not in sent  # thinking disabled, and gpt-4o-mini takes none
    assert "tools" not in sent  # OpenAI rejects an empty list


def test_title_call_non_streamed_with_the_sdk(every_route: Running) -> None:
    body, _ = capture(TITLE_SMALL)
    client = anthropic.Anthropic(base_url=every_route.url, api_key="k", max_retries=0)
    message = client.messages.create(
        model=body["model"],
        max_tokens=1024,  # the SDK insists on streaming for Claude Code's 32000
        system=body["system"],
        messages=body["messages"],
        tools=[],
        extra_body={"output_config": body["output_config"]},
    )
    text = "".join(b.text for b in message.content if b.type == "text")
    assert set(json.loads(text)) == {"title"}


def test_explore_subagent_tool_loop_round_trips(every_route: Running, mock: MockProvider) -> None:
    body, headers = capture(EXPLORE_CUSTOM)
    offered = {t["name"] for t in body["tools"]}
    client = anthropic.Anthropic(
        base_url=every_route.url, api_key="k", max_retries=0, default_headers=headers
    )
    params: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": body["max_tokens"],
        "system": body["system"],
        "messages": body["messages"],
        "tools": body["tools"],
        "metadata": body["metadata"],
        "extra_body": {"output_config": body["output_config"]},
    }
    with client.messages.stream(**params) as stream:
        first = stream.get_final_message()
    sent = mock.recorded[-1]
    assert sent.path.startswith("/v1/chat/completions") and sent.json()["model"] == "o4-mini"
    assert sent.json()["reasoning_effort"] == "high"  # output_config.effort, a reasoning model
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name in offered and isinstance(calls[0].input, dict)
    # Turn 2: the tool result goes back, the subagent answers in text.
    params["messages"] = [
        *body["messages"],
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": "README.md\n"}
            ],
        },
    ]
    with client.messages.stream(**params) as stream:
        second = stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert "".join(b.text for b in second.content if b.type == "text")
    tool_msgs = [m for m in mock.recorded[-1].json()["messages"] if m["role"] == "tool"]
    assert tool_msgs == [{"role": "tool", "tool_call_id": calls[0].id, "content": "README.md\n"}]


def test_failing_title_call_is_tried_twice_at_most(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    three = ["mock-openai,gpt-4o-mini", "mock-openai,gpt-4.1-mini", "mock-openai,gpt-4.1"]
    run = junction_factory(providers=providers(mock), router={"default": three, "title": three})
    body, headers = capture(TITLE_MAIN)
    mock.clear_recording()
    resp = replay(run, body, headers, **{"x-mock-fail": "status:503"})
    assert resp.status_code == 529  # overloaded, in Anthropic's terms
    assert len(mock.recorded) == 2
    mock.clear_recording()
    body, headers = capture(MAIN, "gpt-4o-mini")  # the default route, with its fallbacks
    replay(run, body, headers, **{"x-mock-fail": "status:503"})
    assert len(mock.recorded) > 2  # a main turn falls back further


def test_title_and_main_turn_of_one_session_run_side_by_side(
    every_route: Running, mock: MockProvider
) -> None:
    """The main turn is slow; the title call, started at the same time on its own
    connection, is answered without waiting for it."""
    title_body, title_headers = capture(TITLE_MAIN)
    main_body, main_headers = capture(MAIN)
    assert title_headers["X-Claude-Code-Session-Id"] == main_headers["X-Claude-Code-Session-Id"]
    done: dict[str, httpx.Response] = {}
    main_started = threading.Event()

    def main_turn() -> None:
        main_started.set()
        done["main"] = replay(every_route, main_body, main_headers, **{"x-mock-latency-ms": "1500"})

    thread = threading.Thread(target=main_turn)
    thread.start()
    main_started.wait(5)
    done["title"] = replay(every_route, title_body, title_headers)
    assert "main" not in done  # the title answer came while the main turn was still waiting
    thread.join(20)
    assert done["main"].status_code == done["title"].status_code == 200


def test_anthropic_compatible_endpoint_gets_a_cleaned_main_turn(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    compat = {
        "name": "compat",
        "dialect": "anthropic",
        "base_url": f"http://127.0.0.1:{mock.port}",
        "api_key": "${MOCK_KEY}",
        "transformers": [["anthropiccompat", {"drop": ["context_management", "output_config"]}]],
    }
    run = junction_factory(providers=[compat], router={"default": "compat,claude-opus-4-8"})
    body, headers = capture(MAIN)
    resp = replay(run, body, headers)
    assert resp.status_code == 200, resp.text
    sent = mock.recorded[-1].json()
    assert "context_management" not in sent and "output_config" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user"]
    folded = next(m["content"] for m in body["messages"] if m["role"] == "system")
    assert sent["system"][-1] == {"type": "text", "text": folded}
    assert "event: message_stop" in resp.text
