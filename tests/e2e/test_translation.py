"""Dialect translation end to end: the official SDKs (and captured Claude Code requests) talk
to Junction, which talks to the mock provider in the other dialect.

Routing: a model that a provider lists goes to that provider, so an Anthropic client asking for
``gpt-4.1`` reaches the OpenAI-dialect provider and an OpenAI client asking for
``claude-sonnet-4-5`` reaches the Anthropic-dialect one. The mock validates what it receives
like a real provider would, so a malformed translated request fails these tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dialects"
WEATHER_TOOL_A = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME_TOOL_A = {
    "name": "get_time",
    "description": "Local time in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_TOOL_O = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": WEATHER_TOOL_A["input_schema"],
    },
}
# 1x1 transparent PNG
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    )
).decode()


def anthropic_client(run: Running, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=run.url, api_key="client-key", max_retries=0, default_headers=headers or None
    )


def openai_client(run: Running, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=run.url + "/v1", api_key="client-key", max_retries=0, default_headers=headers
    )


def last(mock: MockProvider) -> Any:
    return mock.recorded[-1]


# -- Anthropic client -> OpenAI-dialect provider --------------------------------------------


def test_anthropic_sdk_text_non_stream_reaches_openai_provider(
    junction: Running, mock: MockProvider
) -> None:
    msg = anthropic_client(junction).messages.create(
        model="gpt-4.1",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert msg.type == "message" and msg.model == "gpt-4.1"
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text  # type: ignore[union-attr]
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    up = last(mock)
    assert up.path == "/v1/chat/completions"
    assert up.header("authorization") == "Bearer sk-openai-provider"
    assert up.header("x-api-key") is None and up.header("anthropic-version") is None
    sent = up.json()
    assert sent["model"] == "gpt-4.1"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1]["role"] == "user"


def test_anthropic_sdk_stream_text(junction: Running, mock: MockProvider) -> None:
    client = anthropic_client(junction, **{"x-mock-output-tokens": "40"})
    with client.messages.stream(
        model="gpt-4.1", max_tokens=200, messages=[{"role": "user", "content": "tell me"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 5
    assert final.content[0].text == "".join(pieces)  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0
    sent = last(mock).json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_anthropic_sdk_stream_tool_use_with_argument_fragments(
    junction: Running, mock: MockProvider
) -> None:
    with anthropic_client(junction).messages.stream(
        model="gpt-4.1",
        max_tokens=200,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL_A],  # type: ignore[list-item]
        tool_choice={"type": "any"},
    ) as stream:
        fragments = [e for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert len(fragments) > 1  # the arguments arrived in pieces, as the provider sent them
    assert final.stop_reason == "tool_use"
    [tool] = [b for b in final.content if b.type == "tool_use"]
    assert tool.name == "get_weather" and isinstance(tool.input, dict) and "city" in tool.input
    sent = last(mock).json()
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "required"


@pytest.mark.parametrize("interleave", ["0", "1"])
def test_anthropic_sdk_parallel_tool_calls(
    junction: Running, mock: MockProvider, interleave: str
) -> None:
    client = anthropic_client(
        junction, **{"x-mock-tool-calls": "2", "x-mock-interleave-tools": interleave}
    )
    with client.messages.stream(
        model="gpt-4.1",
        max_tokens=300,
        messages=[{"role": "user", "content": "weather and time in Paris?"}],
        tools=[WEATHER_TOOL_A, TIME_TOOL_A],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_message()
    tools = [b for b in final.content if b.type == "tool_use"]
    assert [t.name for t in tools] == ["get_weather", "get_time"]
    assert len({t.id for t in tools}) == 2
    assert all(isinstance(t.input, dict) and "city" in t.input for t in tools)
    assert final.stop_reason == "tool_use"


def test_anthropic_two_turn_tool_loop(junction: Running, mock: MockProvider) -> None:
    client = anthropic_client(junction)
    first = client.messages.create(
        model="gpt-4.1",
        max_tokens=200,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL_A],  # type: ignore[list-item]
    )
    [call] = [b for b in first.content if b.type == "tool_use"]
    second = client.messages.create(
        model="gpt-4.1",
        max_tokens=200,
        tools=[WEATHER_TOOL_A],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"},
                ],
            },
        ],
    )
    assert second.content and second.content[0].type == "text"
    sent = last(mock).json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}


def test_anthropic_sdk_thinking_comes_back_as_thinking_blocks(
    junction: Running, mock: MockProvider
) -> None:
    msg = anthropic_client(junction).messages.create(
        model="mock-openai,o4-mini",  # explicit provider,model; o-series models reason
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "think first"}],
    )
    kinds = [b.type for b in msg.content]
    assert kinds[0] == "thinking" and "text" in kinds
    assert msg.content[0].thinking  # type: ignore[union-attr]
    sent = last(mock).json()
    assert sent["model"] == "o4-mini" and sent["reasoning_effort"] == "low"
    assert sent["max_completion_tokens"] == 4000 and "max_tokens" not in sent


def test_thinking_is_not_sent_to_a_model_that_does_not_reason(
    junction: Running, mock: MockProvider
) -> None:
    msg = anthropic_client(junction).messages.create(
        model="gpt-4.1",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "think first"}],
    )
    assert [b.type for b in msg.content] == ["text"]
    assert "reasoning_effort" not in last(mock).json()


def test_anthropic_sdk_image_reaches_openai_provider(junction: Running, mock: MockProvider) -> None:
    msg = anthropic_client(junction).messages.create(
        model="gpt-4.1",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "what is this?"},
                ],
            }
        ],
    )
    assert msg.content[0].text.startswith("[saw 1 images]")  # type: ignore[union-attr]
    part = last(mock).json()["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}


def test_anthropic_sdk_count_tokens_counted_locally(junction: Running, mock: MockProvider) -> None:
    before = mock.recorder.requests_total
    client = anthropic_client(junction)
    small = client.messages.count_tokens(
        model="gpt-4.1", messages=[{"role": "user", "content": "hello there"}]
    )
    big = client.messages.count_tokens(
        model="gpt-4.1", messages=[{"role": "user", "content": "hello there " * 200}]
    )
    assert 0 < small.input_tokens < big.input_tokens
    assert mock.recorder.requests_total == before  # nothing went to the provider


def test_anthropic_sdk_rate_limit_keeps_retry_after(junction: Running) -> None:
    client = anthropic_client(junction, **{"x-mock-fail": "status:429"})
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(
            model="gpt-4.1", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers.get("retry-after")
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"


def test_openai_overloaded_becomes_anthropic_529(junction: Running) -> None:
    client = anthropic_client(junction, **{"x-mock-fail": "status:503"})
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model="gpt-4.1", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("fault", ["overloaded-in-stream", "reset-mid-stream"])
def test_error_mid_stream_becomes_anthropic_error_event(junction: Running, fault: str) -> None:
    client = anthropic_client(junction, **{"x-mock-fail": fault, "x-mock-output-tokens": "40"})
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="gpt-4.1", max_tokens=200, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    assert "message_stop" not in seen  # never a fabricated successful end
    expected = "overloaded_error" if fault == "overloaded-in-stream" else "api_error"
    assert info.value.body["error"]["type"] == expected  # type: ignore[index]


def test_untranslatable_request_is_400_naming_the_field(junction: Running) -> None:
    client = anthropic_client(junction)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="gpt-4.1",
            max_tokens=8,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ],
        )
    assert "messages.0.content.0" in info.value.message


# -- OpenAI client -> Anthropic-dialect provider --------------------------------------------


def test_openai_sdk_text_non_stream_reaches_anthropic_provider(
    junction: Running, mock: MockProvider
) -> None:
    out = openai_client(junction).chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
    )
    assert out.object == "chat.completion" and out.model == "claude-sonnet-4-5"
    assert out.choices[0].message.content and out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.total_tokens > 0
    up = last(mock)
    assert up.path == "/v1/messages"
    assert up.header("anthropic-version") == "2023-06-01"
    assert up.header("authorization") is None
    sent = up.json()
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["max_tokens"] > 0


def test_openai_sdk_stream_tools_and_usage(junction: Running, mock: MockProvider) -> None:
    stream = openai_client(junction).chat.completions.create(
        model="claude-sonnet-4-5",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL_O],  # type: ignore[list-item]
    )
    args = ""
    names: list[str] = []
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                args += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert names == ["get_weather"] and finish == "tool_calls"
    assert "city" in json.loads(args)
    assert usage is not None and usage.completion_tokens > 0
    assert last(mock).json()["tools"][0]["input_schema"]["required"] == ["city"]


def test_openai_sdk_reasoning_effort_gets_reasoning_content(
    junction: Running, mock: MockProvider
) -> None:
    out = openai_client(junction).chat.completions.create(
        model="claude-sonnet-4-5",
        reasoning_effort="low",
        max_completion_tokens=4000,
        messages=[{"role": "user", "content": "think"}],
    )
    message = out.choices[0].message
    assert getattr(message, "reasoning_content", None)
    sent = last(mock).json()
    assert sent["thinking"]["type"] == "enabled"
    assert sent["max_tokens"] > sent["thinking"]["budget_tokens"]


def test_openai_sdk_image_url_reaches_anthropic_provider(
    junction: Running, mock: MockProvider
) -> None:
    out = openai_client(junction).chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    assert (out.choices[0].message.content or "").startswith("[saw 1 images]")
    block = last(mock).json()["messages"][0]["content"][1]
    assert block == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }


def test_anthropic_overloaded_becomes_openai_503_and_429_keeps_retry_after(
    junction: Running,
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        openai_client(junction, **{"x-mock-fail": "status:529"}).chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 503
    with pytest.raises(openai.RateLimitError) as limited:
        openai_client(junction, **{"x-mock-fail": "status:429"}).chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers.get("retry-after")
    assert limited.value.body["type"] == "rate_limit_error"  # type: ignore[index]


def test_anthropic_error_mid_stream_becomes_openai_error_chunk(junction: Running) -> None:
    client = openai_client(junction, **{"x-mock-fail": "overloaded-in-stream"})
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", stream=True, messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


# -- captured Claude Code traffic -> OpenAI-dialect provider ---------------------------------


def _capture(name: str) -> tuple[str, dict[str, str], bytes]:
    doc = json.loads((FIXTURES / name).read_text())
    skip = {"host", "content-length", "connection", "accept-encoding"}
    headers = {k: v for k, v in doc["headers"] if k.lower() not in skip}
    body = doc["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return doc["target"], headers, raw


def _sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if name is not None and data is not None:
            out.append((name, data))
    return out


def _check_grammar(events: list[tuple[str, dict[str, Any]]]) -> None:
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"], names
    open_index = None
    next_index = 0
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index = data["index"]
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index, next_index = None, next_index + 1
    assert open_index is None


@pytest.fixture
def cc_junction(junction_factory: Callable[..., Running], mock: MockProvider) -> Running:
    return junction_factory(
        providers=[
            {
                "name": "mock-openai",
                "dialect": "openai",
                "base_url": f"http://127.0.0.1:{mock.port}",
                "api_key": "sk-openai-provider",
                "models": ["gpt-4.1"],
            }
        ],
        router={"default": "mock-openai,gpt-4.1"},
    )


@pytest.mark.parametrize(
    "capture",
    [
        "cc_02_main_stream_text.json",
        "cc_06_tool_loop_turn1.json",
        "cc_07_tool_loop_turn2_tool_result.json",
    ],
)
def test_claude_code_captures_through_openai_provider(
    cc_junction: Running, mock: MockProvider, capture: str
) -> None:
    target, headers, body = _capture(capture)
    with httpx.Client(base_url=cc_junction.url, timeout=10) as client:
        resp = client.post(target, headers=headers, content=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(resp.text)
    _check_grammar(events)
    assert events[0][1]["message"]["model"] == json.loads(body)["model"]
    for name, data in events:
        if name == "content_block_delta" and data["delta"]["type"] == "text_delta":
            assert data["delta"]["text"]  # never an empty text block
    up = last(mock)
    assert up.path == "/v1/chat/completions"
    sent = up.json()
    assert sent["model"] == "gpt-4.1" and sent["stream"] is True
    assert all("cache_control" not in json.dumps(m) for m in sent["messages"])
    tool_ids = {
        c["id"]
        for m in sent["messages"]
        if m["role"] == "assistant"
        for c in m.get("tool_calls", [])
    }
    assert {m["tool_call_id"] for m in sent["messages"] if m["role"] == "tool"} <= tool_ids


def test_claude_code_tool_loop_answer_is_a_stream_claude_code_accepts(
    cc_junction: Running, mock: MockProvider
) -> None:
    """Turn 1 asks for a tool: the answer must carry a complete tool_use block that turn 2
    (captured with thinking + signature echoed back, and the tool_result) can refer to."""
    target, headers, body = _capture("cc_06_tool_loop_turn1.json")
    with httpx.Client(base_url=cc_junction.url, timeout=10) as client:
        resp = client.post(target, headers={**headers, "x-mock-reasoning": "1"}, content=body)
    events = _sse_events(resp.text)
    _check_grammar(events)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    kinds = [b["type"] for b in starts]
    assert kinds[0] == "thinking" and "tool_use" in kinds
    tool = next(b for b in starts if b["type"] == "tool_use")
    args = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert isinstance(json.loads(args), dict)
    assert tool["id"] and tool["name"]
    stop = next(d for n, d in events if n == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use"
    assert stop["usage"]["output_tokens"] > 0


# -- transformers on a running Junction ------------------------------------------------------


@pytest.fixture
def tx_junction(junction_factory: Callable[..., Running], mock: MockProvider) -> Running:
    return junction_factory(
        providers=[
            {
                "name": "mock-openai",
                "dialect": "openai",
                "base_url": f"http://127.0.0.1:{mock.port}",
                "api_key": "sk-openai-provider",
                "models": ["gpt-4.1", "gpt-4.1-mini"],
                "transformers": [["maxtoken", {"max_tokens": 1000}], "cleanschema"],
                "model_transformers": {"gpt-4.1-mini": [["sampling", {"temperature": 0.2}]]},
            }
        ],
        router={"default": "mock-openai,gpt-4.1"},
    )


def test_provider_transformers_rewrite_translated_requests(
    tx_junction: Running, mock: MockProvider
) -> None:
    schema = {
        **WEATHER_TOOL_A["input_schema"],
        "$schema": "http://json-schema.org/draft-07/schema#",
    }
    with anthropic_client(tx_junction).messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64000,  # what Claude Code asks for; the provider takes at most 1000
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{**WEATHER_TOOL_A, "input_schema": schema}],  # type: ignore[list-item]
    ) as stream:
        assert stream.get_final_message().stop_reason == "tool_use"
    sent = last(mock).json()
    assert sent["model"] == "gpt-4.1" and sent["max_tokens"] == 1000
    assert "$schema" not in sent["tools"][0]["function"]["parameters"]
    assert "temperature" not in sent


def test_model_transformers_apply_to_their_model_and_same_dialect_streams(
    tx_junction: Running, mock: MockProvider
) -> None:
    stream = openai_client(tx_junction).chat.completions.create(
        model="gpt-4.1-mini",
        stream=True,
        max_tokens=5000,
        messages=[{"role": "user", "content": "hi"}],
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    sent = last(mock).json()
    assert sent["max_tokens"] == 1000 and sent["temperature"] == 0.2
