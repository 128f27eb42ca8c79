"""Local token estimates: close to a real BPE tokenizer, monotonic, deterministic, and never
crashing on odd request shapes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.dialects.tokens import (
    ANTHROPIC_FORCED_TOOLS_PROMPT_TOKENS,
    ANTHROPIC_IMAGE_TOKENS,
    ANTHROPIC_MESSAGE_TOKENS,
    ANTHROPIC_TOOLS_PROMPT_TOKENS,
    OPENAI_IMAGE_TOKENS,
    OPENAI_LOW_DETAIL_IMAGE_TOKENS,
    count_tokens,
    estimate_json_tokens,
    estimate_text_tokens,
    token_inputs,
)
from proxy.filters.api import Dialect

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dialects" / "tokens"
ANTHROPIC = Dialect.ANTHROPIC
OPENAI = Dialect.OPENAI
TOLERANCE = 0.25  # per short string; whole requests are held to much less below

# (text, tokens by cl100k_base measured with tiktoken 0.14)
KNOWN_TEXT = [
    ("Hello, world", 3),
    (
        "The quick brown fox jumps over the lazy dog. "
        * 3
        + "Claude Code sends a long system prompt, a list of tools with JSON schemas, and the "
        "conversation so far; the gateway estimates how many tokens that is before choosing a "
        "route.",
        65,
    ),
    (
        "def count_tokens(body: dict[str, Any], dialect: Dialect) -> int:\n"
        '    """Estimated input tokens."""\n'
        "    inputs = token_inputs(body, dialect)\n"
        '    return estimate_text_tokens("\\n".join(inputs.texts)) + inputs.fixed_tokens\n',
        51,
    ),
    ("今日は良い天気ですね。明日も晴れるといいのですが、天気予報では雨が降るそうです。", 42),
    ("Order 12345 shipped on 2026-11-26 at 14:03; total 1,299.95 USD for 3 items.", 32),
]
KNOWN_JSON = (
    '{"type":"object","properties":{"file_path":{"type":"string","description":"The absolute '
    'path to the file to read"},"offset":{"type":"integer","description":"The line number to '
    'start reading from"},"limit":{"type":"integer","exclusiveMinimum":0}},"required":'
    '["file_path"],"additionalProperties":false}'
)
KNOWN_JSON_TOKENS = 63
# cc_tui_02 (Claude Code main turn): cl100k_base tokens of its texts plus the same fixed costs.
CAPTURE_CL100K_TOKENS = 8906


def capture_body() -> dict[str, Any]:
    data = json.loads((FIXTURES / "cc_tui_02_main_turn1.json").read_text(encoding="utf-8"))
    body: dict[str, Any] = data["body"]
    return body


@pytest.mark.parametrize(("text", "tokens"), KNOWN_TEXT)
def test_known_strings_are_close_to_cl100k(text: str, tokens: int) -> None:
    assert abs(estimate_text_tokens(text) - tokens) <= TOLERANCE * tokens


def test_known_json_is_close_to_cl100k() -> None:
    estimate = estimate_json_tokens(KNOWN_JSON)
    assert abs(estimate - KNOWN_JSON_TOKENS) <= TOLERANCE * KNOWN_JSON_TOKENS
    # Prose weights would overcount JSON: that is why it has its own.
    assert estimate_text_tokens(KNOWN_JSON) > estimate


def test_claude_code_request_is_within_five_percent_of_cl100k() -> None:
    estimate = count_tokens(capture_body(), ANTHROPIC)
    assert abs(estimate - CAPTURE_CL100K_TOKENS) <= 0.05 * CAPTURE_CL100K_TOKENS


def test_documented_hello_world_request() -> None:
    # Anthropic's count_tokens example answers 14 for this request.
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello, world"}]}
    assert count_tokens(body, ANTHROPIC) == 14


def test_empty_and_single_character() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_json_tokens("") == 0
    assert estimate_text_tokens("a") == 1
    assert count_tokens({}, ANTHROPIC) > 0


@settings(max_examples=200, deadline=None)
@given(a=st.text(), b=st.text())
def test_more_text_never_means_fewer_tokens(a: str, b: str) -> None:
    assert estimate_text_tokens(a + b) >= estimate_text_tokens(a)
    assert estimate_json_tokens(a + b) >= estimate_json_tokens(a)


def test_request_counts_grow_with_content() -> None:
    body = capture_body()
    base = count_tokens(body, ANTHROPIC)
    longer = copy.deepcopy(body)
    longer["messages"][0]["content"][-1]["text"] += " and one more sentence to read."
    assert count_tokens(longer, ANTHROPIC) > base
    more = copy.deepcopy(body)
    more["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    assert count_tokens(more, ANTHROPIC) > base
    fewer_tools = {**body, "tools": body["tools"][:-1]}
    assert count_tokens(fewer_tools, ANTHROPIC) < base


def test_deterministic() -> None:
    body = capture_body()
    assert count_tokens(body, ANTHROPIC) == count_tokens(copy.deepcopy(body), ANTHROPIC)
    assert count_tokens(body, ANTHROPIC) == count_tokens(body, ANTHROPIC)


def test_anthropic_blocks_are_all_counted() -> None:
    message = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Let me read the file first.", "signature": "x" * 500},
            {"type": "text", "text": "Reading it."},
            {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/a/b.txt"}},
        ],
    }
    result = {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "content": [{"type": "text", "text": "42"}],
            }
        ],
    }
    inputs = token_inputs({"messages": [message, result]}, ANTHROPIC)
    assert inputs.texts == ["Let me read the file first.", "Reading it.", "Read", "42"]
    assert inputs.json_texts == ['{"file_path":"/a/b.txt"}']
    assert inputs.fixed_tokens == 7 + 2 * ANTHROPIC_MESSAGE_TOKENS + 2 * 3


def test_tools_images_and_tool_choice_costs() -> None:
    tool = {"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}}
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    with_tools = {**plain, "tools": [tool]}
    forced = {**with_tools, "tool_choice": {"type": "any"}}
    base = count_tokens(plain, ANTHROPIC)
    assert count_tokens(with_tools, ANTHROPIC) > base + ANTHROPIC_TOOLS_PROMPT_TOKENS
    assert (
        count_tokens(with_tools, ANTHROPIC) - count_tokens(forced, ANTHROPIC)
        == ANTHROPIC_TOOLS_PROMPT_TOKENS - ANTHROPIC_FORCED_TOOLS_PROMPT_TOKENS
    )
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 9000},
    }
    with_image = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    }
    assert count_tokens(with_image, ANTHROPIC) == base + ANTHROPIC_IMAGE_TOKENS


def test_openai_dialect() -> None:
    body = {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Read /a/b.txt"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "Read",
                            "arguments": '{\n  "file_path": "/a/b.txt"\n}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "Read",
                    "description": "Read a file",
                    "parameters": {"type": "object"},
                },
            }
        ],
    }
    inputs = token_inputs(body, OPENAI)
    assert inputs.texts == [
        "You are terse.",
        "ann",
        "Read /a/b.txt",
        "Read",
        "42",
        "Read",
        "Read a file",
    ]
    # Arguments are counted in their compact form, whatever layout the model used.
    assert inputs.json_texts == ['{"file_path":"/a/b.txt"}', '{"type":"object"}']
    low = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:x", "detail": "low"}}],
    }
    high = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
    }
    base = count_tokens({"messages": []}, OPENAI)
    assert count_tokens({"messages": [low]}, OPENAI) == base + 3 + OPENAI_LOW_DETAIL_IMAGE_TOKENS
    assert count_tokens({"messages": [high]}, OPENAI) == base + 3 + OPENAI_IMAGE_TOKENS


def test_same_conversation_in_both_dialects_counts_alike() -> None:
    text = "Summarise the design document in three bullet points, please."
    anthropic = {"system": "Be brief.", "messages": [{"role": "user", "content": text}]}
    openai = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    }
    a, o = count_tokens(anthropic, ANTHROPIC), count_tokens(openai, OPENAI)
    assert abs(a - o) <= 5


KEYS = st.sampled_from(
    [
        "type",
        "text",
        "content",
        "input",
        "name",
        "source",
        "thinking",
        "tool_use_id",
        "function",
        "arguments",
        "image_url",
        "detail",
        "description",
        "input_schema",
        "parameters",
        "tool_calls",
        "data",
        "role",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "response_format",
        "json_schema",
        "schema",
        "reasoning_content",
    ]
)
TYPES = st.sampled_from(
    [
        "text",
        "image",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "document",
        "server_tool_use",
        "image_url",
        "refusal",
        "file",
        "input_text",
        "weird",
        "any",
        "function",
    ]
)
GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | TYPES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(KEYS, GARBAGE, max_size=6), dialect=st.sampled_from(list(Dialect)))
def test_garbage_never_crashes(body: dict[str, Any], dialect: Dialect) -> None:
    tokens = count_tokens(body, dialect)
    assert isinstance(tokens, int) and tokens >= 0


def test_unserialisable_values_are_counted_not_raised() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "tool_use", "name": "f", "input": {"n": 2**70}}]},
            {"role": "user", "content": [{"type": "mystery", "blob": "\ud800"}]},
        ],
        "tools": [{"name": "t", "input_schema": {1: "non-string key"}}],
    }
    assert count_tokens(body, ANTHROPIC) > 0
    assert count_tokens({"messages": "not a list", "tools": 3, "system": 5}, ANTHROPIC) > 0
