"""Anthropic message -> OpenAI chat completion: golden tests for protocol.md §5.2."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.dialects.translate.a2o_response import anthropic_to_openai_response
from proxy.errors import UpstreamBadResponseError


def message(
    content: list[dict[str, Any]], stop: str | None = "end_turn", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
        **extra,
    }


def translate(body: dict[str, Any], completion_id: str | None = "chatcmpl-1") -> dict[str, Any]:
    return anthropic_to_openai_response(
        body, model="gpt-4o", created=1_700_000_000, completion_id=completion_id
    )


def test_whole_response_golden() -> None:
    body = message(
        [
            {"type": "thinking", "thinking": "Need the file.", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Reading "},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "/a"}},
            {"type": "text", "text": "now."},
            {"type": "tool_use", "id": "toolu_2", "name": "Ls", "input": {}},
        ],
        stop="tool_use",
        usage={
            "input_tokens": 20,
            "output_tokens": 30,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 7,
            "service_tier": "standard",
        },
    )
    assert translate(body) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Reading now.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "Read", "arguments": '{"path":"/a"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "Ls", "arguments": "{}"},
                        },
                    ],
                    "reasoning_content": "Need the file.",
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 127,
            "completion_tokens": 30,
            "total_tokens": 157,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }


def test_text_only_and_default_completion_id() -> None:
    out = translate(message([{"type": "text", "text": "Hi"}]), completion_id=None)
    assert out == {
        "id": "chatcmpl-msg_01XYZ",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def test_no_text_gives_null_content_and_server_tool_blocks_are_skipped() -> None:
    body = message(
        [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        ]
    )
    assert translate(body)["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
    }
    assert translate(message([]))["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
        ("brand_new", "stop"),
    ],
)
def test_finish_reason(stop: str | None, finish: str) -> None:
    out = translate(message([{"type": "text", "text": "x"}], stop=stop))
    assert out["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    "body",
    [
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"type": "message"},
        {"content": "text"},
        {"content": ["text"]},
        {"content": [{"type": "tool_use", "id": "t", "input": {}}]},
        {"content": [{"type": "tool_use", "name": "n", "input": {}}]},
    ],
)
def test_malformed_provider_body(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamBadResponseError):
        translate(body)
