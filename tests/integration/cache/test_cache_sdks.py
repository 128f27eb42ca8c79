"""Replays read by the official SDKs: a streamed request answered from a non-streamed entry
and the other way round, in both dialects, with text, tool calls and thinking."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running

from .helpers import AUTH, KEY_A, unique

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather of a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def _anthropic(run: Running) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=run.url, api_key=KEY_A, max_retries=0)


def _openai(run: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=run.url + "/v1", api_key=KEY_A, max_retries=0)


def _blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    """The content blocks without tool_use ids: a replay gets fresh ones (checked apart)."""
    out = []
    for b in message.content:
        block = b.model_dump(exclude_none=True)
        if block.get("type") == "tool_use":
            assert isinstance(block.pop("id"), str)
        out.append(block)
    return out


def _tool_ids(message: anthropic.types.Message) -> set[str]:
    return {b.id for b in message.content if b.type == "tool_use"}


ANTHROPIC_CASES: dict[str, dict[str, Any]] = {
    "text": {},
    "tools": {"tools": TOOLS},
    "thinking": {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
}


@pytest.mark.parametrize("case", list(ANTHROPIC_CASES))
@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "mock-openai,gpt-4.1"])
def test_anthropic_sdk_reads_replays_both_ways(
    junctions: Callable[..., Running], mock: MockProvider, case: str, model: str
) -> None:
    run = junctions(auth=AUTH, cache={"policy": "all"})
    client = _anthropic(run)
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": 60,
        "messages": [{"role": "user", "content": unique("weather in Paris?")}],
        **ANTHROPIC_CASES[case],
    }
    # Non-streamed first, then streamed from its entry.
    raw = client.messages.with_raw_response.create(**params)
    first = raw.parse()
    assert raw.headers["x-junction-cache"] == "miss"
    with client.messages.stream(**params) as stream:
        events = [e.type for e in stream]
        replayed = stream.get_final_message()
    assert events[-1] == "message_stop"
    assert _blocks(replayed) == _blocks(first)
    assert not _tool_ids(replayed) & _tool_ids(first)  # fresh tool ids on replay
    assert replayed.stop_reason == first.stop_reason
    assert replayed.usage.output_tokens == first.usage.output_tokens
    assert replayed.id != first.id
    # Streamed first, then non-streamed from the stored events.
    params["messages"] = [{"role": "user", "content": unique("weather in Oslo?")}]
    with client.messages.stream(**params) as stream:
        streamed = stream.get_final_message()
    raw = client.messages.with_raw_response.create(**params)
    assert raw.headers["x-junction-cache"] == "hit-l1"
    again = raw.parse()
    assert _blocks(again) == _blocks(streamed) and again.id != streamed.id
    with client.messages.stream(**params) as stream:  # and streamed again, as stored
        assert _blocks(stream.get_final_message()) == _blocks(streamed)
    assert mock.requests_total == 2
    if case == "tools":
        assert any(b["type"] == "tool_use" for b in _blocks(again))
    if case == "thinking" and model == "claude-sonnet-4-5":
        assert _blocks(again)[0]["type"] == "thinking" and _blocks(again)[0]["signature"]


def _fold(chunks: list[Any]) -> dict[str, Any]:
    content = ""
    reasoning = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    ids = set()
    for chunk in chunks:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] = call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            finish = choice.finish_reason or finish
    assert len(ids) == 1
    return {
        "id": ids.pop(),
        "content": content or None,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }


def _flat(completion: openai.types.chat.ChatCompletion) -> dict[str, Any]:
    message = completion.choices[0].message
    return {
        "content": message.content,
        "calls": [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or []
            if c.type == "function"
        ],
        "finish": completion.choices[0].finish_reason,
    }


def _same_but_ids(replay: dict[str, Any], stored: dict[str, Any]) -> None:
    """Equal apart from the tool-call ids, which a replay must not repeat."""
    assert [c["id"] for c in replay["calls"]] != [c["id"] for c in stored["calls"]] or not (
        stored["calls"]
    )
    strip = [{k: v for k, v in c.items() if k != "id"} for c in replay["calls"]]
    assert strip == [{k: v for k, v in c.items() if k != "id"} for c in stored["calls"]]
    assert {k: replay[k] for k in ("content", "finish")} == {
        k: stored[k] for k in ("content", "finish")
    }


@pytest.mark.parametrize("case", ["text", "tools"])
@pytest.mark.parametrize("model", ["gpt-4.1", "mock,claude-sonnet-4-5"])
def test_openai_sdk_reads_replays_both_ways(
    junctions: Callable[..., Running], mock: MockProvider, case: str, model: str
) -> None:
    run = junctions(auth=AUTH, cache={"policy": "all"})
    client = _openai(run)
    extra: dict[str, Any] = {"tools": OPENAI_TOOLS} if case == "tools" else {}
    messages: Any = [{"role": "user", "content": unique("weather in Rome?")}]
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=60, **extra
    )
    first = raw.parse()
    assert raw.headers["x-junction-cache"] == "miss"
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=60,
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    )
    folded = _fold(list(stream))
    _same_but_ids(folded, _flat(first))
    assert folded["usage"] == first.usage.model_dump() if first.usage else True
    assert folded["id"] != first.id and folded["id"].startswith("chatcmpl-")
    # Streamed first, then non-streamed from the stored chunks.
    messages = [{"role": "user", "content": unique("weather in Lima?")}]
    streamed = _fold(
        list(
            client.chat.completions.create(
                model=model, messages=messages, max_tokens=60, stream=True, **extra
            )
        )
    )
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=60, **extra
    )
    assert raw.headers["x-junction-cache"] == "hit-l1"
    again = raw.parse()
    _same_but_ids(_flat(again), streamed)
    assert mock.requests_total == 2
    if case == "tools":
        assert again.choices[0].message.tool_calls
