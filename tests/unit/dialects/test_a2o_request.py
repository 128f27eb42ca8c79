"""Anthropic request -> OpenAI request: one golden test per row of protocol.md §4.1, the errors,
the captured Claude Code requests, and the A->O->A round trip (hypothesis)."""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.dialects.translate.a2o_request import (
    anthropic_to_openai_request,
    uses_max_completion_tokens,
)
from proxy.dialects.translate.o2a_request import openai_to_anthropic_request
from proxy.errors import TranslationError

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "dialects"
USER_HI = {"role": "user", "content": "hi"}


def translate(model: str = "gpt-4o", **body: Any) -> dict[str, Any]:
    body.setdefault("model", "claude-sonnet-4-5")
    body.setdefault("max_tokens", 1000)
    body.setdefault("messages", [USER_HI])
    return anthropic_to_openai_request(body, model=model)


def messages_of(*messages: Any, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = translate(messages=list(messages), **kw)["messages"]
    return out


# --- top level -----------------------------------------------------------------------------


def test_whole_request_golden() -> None:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "user-1"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "thinking": {"type": "adaptive"},
        "betas": ["x"],
        "service_tier": "auto",
    }
    assert anthropic_to_openai_request(body, model="gpt-4o") == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 64000,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "reasoning_effort": "high",
        "user": "user-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_system_blocks_joined_billing_header_and_cache_control_dropped() -> None:
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Main prompt.", "cache_control": {"type": "ephemeral"}},
    ]
    assert translate(system=system)["messages"] == [
        {"role": "system", "content": "You are Claude Code.\n\nMain prompt."},
        {"role": "user", "content": "hi"},
    ]


def test_empty_system_sends_no_system_message() -> None:
    assert translate(system="")["messages"] == [{"role": "user", "content": "hi"}]
    assert translate(system=[])["messages"] == [{"role": "user", "content": "hi"}]


def test_mid_conversation_system_message_kept_in_place() -> None:
    assert messages_of(
        USER_HI,
        {"role": "system", "content": "Agents: a, b"},
        {
            "role": "system",
            "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}],
        },
    ) == [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Agents: a, b"},
        {"role": "system", "content": "x\n\ny"},
    ]


# --- user content --------------------------------------------------------------------------


def test_user_string_and_single_text_block_become_strings() -> None:
    assert messages_of(
        {"role": "user", "content": "plain"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "one", "cache_control": {}}]},
    ) == [
        {"role": "user", "content": "plain"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "one"},
    ]


def test_user_text_blocks_become_parts_and_empty_text_is_dropped() -> None:
    content = [
        {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
        {"type": "text", "text": ""},
        {"type": "text", "text": "prompt", "cache_control": {"type": "ephemeral"}},
    ]
    assert messages_of({"role": "user", "content": content}) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "prompt"},
            ],
        }
    ]


def test_images_base64_and_url() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        {"type": "text", "text": "what is this?"},
    ]
    assert messages_of({"role": "user", "content": content}) == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                {"type": "text", "text": "what is this?"},
            ],
        }
    ]


# --- tool loop -----------------------------------------------------------------------------

ASSISTANT_TWO_CALLS = {
    "role": "assistant",
    "content": [
        {"type": "thinking", "thinking": "let me look", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Reading "},
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}},
        {"type": "text", "text": "both."},
        {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}},
    ],
}


def test_assistant_text_concatenated_parallel_tool_calls_thinking_dropped() -> None:
    assert messages_of(USER_HI, ASSISTANT_TWO_CALLS)[1] == {
        "role": "assistant",
        "content": "Reading both.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "Read", "arguments": '{"file_path":"/a"}'},
            },
            {"id": "toolu_2", "type": "function", "function": {"name": "Read", "arguments": "{}"}},
        ],
    }


def test_echo_reasoning_puts_thinking_in_reasoning_content() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [USER_HI, ASSISTANT_TWO_CALLS]}
    out = anthropic_to_openai_request(body, model="deepseek-reasoner", echo_reasoning=True)
    assert out["messages"][1]["reasoning_content"] == "let me look"
    assert out["messages"][1]["content"] == "Reading both."


