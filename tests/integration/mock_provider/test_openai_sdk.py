"""The official openai SDK against the mock provider: chat completions, streams, tools."""

from __future__ import annotations

import json

import openai
import pytest

from .helpers import KEY, WEATHER_SCHEMA, fixture_json, provider, run

USER = [{"role": "user", "content": "What's the weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather.", "parameters": WEATHER_SCHEMA},
}


def client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0, timeout=10)


def test_create_text_and_length_cut() -> None:
    async def main() -> None:
        async with provider() as mock, client(mock.base_url) as c:
            done = await c.chat.completions.create(model="gpt-x", messages=USER)
            assert done.object == "chat.completion" and done.model == "gpt-x"
            choice = done.choices[0]
            assert choice.finish_reason == "stop"
            assert choice.message.content and len(choice.message.content.split()) == 20
            assert done.usage is not None and done.usage.completion_tokens == 20
            assert done.usage.prompt_tokens == len(mock.recorded[0].body) // 4
            cut = await c.chat.completions.create(
                model="gpt-x",
                messages=USER,
                max_completion_tokens=5,
            )
            assert cut.choices[0].finish_reason == "length"
            assert cut.usage is not None and cut.usage.completion_tokens == 5

    run(main())


def test_stream_with_include_usage() -> None:
    async def main() -> None:
        async with provider(output_tokens=6) as mock, client(mock.base_url) as c:
            stream = await c.chat.completions.create(
                model="gpt-x",
                messages=USER,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert chunks[0].choices[0].delta.role == "assistant"
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            assert len(text.split()) == 6
            finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
            assert finish[-1] == "stop" and set(finish[:-1]) == {None}
            last = chunks[-1]
            assert last.choices == [] and last.usage is not None
            assert last.usage.completion_tokens == 6
            assert len({ch.id for ch in chunks}) == 1

    run(main())


def test_stream_tool_call_assembled_from_fragments() -> None:
    # the tools and tool_choice a real openai SDK sent (captured)
    captured = fixture_json("sdk_py_openai_stream_tools.json")["body"]

    async def main() -> None:
        async with provider() as mock, client(mock.base_url) as c:
            stream = await c.chat.completions.create(
                model=captured["model"],
                messages=captured["messages"],
                tools=captured["tools"],
                tool_choice=captured["tool_choice"],
                stream=True,
            )
            name, call_id, fragments, finish = "", "", [], None
            async for chunk in stream:
                if not chunk.choices:
                    continue
                for call in chunk.choices[0].delta.tool_calls or []:
                    assert call.index == 0
                    call_id = call.id or call_id
                    if call.function and call.function.name:
                        name = call.function.name
                    if call.function and call.function.arguments:
                        fragments.append(call.function.arguments)
                finish = chunk.choices[0].finish_reason or finish
            assert name == "get_weather" and call_id.startswith("call_")
            assert len(fragments) >= 2
            assert json.loads("".join(fragments)) == {"location": "mock"}
            assert finish == "tool_calls"

    run(main())


def test_non_stream_tool_call_then_tool_result_turn() -> None:
    async def main() -> None:
        async with provider() as mock, client(mock.base_url) as c:
            first = await c.chat.completions.create(
                model="gpt-x",
                messages=USER,
                tools=[WEATHER_TOOL],
            )
            choice = first.choices[0]
            assert choice.finish_reason == "tool_calls"
            calls = choice.message.tool_calls or []
            assert len(calls) == 1 and calls[0].function.name == "get_weather"
            args = json.loads(calls[0].function.arguments)
            assert args == {"location": "mock", "days": 1, "metric": True, "unit": "celsius"}
            second = await c.chat.completions.create(
                model="gpt-x",
                messages=[
                    *USER,
                    choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
                ],
                tools=[WEATHER_TOOL],
            )
            assert second.choices[0].finish_reason == "stop"
            assert second.choices[0].message.content

    run(main())


def test_models_list_and_not_found() -> None:
    async def main() -> None:
        async with provider(models=("gpt-a", "gpt-b")) as mock, client(mock.base_url) as c:
            page = await c.models.list()
            assert [m.id for m in page.data] == ["gpt-a", "gpt-b"]
            assert {m.owned_by for m in page.data} == {"mock"}
            with pytest.raises(openai.NotFoundError) as info:
                await c.post("/nowhere", cast_to=dict, body={})
            assert info.value.body["type"] == "invalid_request_error"

    run(main())
