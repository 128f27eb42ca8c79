"""OpenAI request -> Anthropic request: one golden test per rule of protocol.md §5.1, the errors,
and the captured OpenAI SDK request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.dialects.translate.o2a_request import (
    PLACEHOLDER_USER_TEXT,
    openai_to_anthropic_request,
)
from proxy.errors import TranslationError

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "dialects"
USER_HI = {"role": "user", "content": "hi"}
HI_BLOCKS = [{"type": "text", "text": "hi"}]


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", [USER_HI])
    return openai_to_anthropic_request(body, model="claude-sonnet-4-5")


def messages_of(*messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = translate(messages=list(messages))["messages"]
    return out


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_whole_request_golden() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "max_completion_tokens": 500,
        "max_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": "END",
        "n": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-7",
        "seed": 1,
        "presence_penalty": 0.5,
        "response_format": {"type": "json_object"},
    }
    assert openai_to_anthropic_request(body, model="claude-sonnet-4-5") == {
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": HI_BLOCKS}],
        "max_tokens": 500,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "user-7"},
    }


def test_system_and_developer_messages_are_hoisted_and_empty_ones_dropped() -> None:
    out = translate(
        messages=[
            {"role": "developer", "content": "Rule one."},
            USER_HI,
            {"role": "system", "content": [{"type": "text", "text": "Rule two."}]},
            {"role": "system", "content": "   "},
            {"role": "user", "content": "more"},
        ]
    )
    assert out["system"] == [
        {"type": "text", "text": "Rule one."},
        {"type": "text", "text": "Rule two."},
    ]
    # the two user messages around the hoisted system message merge
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "more"}],
        }
    ]


def test_tool_calls_become_tool_use_and_tool_messages_one_user_message() -> None:
    assert messages_of(
        USER_HI,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                call("call_1", "Read", '{"file_path": "/a"}'),
                call("call_2", "Read", '{"file_path": "/b"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "A"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "B"}]},
        {"role": "user", "content": "now summarise"},
    ) == [
        {"role": "user", "content": HI_BLOCKS},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
                {"type": "tool_use", "id": "call_2", "name": "Read", "input": {"file_path": "/b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "A"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "B"}],
                },
                {"type": "text", "text": "now summarise"},
            ],
        },
    ]


def test_error_prefixed_tool_message_is_an_error_result_and_empty_content_omitted() -> None:
    assert messages_of(
        USER_HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("c1", "X", "{}"), call("c2", "X", "")],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Error: no such file"},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
    )[1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "c1", "name": "X", "input": {}},
                {"type": "tool_use", "id": "c2", "name": "X", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c1",
                    "is_error": True,
                    "content": "no such file",
                },
                {"type": "tool_result", "tool_use_id": "c2"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("", {}),
        ("  ", {}),
        ('{"a": 1', {"raw_arguments": '{"a": 1'}),
        ("[1, 2]", {"raw_arguments": "[1, 2]"}),
        ("not json", {"raw_arguments": "not json"}),
    ],
)
def test_tool_arguments_never_crash(arguments: str, expected: dict[str, Any]) -> None:
    assistant = {"role": "assistant", "content": None, "tool_calls": [call("c", "T", arguments)]}
    assert messages_of(USER_HI, assistant)[1]["content"][0]["input"] == expected


def test_tool_ids_with_bad_characters_are_mapped_on_both_sides() -> None:
    out = messages_of(
        USER_HI,
        {"role": "assistant", "tool_calls": [call("fc.1/a", "T", "{}")]},
        {"role": "tool", "tool_call_id": "fc.1/a", "content": "ok"},
    )
    assert out[1]["content"][0]["id"] == "fc_1_a"
    assert out[2]["content"][0]["tool_use_id"] == "fc_1_a"


def test_empty_and_whitespace_content_never_becomes_a_text_block() -> None:
    assert messages_of(
        USER_HI,
        {"role": "assistant", "content": "  \n", "tool_calls": [call("c", "T", "{}")]},
        {"role": "tool", "tool_call_id": "c", "content": "r"},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": " "}]},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": "answer"},
    ) == [
        {"role": "user", "content": HI_BLOCKS},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c", "name": "T", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c", "content": "r"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
    ]


def test_same_role_neighbours_merge_and_first_message_is_user() -> None:
    assert messages_of(
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "How"}, {"type": "text", "text": " can I help?"}],
        },
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
    ) == [
        {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Hello!"},
                {"type": "text", "text": "How can I help?"},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]


def test_only_system_message_gets_a_placeholder_user_turn() -> None:
    out = translate(messages=[{"role": "system", "content": "s"}])
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]}
    ]


def test_images_data_uri_and_url() -> None:
    content = [
        {"type": "text", "text": "compare"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/jpeg;base64,/9j/4AA", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://x.test/b.png"}},
    ]
    assert messages_of({"role": "user", "content": content}) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "compare"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AA"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.test/b.png"}},
            ],
        }
    ]


def test_max_tokens_sources_and_default() -> None:
    assert translate(max_tokens=77)["max_tokens"] == 77
    assert translate(max_completion_tokens=88)["max_tokens"] == 88
    assert translate()["max_tokens"] == 4096
    body = {"model": "m", "messages": [USER_HI]}
    assert openai_to_anthropic_request(body, model="c", default_max_tokens=123)["max_tokens"] == 123


def test_stop_list_becomes_stop_sequences() -> None:
    assert translate(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate(stop=None)


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def test_tools_become_input_schema_tools() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    assert translate(tools=[TOOL, bare])["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(
    choice: Any, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    extra: dict[str, Any] = {"tools": [TOOL]}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    assert translate(**extra).get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in translate(tool_choice="required")


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking", "out_max_tokens"),
    [
        ("low", 4096, {"type": "enabled", "budget_tokens": 1024}, 4096),
        ("medium", 20000, {"type": "enabled", "budget_tokens": 8192}, 20000),
        ("high", 32000, {"type": "enabled", "budget_tokens": 24576}, 32000),
        ("high", 1000, {"type": "enabled", "budget_tokens": 24576}, 25576),
        ("medium", 8192, {"type": "enabled", "budget_tokens": 8192}, 16384),
        ("minimal", 1000, None, 1000),
        ("none", 1000, None, 1000),
    ],
)
def test_reasoning_effort_becomes_thinking(
    effort: str, max_tokens: int, thinking: dict[str, Any] | None, out_max_tokens: int
) -> None:
    out = translate(reasoning_effort=effort, max_tokens=max_tokens, temperature=0.2, top_p=0.9)
    assert out.get("thinking") == thinking
    assert out["max_tokens"] == out_max_tokens
    if thinking:
        assert "temperature" not in out and "top_p" not in out
    else:
        assert out["temperature"] == 0.2


def test_reasoning_effort_skipped_where_anthropic_refuses_thinking() -> None:
    forced = translate(reasoning_effort="high", tools=[TOOL], tool_choice="required")
    assert "thinking" not in forced
    mid_tool_loop = translate(
        reasoning_effort="high",
        messages=[
            USER_HI,
            {"role": "assistant", "tool_calls": [call("c", "get_weather", "{}")]},
            {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        ],
    )
    assert "thinking" not in mid_tool_loop


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"n": 2}, "n"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"stop": 5}, "stop"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    USER_HI,
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    },
                ]
            },
            "messages.1.content.0.image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0.image_url.url",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages.0.role"),
        (
            {
                "messages": [
                    USER_HI,
                    {
                        "role": "assistant",
                        "tool_calls": [{"type": "function", "function": {"name": "f"}}],
                    },
                ]
            },
            "messages.1.tool_calls.0.id",
        ),
        ({"messages": {"role": "user"}}, "messages"),
    ],
)
def test_untranslatable_requests_name_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        translate(**extra)
    assert err.value.field == field


def test_captured_openai_sdk_request() -> None:
    body = orjson.loads((FIXTURES / "sdk_py_openai_stream_tools.json").read_bytes())["body"]
    assert openai_to_anthropic_request(body, model="claude-haiku-4-5") == {
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?"}]}
        ],
        "max_tokens": 256,
        "stream": True,
        "tools": [
            {
                "name": "get_weather",
                "description": "Get the current weather for a city.",
                "input_schema": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "City name"}},
                    "required": ["location"],
                },
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather"},
    }