def test_assistant_with_only_tool_calls_has_null_content() -> None:
    assistant = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_9", "name": "Ls", "input": {"d": "."}}],
    }
    assert messages_of(USER_HI, assistant)[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "Ls", "arguments": '{"d":"."}'},
            }
        ],
    }


def test_assistant_with_only_thinking_is_left_out() -> None:
    assistant = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}
    assert messages_of(USER_HI, assistant) == [{"role": "user", "content": "hi"}]


def test_tool_results_one_tool_message_each_then_user_message_with_the_rest() -> None:
    user = {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": "1\tThe secret word is PINEAPPLE.\n2\t",
                "cache_control": {"type": "ephemeral"},
            },
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "is_error": True,
                "content": [
                    {"type": "text", "text": "no such file"},
                    {"type": "text", "text": "(ENOENT)"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
                    },
                ],
            },
            {"type": "tool_result", "tool_use_id": "toolu_3"},
            {"type": "text", "text": "<system-reminder>keep going</system-reminder>"},
        ],
    }
    assert messages_of(USER_HI, ASSISTANT_TWO_CALLS, user)[2:] == [
        {
            "role": "tool",
            "tool_call_id": "toolu_1",
            "content": "1\tThe secret word is PINEAPPLE.\n2\t",
        },
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such file\n(ENOENT)"},
        {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
                {"type": "text", "text": "<system-reminder>keep going</system-reminder>"},
            ],
        },
    ]


def test_tool_result_alone_adds_no_user_message() -> None:
    user = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}],
    }
    assert messages_of(USER_HI, user)[1:] == [
        {"role": "tool", "tool_call_id": "t", "content": "ok"}
    ]


# --- tools and tool_choice -----------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def test_tools_become_functions_and_server_tools_are_dropped() -> None:
    tools = [
        {"name": "Search", "description": "find things", "input_schema": SCHEMA},
        {"type": "custom", "name": "Bare", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250429", "name": "str_replace_based_edit_tool"},
        {"type": "code_execution_20250522", "name": "code_execution"},
    ]
    out = translate(tools=tools)
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "Search", "description": "find things", "parameters": SCHEMA},
        },
        {"type": "function", "function": {"name": "Bare", "parameters": {"type": "object"}}},
    ]
    assert out["tools"][0]["function"]["parameters"] is SCHEMA  # shared, not copied


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        (
            {"type": "tool", "name": "Search"},
            {"tool_choice": {"type": "function", "function": {"name": "Search"}}},
        ),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
        ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate(tools=[{"name": "Search", "input_schema": SCHEMA}], tool_choice=choice)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_empty_or_server_only_tools_send_no_tools_and_no_tool_choice() -> None:
    out = translate(tools=[], tool_choice={"type": "auto"})
    assert "tools" not in out and "tool_choice" not in out
    out = translate(
        tools=[{"type": "web_search_20250305", "name": "w"}], tool_choice={"type": "any"}
    )
    assert "tools" not in out and "tool_choice" not in out


# --- sampling and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", False),
        ("gpt-4.1-mini", False),
        ("deepseek-chat", False),
        ("omni-moderation-latest", False),
        ("o1", True),
        ("o1-mini", True),
        ("o3-mini-2025-01-31", True),
        ("o4-mini", True),
        ("gpt-5", True),
        ("gpt-5-mini", True),
        ("gpt-5.1", True),
        ("openai/o3", True),
        ("GPT-5", True),
    ],
)
def test_uses_max_completion_tokens(model: str, expected: bool) -> None:
    assert uses_max_completion_tokens(model) is expected


def test_reasoning_model_gets_max_completion_tokens_and_no_sampling_knobs() -> None:
    out = translate(model="o3-mini", max_tokens=64000, temperature=0.2, top_p=0.5)
    assert out == {
        "model": "o3-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64000,
    }


