"""Parallel tool calls in both dialects: x-mock-tool-calls, interleaving, parallel opt-outs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai

from .helpers import KEY, WEATHER_SCHEMA, anthropic_body, openai_body, provider, run, sse_events

TIME_SCHEMA = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
A_TOOLS = [
    {"name": "get_weather", "description": "Weather.", "input_schema": WEATHER_SCHEMA},
    {"name": "get_time", "description": "Time.", "input_schema": TIME_SCHEMA},
]
O_TOOLS = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in A_TOOLS
]
WEATHER = {"location": "mock", "days": 1, "metric": True, "unit": "celsius"}
TIME = {"zone": "mock"}


def calls(n: int, **extra: str) -> dict[str, str]:
    return {"x-mock-tool-calls": str(n), **extra}


def openai_stream_calls(raw: bytes) -> tuple[list[dict[str, Any]], list[int]]:
    """Tool calls assembled per index, and the index order the deltas came in."""
    assembled: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for _, data in sse_events(raw):
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                index = call["index"]
                order.append(index)
                slot = assembled.setdefault(index, {"id": None, "name": None, "arguments": ""})
                if "id" in call:
                    assert slot["id"] is None  # id and name come once, first
                    slot["id"], slot["name"] = call["id"], call["function"]["name"]
                else:
                    assert slot["id"] is not None
                slot["arguments"] += call["function"]["arguments"]
    return [assembled[i] for i in sorted(assembled)], order


def test_anthropic_non_stream_three_calls_cycle_through_tools() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post("/v1/messages", json=anthropic_body(tools=A_TOOLS), headers=calls(3))
            body = r.json()
            assert body["stop_reason"] == "tool_use"
            uses = [b for b in body["content"] if b["type"] == "tool_use"]
            assert [b["type"] for b in body["content"]] == ["text"] + ["tool_use"] * 3
            assert [u["name"] for u in uses] == ["get_weather", "get_time", "get_weather"]
            assert [u["input"] for u in uses] == [WEATHER, TIME, WEATHER]
            assert len({u["id"] for u in uses}) == 3
            assert all(u["id"].startswith("toolu_mock_") for u in uses)
            # the default is still exactly one call
            one = await c.post("/v1/messages", json=anthropic_body(tools=A_TOOLS))
            assert [b["type"] for b in one.json()["content"]] == ["text", "tool_use"]

    run(main())


def test_anthropic_stream_sequential_tool_use_blocks() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            body = anthropic_body(tools=A_TOOLS, stream=True)
            r = await c.post("/v1/messages", json=body, headers=calls(2))
            events = [(n, json.loads(d)) for n, d in sse_events(r.content)]
            starts = [d for n, d in events if n == "content_block_start"]
            assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use", "tool_use"]
            assert [s["index"] for s in starts] == [0, 1, 2]
            # blocks never overlap: each stops before the next starts
            open_index = None
            inputs: dict[int, str] = {}
            for name, data in events:
                if name == "content_block_start":
                    assert open_index is None
                    open_index = data["index"]
                elif name == "content_block_delta":
                    assert data["index"] == open_index
                    if data["delta"]["type"] == "input_json_delta":
                        inputs[open_index] = (
                            inputs.get(open_index, "") + data["delta"]["partial_json"]
                        )
                elif name == "content_block_stop":
                    assert data["index"] == open_index
                    open_index = None
            assert {i: json.loads(v) for i, v in inputs.items()} == {1: WEATHER, 2: TIME}
            ids = [s["content_block"]["id"] for s in starts[1:]]
            assert len(set(ids)) == 2
            assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    run(main())


def test_openai_stream_calls_per_index_then_interleaved() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            body = openai_body(tools=O_TOOLS, stream=True)
            r = await c.post("/v1/chat/completions", json=body, headers=calls(3))
            assembled, order = openai_stream_calls(r.content)
            assert [a["name"] for a in assembled] == ["get_weather", "get_time", "get_weather"]
            assert [json.loads(a["arguments"]) for a in assembled] == [WEATHER, TIME, WEATHER]
            assert len({a["id"] for a in assembled}) == 3
            assert order == sorted(order)  # one call after the other
            assert '"finish_reason":"tool_calls"' in r.text

            r = await c.post(
                "/v1/chat/completions",
                json=body,
                headers=calls(2, **{"x-mock-interleave-tools": "1"}),
            )
            mixed, order = openai_stream_calls(r.content)
            assert [json.loads(a["arguments"]) for a in mixed] == [WEATHER, TIME]
            assert order[:4] == [0, 1, 0, 1]  # call 1 opens before call 0's arguments
            assert order != sorted(order)

    run(main())


def test_openai_non_stream_calls_and_the_sdk_assembles_interleaved_stream() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post(
                "/v1/chat/completions", json=openai_body(tools=O_TOOLS), headers=calls(2)
            )
            message = r.json()["choices"][0]["message"]
            assert message["content"] is None
            assert [t["function"]["name"] for t in message["tool_calls"]] == [
                "get_weather",
                "get_time",
            ]
            assert r.json()["choices"][0]["finish_reason"] == "tool_calls"
            o = openai.AsyncOpenAI(base_url=mock.base_url + "/v1", api_key=KEY, max_retries=0)
            async with o:
                stream = await o.chat.completions.create(
                    model="gpt-x",
                    messages=[{"role": "user", "content": "both please"}],
                    tools=O_TOOLS,  # type: ignore[arg-type]
                    stream=True,
                    extra_headers=calls(4, **{"x-mock-interleave-tools": "1"}),
                )
                args: dict[int, str] = {}
                async for chunk in stream:
                    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                        if call.function and call.function.arguments:
                            args[call.index] = args.get(call.index, "") + call.function.arguments
            assert [json.loads(args[i]) for i in range(4)] == [WEATHER, TIME, WEATHER, TIME]

    run(main())


def test_parallel_opt_outs_and_tool_choice_limit_the_calls() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post(
                "/v1/chat/completions",
                json=openai_body(tools=O_TOOLS, parallel_tool_calls=False),
                headers=calls(3),
            )
            assert len(r.json()["choices"][0]["message"]["tool_calls"]) == 1
            body = anthropic_body(
                tools=A_TOOLS, tool_choice={"type": "auto", "disable_parallel_tool_use": True}
            )
            r = await c.post("/v1/messages", json=body, headers=calls(3))
            assert [b["type"] for b in r.json()["content"]] == ["text", "tool_use"]
            forced = anthropic_body(tools=A_TOOLS, tool_choice={"type": "tool", "name": "get_time"})
            r = await c.post("/v1/messages", json=forced, headers=calls(2))
            uses = [b for b in r.json()["content"] if b["type"] == "tool_use"]
            assert [u["name"] for u in uses] == ["get_time", "get_time"]
            assert uses[0]["id"] != uses[1]["id"]
            r = await c.post("/v1/messages", json=anthropic_body(), headers=calls(3))
            assert r.json()["stop_reason"] == "end_turn"  # no tools offered: text only
            for bad in ("0", "9", "two"):
                headers = {"x-mock-tool-calls": bad}
                r = await c.post("/v1/messages", json=anthropic_body(), headers=headers)
                assert r.status_code == 400 and "x-mock-tool-calls" in r.json()["error"]["message"]

    run(main())


def test_max_tokens_too_small_for_all_calls_drops_them() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            body = openai_body(tools=O_TOOLS, max_completion_tokens=8)
            r = await c.post("/v1/chat/completions", json=body, headers=calls(8))
            choice = r.json()["choices"][0]
            assert choice["finish_reason"] == "length" and "tool_calls" not in choice["message"]

    run(main())
