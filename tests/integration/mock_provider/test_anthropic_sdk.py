"""The official anthropic SDK against the mock provider: the SDK validates every shape."""

from __future__ import annotations

import anthropic
import pytest

from .helpers import KEY, WEATHER_SCHEMA, provider, run

WEATHER_TOOL = {"name": "get_weather", "description": "Weather.", "input_schema": WEATHER_SCHEMA}
USER = [{"role": "user", "content": "What's the weather in Paris?"}]


def client(base_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)


def test_create_text_answer_echoes_model_and_counts_usage() -> None:
    async def main() -> None:
        async with provider() as mock, client(mock.base_url) as c:
            msg = await c.messages.create(model="claude-x-1", max_tokens=256, messages=USER)
            again = await c.messages.create(model="claude-x-1", max_tokens=256, messages=USER)
            assert msg.model == "claude-x-1"
            assert msg.stop_reason == "end_turn"
            assert [b.type for b in msg.content] == ["text"]
            text = msg.content[0].text
            assert len(text.split()) == 20 and text.endswith(".")
            assert msg.usage.output_tokens == 20
            body_len = len(mock.recorded[0].body)
            assert msg.usage.input_tokens == body_len // 4
            assert msg._request_id and msg._request_id.startswith("req_")
            # deterministic words, fresh ids
            assert again.content == msg.content and again.id != msg.id
            assert mock.recorded[0].header("authorization") == f"Bearer {KEY}"

    run(main())


def test_max_tokens_cuts_the_answer() -> None:
    async def main() -> None:
        async with provider(output_tokens=50) as mock, client(mock.base_url) as c:
            msg = await c.messages.create(model="m", max_tokens=7, messages=USER)
            assert msg.stop_reason == "max_tokens"
            assert msg.usage.output_tokens == 7
            assert len(msg.content[0].text.split()) == 7

    run(main())


def test_stream_with_tools_yields_text_then_parsed_tool_use() -> None:
    async def main() -> None:
        async with provider() as mock, client(mock.base_url) as c:
            async with c.messages.stream(
                model="claude-mock-1", max_tokens=512, messages=USER, tools=[WEATHER_TOOL]
            ) as stream:
                kinds = [event.type async for event in stream]
                final = await stream.get_final_message()
            assert final.stop_reason == "tool_use"
            assert [b.type for b in final.content] == ["text", "tool_use"]
            tool = final.content[1]
            assert tool.type == "tool_use"
            assert tool.name == "get_weather" and tool.id.startswith("toolu_")
            # required properties only, each a placeholder of the schema's type
            assert tool.input == {"location": "mock", "days": 1, "metric": True, "unit": "celsius"}
            assert kinds.count("input_json") >= 2  # arguments arrived in several fragments
            assert final.usage.output_tokens > 20

    run(main())


def test_tool_result_turn_gets_plain_text() -> None:
    async def main() -> None:
        messages = [
            *USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
            },
        ]
        async with provider() as mock, client(mock.base_url) as c:
            msg = await c.messages.create(
                model="m", max_tokens=256, messages=messages, tools=[WEATHER_TOOL]
            )
            assert msg.stop_reason == "end_turn"
            assert [b.type for b in msg.content] == ["text"]

    run(main())


def test_thinking_block_with_signature_precedes_text() -> None:
    async def main() -> None:
        async with provider() as mock, client(mock.base_url) as c:
            async with c.messages.stream(
                model="m",
                max_tokens=4096,
                messages=USER,
                thinking={"type": "enabled", "budget_tokens": 1024},
            ) as stream:
                final = await stream.get_final_message()
            assert [b.type for b in final.content] == ["thinking", "text"]
            thinking = final.content[0]
            assert thinking.type == "thinking"
            assert thinking.thinking and thinking.signature

    run(main())


def test_count_tokens_and_models_list() -> None:
    async def main() -> None:
        async with provider(models=("claude-a", "claude-b")) as mock, client(mock.base_url) as c:
            counted = await c.messages.count_tokens(model="m", messages=USER)
            assert counted.input_tokens == len(mock.recorded[-1].body) // 4
            page = await c.models.list()
            assert [m.id for m in page.data] == ["claude-a", "claude-b"]
            assert page.data[0].display_name == "Claude A"
            assert page.has_more is False and page.first_id == "claude-a"
            assert mock.per_path == {"/v1/messages/count_tokens": 1, "/v1/models": 1}

    run(main())


def test_required_key_rejects_a_wrong_one() -> None:
    async def main() -> None:
        async with provider(require_key=KEY) as mock:
            async with client(mock.base_url) as good:
                msg = await good.messages.create(model="m", max_tokens=10, messages=USER)
                assert msg.type == "message"
            bad = anthropic.AsyncAnthropic(base_url=mock.base_url, api_key="nope", max_retries=0)
            async with bad:
                with pytest.raises(anthropic.AuthenticationError) as info:
                    await bad.messages.create(model="m", max_tokens=10, messages=USER)
            assert info.value.body["error"]["type"] == "authentication_error"

    run(main())