def test_stop_sequences_become_stop_and_more_than_four_is_an_error() -> None:
    assert translate(stop_sequences=["a", "b", "c", "d"])["stop"] == ["a", "b", "c", "d"]
    assert "stop" not in translate(stop_sequences=[])
    with pytest.raises(TranslationError) as err:
        translate(stop_sequences=["a", "b", "c", "d", "e"])
    assert err.value.field == "stop_sequences"


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4095}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 8192}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, None, "high"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, {"effort": "medium"}, "medium"),
        ({"type": "adaptive"}, {"effort": "high"}, "high"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "adaptive"}, None, None),
        ({"type": "disabled"}, {"effort": "high"}, None),
        # No thinking key: the effort alone (Claude Code, for model names it does not know).
        (None, {"effort": "high"}, "high"),
        (None, {"effort": "max"}, "high"),
        (None, {"format": {"type": "json_schema", "schema": {}}}, None),
    ],
)
def test_thinking_to_reasoning_effort(
    thinking: dict[str, Any] | None, output_config: dict[str, Any] | None, effort: str | None
) -> None:
    extra: dict[str, Any] = {}
    if thinking:
        extra["thinking"] = thinking
    if output_config:
        extra["output_config"] = output_config
    assert translate(**extra).get("reasoning_effort") == effort


def test_user_id_short_passes_long_is_hashed_stably() -> None:
    assert translate(metadata={"user_id": "u" * 64})["user"] == "u" * 64
    long_id = '{"device_id":"' + "c1" * 32 + '","account_uuid":"","session_id":"a74c37ad"}'
    user = translate(metadata={"user_id": long_id})["user"]
    assert user == "u-" + hashlib.sha256(long_id.encode()).hexdigest()[:40]
    assert len(user) <= 64
    assert translate(metadata={"user_id": long_id})["user"] == user
    assert translate(metadata={"user_id": long_id + "x"})["user"] != user


def test_non_stream_request_sends_no_stream_keys() -> None:
    out = translate(stream=False)
    assert "stream" not in out and "stream_options" not in out


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (
            [
                USER_HI,
                {"role": "assistant", "content": "ok"},
                USER_HI,
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "see"},
                        {"type": "document", "source": {"type": "text", "data": "x"}},
                    ],
                },
            ],
            "messages.3.content.1",
        ),
        ([{"role": "user", "content": [{"type": "search_result"}]}], "messages.0.content.0"),
        (
            [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}],
            "messages.0.content.0.source",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "document"}],
                        }
                    ],
                }
            ],
            "messages.0.content.0.content.0",
        ),
        ([{"role": "user", "content": [{"type": "tool_use"}]}], "messages.0.content.0"),
        (
            [USER_HI, {"role": "assistant", "content": [{"type": "server_tool_use"}]}],
            "messages.1.content.0",
        ),
        ([{"role": "tool", "content": "x"}], "messages.0.role"),
        ([{"role": "user", "content": 5}], "messages.0.content"),
        (
            [{"role": "user", "content": [{"type": "tool_result"}]}],
            "messages.0.content.0.tool_use_id",
        ),
    ],
)
def test_untranslatable_content_names_the_field(messages: list[Any], field: str) -> None:
    with pytest.raises(TranslationError) as err:
        translate(messages=messages)
    assert err.value.field == field


def test_bad_system_block_and_tool_choice_name_the_field() -> None:
    with pytest.raises(TranslationError) as err:
        translate(system=[{"type": "text", "text": "a"}, {"type": "image"}])
    assert err.value.field == "system.1"
    with pytest.raises(TranslationError) as err:
        translate(tools=[{"name": "a"}], tool_choice={"type": "sometimes"})
    assert err.value.field == "tool_choice.type"
    with pytest.raises(TranslationError) as err:
        translate(messages="hi")
    assert err.value.field == "messages"


# --- captured Claude Code requests ---------------------------------------------------------


