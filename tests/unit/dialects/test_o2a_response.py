"""OpenAI chat completion -> Anthropic message: golden tests for protocol.md §4.2 and §4.4."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.dialects.translate.o2a_response import (
    openai_to_anthropic_response,
    parse_tool_arguments,
    synthesized_tool_id,
)
from proxy.errors import UpstreamBadResponseError

MSG_ID = "msg_01abc"


def completion(
    message: dict[str, Any], finish: str | None = "stop", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        **extra,
    }


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return openai_to_anthropic_response(body, model="claude-sonnet-4-5", message_id=MSG_ID)


def call(call_id: Any, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_whole_response_golden() -> None:
    body = completion(
        {
            "role": "assistant",
            "content": "Let me check.",
            "reasoning_content": "The user wants weather.",
            "tool_calls": [
                call("call_abc", "get_weather", '{"city": "Paris"}'),
                call("call_def", "get_time", ""),
            ],
        },
        finish="tool_calls",
        usage={
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    )
    assert translate(body) == {
        "id": MSG_ID,
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": ""},
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "call_abc",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "call_def", "name": "get_time", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 30,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
        },
    }


def test_plain_text_answer() -> None:
    body = completion(
        {"role": "assistant", "content": "Hi!"},
        usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    )
    assert translate(body) == {
        "id": MSG_ID,
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }


@pytest.mark.parametrize("content", [None, "", "  \n", []])
def test_empty_text_is_omitted_and_empty_message_has_empty_content(content: Any) -> None:
    out = translate(completion({"role": "assistant", "content": content}))
    assert out["content"] == []
    assert out["stop_reason"] == "end_turn"
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_tool_only_turn_has_no_text_block() -> None:
    body = completion(
        {"role": "assistant", "content": "", "tool_calls": [call("c1", "Ls", '{"d":"."}')]},
        finish="tool_calls",
    )
    assert translate(body)["content"] == [
        {"type": "tool_use", "id": "c1", "name": "Ls", "input": {"d": "."}}
    ]


def test_reasoning_field_and_content_parts() -> None:
    body = completion(
        {
            "role": "assistant",
            "reasoning": "thought",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    )
    assert translate(body)["content"] == [
        {"type": "thinking", "thinking": "thought", "signature": ""},
        {"type": "text", "text": "ab"},
    ]


def test_refusal_becomes_text() -> None:
    body = completion(
        {"role": "assistant", "content": None, "refusal": "I can't help."}, "content_filter"
    )
    out = translate(body)
    assert out["content"] == [{"type": "text", "text": "I can't help."}]
    assert out["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    ("finish", "has_tools", "stop"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("function_call", True, "tool_use"),
        ("content_filter", False, "refusal"),
        (None, False, "end_turn"),
        ("something_new", False, "end_turn"),
        ("stop", True, "tool_use"),  # Gemini / vLLM say stop beside tool calls
        (None, True, "tool_use"),
        ("length", True, "max_tokens"),
    ],
)
def test_stop_reason(finish: str | None, has_tools: bool, stop: str) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": "x"}
    if has_tools:
        message["tool_calls"] = [call("c", "T", "{}")]
    assert translate(completion(message, finish))["stop_reason"] == stop


def test_invalid_missing_and_repeated_tool_ids_are_synthesized_deterministically() -> None:
    body = completion(
        {
            "role": "assistant",
            "tool_calls": [
                call("ok_id-1", "A", "{}"),
                call("", "B", "{}"),
                call(None, "C", "{}"),
                call("has space", "D", "{}"),
                call("ok_id-1", "E", "{}"),
            ],
        },
        "tool_calls",
    )
    ids = [b["id"] for b in translate(body)["content"]]
    assert ids == [
        "ok_id-1",
        synthesized_tool_id(MSG_ID, 1),
        synthesized_tool_id(MSG_ID, 2),
        synthesized_tool_id(MSG_ID, 3),
        synthesized_tool_id(MSG_ID, 4),
    ]
    assert len(set(ids)) == 5
    assert synthesized_tool_id(MSG_ID, 1) == synthesized_tool_id(MSG_ID, 1)
    assert synthesized_tool_id(MSG_ID, 1).startswith("toolu_")
    assert [b["id"] for b in translate(body)["content"]] == ids


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": {"b": [1, null]}}', {"a": {"b": [1, None]}}),
        ("", {}),
        (None, {}),
        ({"already": "parsed"}, {"already": "parsed"}),
        ('{"a": 1', {"raw_arguments": '{"a": 1'}),
        ('"just a string"', {"raw_arguments": '"just a string"'}),
        ("null", {"raw_arguments": "null"}),
    ],
)
def test_tool_arguments(arguments: Any, expected: dict[str, Any]) -> None:
    assert parse_tool_arguments(arguments) == expected
    body = completion(
        {"role": "assistant", "tool_calls": [call("c", "T", arguments)]}, "tool_calls"
    )
    assert translate(body)["content"][0]["input"] == expected


def test_anthropic_style_cache_usage_fields() -> None:
    body = completion(
        {"role": "assistant", "content": "x"},
        usage={"prompt_tokens": 50, "completion_tokens": 1, "cache_read_input_tokens": 40},
    )
    assert translate(body)["usage"] == {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_read_input_tokens": 40,
        "cache_creation_input_tokens": 0,
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"choices": []},
        {"choices": None},
        {"choices": ["x"]},
        {"choices": [{"index": 0}]},
        {"error": {"message": "boom"}},
        {"error": "boom"},
        {"choices": [{"message": {"tool_calls": "nope"}}]},
        {"choices": [{"message": {"tool_calls": ["nope"]}}]},
        {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}}]},
        {"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]},
    ],
)
def test_malformed_provider_body(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamBadResponseError):
        translate(body)
