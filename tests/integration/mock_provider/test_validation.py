"""Strict checks: requests a real provider rejects get a 400 in the dialect, with a message
saying where the problem is; valid conversations (tool loops, system messages) pass."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.mock_provider.anthropic_checks import check_anthropic
from proxy.mock_provider.cli import add_arguments, options_from
from proxy.mock_provider.openai_checks import check_openai

from .helpers import anthropic_body, fixture_json, openai_body, provider, run

USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "x"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"location":"x"}'},
}


def a_turns(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "hi"}, *messages]


ANTHROPIC_REJECTS: list[tuple[dict[str, Any], str]] = [
    ({"max_tokens": None}, "max_tokens: Field required"),
    (
        {"messages": a_turns({"role": "user", "content": "again"})},
        'messages.1: roles must alternate between "user" and "assistant", '
        'but found multiple "user" roles in a row',
    ),
    (
        {"messages": [{"role": "assistant", "content": "hi"}]},
        'messages.0: the first message must use the "user" role',
    ),
    (
        {
            "messages": a_turns(
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": [RESULT]}
            )
        },
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
        "message.",
    ),
    (
        {
            "messages": a_turns(
                {"role": "assistant", "content": [USE, USE | {"id": "toolu_2"}]},
                {"role": "user", "content": [RESULT]},
            )
        },
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_2.",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        "messages.0.content.0.text: text content blocks must be non-empty",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": " \n"}]}]},
        "messages.0.content.0.text: text content blocks must contain non-whitespace text",
    ),
    (
        {"system": [{"type": "text", "text": ""}]},
        "system.0.text: text content blocks must be non-empty",
    ),
    (
        {
            "messages": a_turns(
                {"role": "assistant", "content": ""}, {"role": "user", "content": "x"}
            )
        },
        "messages.1: all messages must have non-empty content except for the optional final "
        "assistant message",
    ),
    (
        {
            "messages": a_turns(
                {"role": "assistant", "content": [USE | {"id": "call.1:x"}]},
                {"role": "user", "content": [RESULT | {"tool_use_id": "call.1:x"}]},
            )
        },
        "messages.1.content.0.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
    ),
    (
        {"messages": a_turns({"role": "assistant", "content": [USE | {"input": '{"a":1}'}]})},
        "messages.1.content.0.input: Input should be a valid dictionary",
    ),
    (
        {"messages": a_turns({"role": "assistant", "content": [USE, USE]})},
        "messages.1.content.1: `tool_use` ids must be unique",
    ),
    (
        {"messages": [{"role": "tool", "content": "x"}]},
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a"}}],
                }
            ]
        },
        "messages.0.content.0: Input tag 'image_url' found using 'type' does not match",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="},
                        }
                    ],
                }
            ]
        },
        "messages.0.content.0.source.base64.media_type: Input should be one of",
    ),
    (
        {
            "messages": a_turns(
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}
            )
        },
        "messages.1.content.0.signature: Field required",
    ),
    (
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1024},
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    ({"temperature": 1.5}, "temperature: Input should be a number between 0 and 1"),
    (
        {"tools": [{"name": "a.b", "input_schema": {"type": "object"}}]},
        "tools.0.name: String should match pattern",
    ),
]

OPENAI_REJECTS: list[tuple[dict[str, Any], str]] = [
    (
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            ]
        },
        "messages with role 'tool' must be a response to a preceding message with 'tool_calls' "
        "('messages[1].tool_call_id' is 'call_1'",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_2", "content": "x"},
            ]
        },
        "'messages[2].tool_call_id' is 'call_2', which no tool call of that message has",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [CALL, CALL | {"id": "call_2"}],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                {"role": "user", "content": "and?"},
            ]
        },
        "The following tool_call_ids did not have response messages: call_2",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant"},
                {"role": "user", "content": "x"},
            ]
        },
        "Invalid value for 'messages[1].content': expected a string, got null (an assistant "
        "message needs 'content' or 'tool_calls').",
    ),
    (
        {"messages": [{"role": "human", "content": "hi"}]},
        "Invalid value for 'messages[0].role': 'human'. Supported values are:",
    ),
    (
        {"stop": ["a", "b", "c", "d", "e"]},
        "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an "
        "array with length 5 instead.",
    ),
    (
        {"max_tokens": 10, "max_completion_tokens": 10},
        "'max_tokens' and 'max_completion_tokens' cannot both be set",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [CALL | {"function": {"name": "f", "arguments": {"a": 1}}}],
                },
            ]
        },
        "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string, "
        "but got dict instead.",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
        "Invalid value for 'messages[0].content[0].type': 'image'. Supported values are:",
    ),
    (
        {"stream_options": {"include_usage": True}},
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
    ),
    (
        {"tools": [{"type": "function", "function": {"name": "x" * 65}}]},
        "Invalid 'tools[0].function.name': string does not match pattern.",
    ),
]


@pytest.mark.parametrize(("extra", "message"), ANTHROPIC_REJECTS)
def test_anthropic_rejects(extra: dict[str, Any], message: str) -> None:
    body = anthropic_body(**extra)
    body = {k: v for k, v in body.items() if v is not None}

    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post("/v1/messages", json=body)
            assert r.status_code == 400
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith(message), error["message"]
            stream = await c.post("/v1/messages", json=body | {"stream": True})
            assert stream.status_code == 400  # checked before any stream starts

    run(main())


@pytest.mark.parametrize(("extra", "message"), OPENAI_REJECTS)
def test_openai_rejects(extra: dict[str, Any], message: str) -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post("/v1/chat/completions", json=openai_body(**extra))
            assert r.status_code == 400
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert message in error["message"], error["message"]

    run(main())


def test_lenient_option_and_header_answer_what_strict_rejects() -> None:
    bad_a = anthropic_body(
        messages=a_turns({"role": "user", "content": [{"type": "text", "text": ""}]})
    )
    bad_o = openai_body(stop=["1", "2", "3", "4", "5"], max_tokens=9, max_completion_tokens=9)

    async def main() -> None:
        async with provider(strict=False) as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            assert (await c.post("/v1/messages", json=bad_a)).status_code == 200
            assert (await c.post("/v1/chat/completions", json=bad_o)).status_code == 200
            strict_again = {"x-mock-strict": "1"}
            r = await c.post("/v1/messages", json=bad_a, headers=strict_again)
            assert r.status_code == 400
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            lenient = {"x-mock-strict": "0"}
            assert (await c.post("/v1/messages", json=bad_a, headers=lenient)).status_code == 200
            assert (await c.post("/v1/chat/completions", json=bad_o)).status_code == 400

    run(main())


def test_valid_tool_loops_and_system_messages_pass() -> None:
    turn2 = fixture_json("cc_07_tool_loop_turn2_tool_result.json")["body"]  # real Claude Code
    parallel_a = anthropic_body(
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": "weather in two cities"},
            {"role": "system", "content": "Agents available: none"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Checking."}, USE, USE | {"id": "toolu_2"}],
            },
            {
                "role": "user",
                "content": [
                    RESULT,
                    RESULT | {"tool_use_id": "toolu_2", "is_error": True},
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                ],
            },
            {"role": "assistant", "content": "Both sunny"},  # a prefill may end the list
        ],
    )
    parallel_o = openai_body(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                ],
            },
            {"role": "assistant", "content": "", "tool_calls": [CALL, CALL | {"id": "call_2"}]},
            {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": "sun"}],
            },
            {"role": "user", "content": "thanks"},
        ],
        max_completion_tokens=50,
        stop=["a", "b", "c", "d"],
        stream=True,
        stream_options={"include_usage": True},
    )

    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post("/v1/messages?beta=true", json=turn2)
            assert r.status_code == 200
            r = await c.post("/v1/messages", json=parallel_a)
            assert r.status_code == 200, r.text
            r = await c.post("/v1/chat/completions", json=parallel_o)
            assert r.status_code == 200, r.text

    run(main())


def test_lenient_cli_flag_and_bad_strict_header() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args([])).strict is True
    assert options_from(parser.parse_args(["--lenient"])).strict is False

    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            for name in ("x-mock-strict", "x-mock-reasoning", "x-mock-interleave-tools"):
                r = await c.post("/v1/messages", json=anthropic_body(), headers={name: "maybe"})
                assert r.status_code == 400
                assert r.json()["error"]["message"] == f"{name} must be 1 or 0, got 'maybe'"

    run(main())


KEYS = st.sampled_from(
    ["role", "content", "type", "text", "id", "name", "input", "tool_use_id", "source", "data",
     "media_type", "url", "tool_calls", "function", "arguments", "tool_call_id", "image_url",
     "signature", "thinking"]
)  # fmt: skip
WORDS = st.sampled_from(
    ["user", "assistant", "system", "tool", "text", "image", "image_url", "tool_use",
     "tool_result", "thinking", "function", "base64", "url", "toolu_1", "call_1", "", " "]
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | WORDS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)
BLOCK = st.dictionaries(KEYS, JSON, max_size=5)
MESSAGE = st.fixed_dictionaries(
    {"role": WORDS},
    optional={
        "content": JSON | st.lists(BLOCK, max_size=4),
        "tool_calls": st.lists(BLOCK, max_size=3) | JSON,
        "tool_call_id": WORDS,
    },
)


@settings(max_examples=250, deadline=None)
@given(messages=st.lists(MESSAGE | JSON, min_size=1, max_size=5), extra=st.dictionaries(
    st.sampled_from(["system", "tools", "stop", "thinking", "temperature", "stream_options"]),
    JSON, max_size=3,
))  # fmt: skip
def test_checks_answer_any_json_with_none_or_a_message(
    messages: list[Any], extra: dict[str, Any]
) -> None:
    a_body = {"model": "m", "max_tokens": 5, "messages": messages, **extra}
    o_body = {"model": "m", "messages": messages, **extra}
    for problem in (
        check_anthropic(a_body, count_only=False),
        check_openai(o_body),
    ):
        assert problem is None or (isinstance(problem, str) and problem)