def assert_valid_openai_messages(messages: list[dict[str, Any]]) -> None:
    """OpenAI's ordering rules: tool messages answer the assistant tool calls just before them,
    every call is answered before the conversation moves on, and no content is empty."""
    pending: set[str] = set()
    for m in messages:
        role = m["role"]
        if role == "tool":
            assert m["tool_call_id"] in pending, m
            pending.discard(m["tool_call_id"])
            continue
        assert not pending, f"unanswered tool calls {pending} before {role}"
        if role == "assistant":
            calls = m.get("tool_calls", [])
            assert m["content"] or calls
            pending = {c["id"] for c in calls}
            assert len(pending) == len(calls)
        else:
            assert role in ("system", "user")
            assert m["content"]
            if isinstance(m["content"], list):
                assert all(p.get("text", "x") for p in m["content"])


@pytest.mark.parametrize(
    "name",
    ["cc_02_main_stream_text", "cc_06_tool_loop_turn1", "cc_07_tool_loop_turn2_tool_result"],
)
def test_captured_claude_code_requests_translate(name: str) -> None:
    body = orjson.loads((FIXTURES / f"{name}.json").read_bytes())["body"]
    out = anthropic_to_openai_request(body, model="gpt-4o")
    assert_valid_openai_messages(out["messages"])
    roles = [m["role"] for m in out["messages"]]
    assert roles[:3] == ["system", "user", "system"]
    assert not out["messages"][0]["content"].startswith("x-anthropic-billing-header")
    assert len(out["tools"]) == len(body["tools"])
    assert all(set(t["function"]) == {"name", "description", "parameters"} for t in out["tools"])
    assert out["reasoning_effort"] == "high"
    assert out["stream_options"] == {"include_usage": True}
    assert len(out["user"]) <= 64
    for dropped in ("context_management", "output_config", "thinking", "metadata", "system"):
        assert dropped not in out
    assert b"cache_control" not in orjson.dumps(out)


def test_captured_tool_loop_turn2_pairs_call_and_result() -> None:
    body = orjson.loads((FIXTURES / "cc_07_tool_loop_turn2_tool_result.json").read_bytes())["body"]
    out = anthropic_to_openai_request(body, model="gpt-4o")
    assert out["messages"][3:] == [
        {
            "role": "assistant",
            "content": "I'll read the file.",
            "tool_calls": [
                {
                    "id": "toolu_mock_7e738f07ea0d4bdc8b6d",
                    "type": "function",
                    "function": {
                        "name": "Read",
                        "arguments": '{"file_path":"/home/user/project/hello.txt"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_mock_7e738f07ea0d4bdc8b6d",
            "content": "1\tThe secret word is PINEAPPLE.\n2\t",
        },
    ]


# --- A -> O -> A keeps the meaning ---------------------------------------------------------

# No ':' so that no generated text starts with the "Error: " marker by accident.
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " \n.,é中", min_size=1).filter(
    lambda s: s.strip() != ""
)
_ID = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=24)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_INPUT = st.dictionaries(st.text(max_size=8), _JSON, max_size=4)


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    tool_names = draw(st.lists(_ID, max_size=3, unique=True))
    ids = iter(draw(st.lists(_ID, min_size=40, max_size=40, unique=True)))
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        user: list[dict[str, Any]] = []
        for call_id in pending:
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
            form = draw(st.sampled_from(["none", "str", "blocks"]))
            if form == "str":
                result["content"] = draw(_TEXT)
            elif form == "blocks":
                texts = draw(st.lists(_TEXT, min_size=1, max_size=2))
                result["content"] = [{"type": "text", "text": t} for t in texts]
            if draw(st.booleans()):
                result["is_error"] = draw(st.booleans())
            user.append(result)
        user += [{"type": "text", "text": t} for t in draw(st.lists(_TEXT, max_size=2))]
        if not user:
            user = [{"type": "text", "text": draw(_TEXT)}]
        if draw(st.booleans()) and len(user) == 1 and user[0]["type"] == "text":
            messages.append({"role": "user", "content": user[0]["text"]})
        else:
            messages.append({"role": "user", "content": user})
        assistant: list[dict[str, Any]] = [
            {"type": "text", "text": t} for t in draw(st.lists(_TEXT, max_size=2))
        ]
        pending = []
        for _ in range(draw(st.integers(0, 2)) if tool_names else 0):
            call_id = next(ids)
            pending.append(call_id)
            assistant.append(
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": draw(st.sampled_from(tool_names)),
                    "input": draw(_INPUT),
                }
            )
        if assistant:
            messages.append({"role": "assistant", "content": assistant})
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": draw(st.integers(1, 100_000)),
        "messages": messages,
    }
    if draw(st.booleans()):
        body["system"] = draw(_TEXT)
    if draw(st.booleans()):
        body["stop_sequences"] = draw(st.lists(_TEXT, max_size=4))
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        body["metadata"] = {"user_id": draw(_ID)}
    if tool_names:
        body["tools"] = [
            {"name": n, "description": draw(_TEXT), "input_schema": {"type": "object"}}
            for n in tool_names
        ]
        choice = draw(st.sampled_from(["auto", "any", "tool", "none", None]))
        if choice == "tool":
            body["tool_choice"] = {"type": "tool", "name": draw(st.sampled_from(tool_names))}
        elif choice is not None:
            body["tool_choice"] = {"type": choice}
        if choice not in (None, "none") and draw(st.booleans()):
            body["tool_choice"]["disable_parallel_tool_use"] = True
    return body


