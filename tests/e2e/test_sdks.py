"""The official Anthropic and OpenAI SDKs, pointed at Junction, against the mock provider."""

from __future__ import annotations

import anthropic
import openai
import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import PROVIDER_KEY, Running


def test_anthropic_sdk_non_stream_and_stream(junction: Running, mock: MockProvider) -> None:
    client = anthropic.Anthropic(base_url=junction.url, api_key="client-key", max_retries=0)
    msg = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=32,
        messages=[{"role": "user", "content": "hello"}],
    )
    assert msg.type == "message" and msg.content[0].type == "text"
    assert mock.recorded[-1].header("x-api-key") == PROVIDER_KEY

    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "use the tool"}],
        tools=[
            {
                "name": "get_weather",
                "description": "weather",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.name == "get_weather" and isinstance(tool.input, dict) and "city" in tool.input


def test_anthropic_sdk_count_tokens_and_models(junction: Running) -> None:
    client = anthropic.Anthropic(base_url=junction.url, api_key="k", max_retries=0)
    count = client.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello there"}]
    )
    assert count.input_tokens > 0
    models = client.models.list()
    assert "claude-sonnet-4-5" in [m.id for m in models.data]


def test_anthropic_sdk_sees_typed_error_for_upstream_overload(junction: Running) -> None:
    client = anthropic.Anthropic(
        base_url=junction.url,
        api_key="k",
        max_retries=0,
        default_headers={"x-mock-fail": "status:529"},
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 529


def test_anthropic_sdk_in_band_overload_during_stream(junction: Running) -> None:
    client = anthropic.Anthropic(
        base_url=junction.url,
        api_key="k",
        max_retries=0,
        default_headers={"x-mock-fail": "overloaded-in-stream"},
    )
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        for _ in stream:
            pass


def test_openai_sdk_stream_with_tools_and_usage(junction: Running, mock: MockProvider) -> None:
    client = openai.OpenAI(base_url=junction.url + "/v1", api_key="client-key", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4.1",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "weather?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ],
    )
    args = ""
    name = None
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                name = call.function.name or name if call.function else name
                args += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert name == "get_weather" and finish == "tool_calls"
    assert '"city"' in args
    assert usage is not None and usage.total_tokens > 0
    assert mock.recorded[-1].header("authorization") == "Bearer sk-openai-provider"


def test_openai_sdk_non_stream(junction: Running) -> None:
    client = openai.OpenAI(base_url=junction.url + "/v1", api_key="k", max_retries=0)
    out = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert out.choices[0].message.content
    assert out.model == "gpt-4.1-mini"