def _normalise(body: dict[str, Any]) -> dict[str, Any]:
    """What a request means, independent of the shapes either dialect prefers: consecutive
    same-role messages merged, a message's text items in order (an assistant's text joined, as
    OpenAI holds it in one string), tool results first in a user turn, string content as one
    text block."""
    turns: list[tuple[str, list[tuple[Any, ...]]]] = []
    for m in body["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        items: list[tuple[Any, ...]] = []
        for b in blocks:
            if b["type"] == "text":
                items.append(("text", b["text"]))
            elif b["type"] == "tool_use":
                items.append(("tool_use", b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                inner = b.get("content") or ""
                text = inner if isinstance(inner, str) else "\n".join(x["text"] for x in inner)
                items.append(("tool_result", b["tool_use_id"], text, b.get("is_error") is True))
        if turns and turns[-1][0] == m["role"]:
            turns[-1][1].extend(items)
        else:
            turns.append((m["role"], items))
    normal_turns = []
    for role, items in turns:
        if role == "assistant":
            text = "".join(i[1] for i in items if i[0] == "text")
            calls = [i for i in items if i[0] == "tool_use"]
            items = ([("text", text)] if text else []) + calls
        else:
            items = [i for i in items if i[0] == "tool_result"] + [
                i for i in items if i[0] != "tool_result"
            ]
        normal_turns.append((role, items))
    system = body.get("system")
    tools = [(t["name"], t.get("description"), t["input_schema"]) for t in body.get("tools", [])]
    choice = body.get("tool_choice") if tools else None
    if choice is not None:
        choice = (
            choice["type"],
            choice.get("name"),
            choice.get("disable_parallel_tool_use", False) and choice["type"] != "none",
        )
    return {
        "system": system
        if isinstance(system, str)
        else "\n\n".join(b["text"] for b in system or []),
        "messages": normal_turns,
        "tools": tools,
        "tool_choice": choice,
        "max_tokens": body["max_tokens"],
        "stop": body.get("stop_sequences") or None,
        "temperature": body.get("temperature"),
        "user": (body.get("metadata") or {}).get("user_id"),
    }


@settings(max_examples=150, deadline=None)
@given(anthropic_requests())
def test_a2o_then_o2a_keeps_the_meaning(body: dict[str, Any]) -> None:
    openai = anthropic_to_openai_request(body, model="gpt-4o")
    assert_valid_openai_messages(openai["messages"])
    back = openai_to_anthropic_request(orjson.loads(orjson.dumps(openai)), model="claude-x")
    assert _normalise(back) == _normalise(body)
