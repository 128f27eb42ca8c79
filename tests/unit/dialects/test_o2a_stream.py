"""OpenAI chunk stream -> Anthropic event stream (protocol.md §4.3): golden sequences for each
rule, a grammar checker every output must pass, and the same output however the upstream SSE
bytes are split or which line endings they use."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.dialects.sse import SSEDecoder
from proxy.dialects.translate.o2a_stream import (
    AnthropicEvent,
    OpenAIToAnthropicStream,
    encode_anthropic_events,
    error_kind_from_openai,
)
from tests.unit.dialects.test_sse import LINE_ENDINGS, split_at, with_eol

STREAMS = Path(__file__).parents[2] / "fixtures" / "dialects" / "streams"
OPENAI_TWO_TOOLS = (STREAMS / "openai_reasoning_two_tools.sse").read_bytes()

MODEL = "claude-opus-4-8"
MSG_ID = "msg_gw_0001"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"}
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")

# -- builders ----------------------------------------------------------------------------------


def ch(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


def usage_chunk(usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}


def tool_open(k: int, call_id: str | None, name: str | None, args: Any = "") -> dict[str, Any]:
    return {
        "index": k,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


def tool_args(k: int, fragment: str) -> dict[str, Any]:
    return {"index": k, "function": {"arguments": fragment}}


def calls(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(parts)}


def message_start(hint: int = 0) -> AnthropicEvent:
    usage = {
        "input_tokens": hint,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    message: dict[str, Any] = {
        "id": MSG_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return ("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> AnthropicEvent:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


TEXT = {"type": "text", "text": ""}
THINKING = {"type": "thinking", "thinking": "", "signature": ""}


def tool_block(index: int, call_id: str, name: str) -> AnthropicEvent:
    return block_start(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})


def delta(index: int, d: dict[str, Any]) -> AnthropicEvent:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})


def text(index: int, t: str) -> AnthropicEvent:
    return delta(index, {"type": "text_delta", "text": t})


def think(index: int, t: str) -> AnthropicEvent:
    return delta(index, {"type": "thinking_delta", "thinking": t})


def json_part(index: int, p: str) -> AnthropicEvent:
    return delta(index, {"type": "input_json_delta", "partial_json": p})


def block_stop(index: int) -> AnthropicEvent:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def usage(inp: int, out: int, read: int = 0, created: int = 0) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": created,
    }


def ending(stop: str, u: dict[str, int]) -> list[AnthropicEvent]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": u,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def error_event(kind: str, message: str) -> AnthropicEvent:
    return ("error", {"type": "error", "error": {"type": kind, "message": message}})


def translate(
    chunks: Iterable[dict[str, Any]], *, end: str = "done", hint: int = 0
) -> list[AnthropicEvent]:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID, input_tokens_hint=hint)
    out: list[AnthropicEvent] = []
    for c in chunks:
        out += t.on_chunk(c)
    if end == "done":
        out += t.on_done()
    out += t.on_eof()
    return out


# -- golden sequences ---------------------------------------------------------------------------


def test_text_and_usage_after_finish_reason() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID, input_tokens_hint=9)
    assert t.on_chunk(ch({"role": "assistant", "content": ""})) == [message_start(9)]
    assert t.on_chunk(ch({"content": "Hel"})) == [block_start(0, TEXT), text(0, "Hel")]
    assert t.on_chunk(ch({"content": "lo"})) == [text(0, "lo")]
    # The finish chunk closes the block; message_delta waits for the usage chunk after it.
    assert t.on_chunk(ch({}, "stop")) == [block_stop(0)]
    assert not t.finished
    u = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    assert t.on_chunk(usage_chunk(u)) == ending("end_turn", usage(10, 2))
    assert t.finished and t.ended and t.usage == usage(10, 2)
    assert t.on_done() == [] and t.on_eof() == []


def test_thinking_with_signature_then_text_usage_on_the_finish_chunk() -> None:
    chunks = [
        ch({"role": "assistant", "content": None, "reasoning_content": "Let me "}),
        ch({"reasoning": "think."}),  # OpenRouter's key
        ch({"thinking": {"content": " Done.", "signature": "c2ln"}}),
        ch({"content": "Answer."}),
        # DeepSeek-style: usage on the finish chunk itself ends the message at once.
        ch({}, "stop", {"prompt_tokens": 5, "completion_tokens": 7}),
    ]
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    out = [e for c in chunks for e in t.on_chunk(c)]
    assert out == [
        message_start(),
        block_start(0, THINKING),
        think(0, "Let me "),
        think(0, "think."),
        think(0, " Done."),
        delta(0, {"type": "signature_delta", "signature": "c2ln"}),
        block_stop(0),
        block_start(1, TEXT),
        text(1, "Answer."),
        block_stop(1),
        *ending("end_turn", usage(5, 7)),
    ]
    assert t.finished and t.on_done() == []


def test_single_tool_call_with_streamed_arguments_and_cached_usage() -> None:
    chunks = [
        ch({"role": "assistant", "content": None}),
        ch({"content": "Checking."}),
        ch(calls(tool_open(0, "call_abc", "Read"))),
        ch(calls(tool_args(0, '{"file_path"'))),
        ch(calls(tool_args(0, ': "/tmp/a'))),
        ch(calls(tool_args(0, '.txt"}'))),
        ch({}, "tool_calls"),
        usage_chunk(
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 30},
            }
        ),
    ]
    assert translate(chunks) == [
        message_start(),
        block_start(0, TEXT),
        text(0, "Checking."),
        block_stop(0),
        tool_block(1, "call_abc", "Read"),
        json_part(1, '{"file_path"'),
        json_part(1, ': "/tmp/a'),
        json_part(1, '.txt"}'),
        block_stop(1),
        *ending("tool_use", usage(70, 20, read=30)),
    ]


def test_parallel_calls_one_after_the_other_both_stream_live() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", "f", '{"x"'))),
        ch(calls(tool_args(0, ": 1}"))),
        ch(calls(tool_open(1, "call_b", "g"))),
        ch(calls(tool_args(1, '{"y": 2}'))),
        ch({}, "tool_calls"),
    ]
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    per_chunk = [t.on_chunk(c) for c in chunks]
    assert per_chunk == [
        [message_start(), tool_block(0, "call_a", "f"), json_part(0, '{"x"')],
        [json_part(0, ": 1}")],
        [block_stop(0), tool_block(1, "call_b", "g")],
        [json_part(1, '{"y": 2}')],
        [block_stop(1)],
    ]
    assert t.on_done() == ending("tool_use", usage(0, 0))


def test_interleaved_calls_buffer_the_second_until_both_are_complete() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", "f"), tool_open(1, "call_b", "g"))),
        ch(calls(tool_args(0, '{"x":'))),
        ch(calls(tool_args(1, '{"y":'))),
        ch(calls(tool_args(0, "1}"))),
        ch(calls(tool_args(1, "2}"))),
        ch({}, "tool_calls"),
    ]
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    per_chunk = [t.on_chunk(c) for c in chunks]
    assert per_chunk == [
        [message_start(), tool_block(0, "call_a", "f")],
        [json_part(0, '{"x":')],
        [],
        [json_part(0, "1}")],
        # Call 1 is complete and call 0 too: call 1 goes out whole.
        [block_stop(0), tool_block(1, "call_b", "g"), json_part(1, '{"y":2}'), block_stop(1)],
        [],
    ]


def test_interleaved_call_completing_first_waits_for_the_live_one() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", "f", '{"x":'))),
        ch(calls(tool_open(1, "call_b", "g", '{"y":2}'))),
        ch(calls(tool_args(0, "1}"))),
        ch({}, "tool_calls"),
    ]
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    per_chunk = [t.on_chunk(c) for c in chunks]
    assert per_chunk == [
        [message_start(), tool_block(0, "call_a", "f"), json_part(0, '{"x":')],
        [],
        [
            json_part(0, "1}"),
            block_stop(0),
            tool_block(1, "call_b", "g"),
            json_part(1, '{"y":2}'),
            block_stop(1),
        ],
        [],
    ]


def test_buffered_calls_still_incomplete_go_out_at_finish() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", "f", '{"x":'))),
        ch(calls(tool_open(1, "call_b", "g", '{"y":'))),
        ch(calls(tool_open(2, "call_c", "h", '{"z":'))),
        ch(calls(tool_args(2, "3}"), tool_args(1, "2"))),
        ch({}, "tool_calls"),
    ]
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    per_chunk = [t.on_chunk(c) for c in chunks]
    assert per_chunk == [
        [message_start(), tool_block(0, "call_a", "f"), json_part(0, '{"x":')],
        [],
        [],
        [],  # call 2 is complete but call 0 (live) is not
        [
            block_stop(0),
            *[tool_block(1, "call_b", "g"), json_part(1, '{"y":2'), block_stop(1)],
            *[tool_block(2, "call_c", "h"), json_part(2, '{"z":3}'), block_stop(2)],
        ],
    ]


def test_text_after_tool_calls_keeps_the_content_order() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", "f"))),  # no arguments at all: never complete JSON
        ch(calls(tool_open(1, "call_b", "g"))),  # so this one waits
        ch({"content": "Done."}),
        ch({}, "stop"),
    ]
    assert translate(chunks) == [
        message_start(),
        tool_block(0, "call_a", "f"),
        block_stop(0),
        tool_block(1, "call_b", "g"),
        block_stop(1),
        block_start(2, TEXT),
        text(2, "Done."),
        block_stop(2),
        *ending("tool_use", usage(0, 0)),
    ]


def test_stop_with_tool_calls_is_tool_use() -> None:
    chunks = [ch(calls(tool_open(0, "call_a", "f", "{}"))), ch({}, "stop")]
    assert translate(chunks)[-2:] == ending("tool_use", usage(0, 0))


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("x", "end_turn"),
    ],
)
def test_finish_reason_mapping(finish: str, stop: str) -> None:
    assert translate([ch({"content": "a"}), ch({}, finish)])[-2:] == ending(stop, usage(0, 0))


def test_empty_and_whitespace_content_never_opens_a_text_block() -> None:
    chunks = [
        ch({"role": "assistant", "content": ""}),
        ch({"content": ""}),
        ch({"content": None}),
        ch({"content": "\n\n"}),
        ch({"content": "", **calls(tool_open(0, "call_a", "f", "{}"))}),
        ch({}, "tool_calls"),
    ]
    assert translate(chunks) == [
        message_start(),
        tool_block(0, "call_a", "f"),
        json_part(0, "{}"),
        block_stop(0),
        *ending("tool_use", usage(0, 0)),
    ]


def test_whitespace_only_answer_has_no_block_at_all() -> None:
    chunks = [ch({"content": " "}), ch({"content": "\n"}), ch({}, "stop")]
    assert translate(chunks) == [message_start(), *ending("end_turn", usage(0, 0))]


def test_leading_whitespace_is_kept_once_real_text_follows() -> None:
    chunks = [ch({"content": "\n"}), ch({"content": " "}), ch({"content": "Hi"}), ch({}, "stop")]
    assert translate(chunks)[:4] == [
        message_start(),
        block_start(0, TEXT),
        text(0, "\n Hi"),
        block_stop(0),
    ]


def test_chunk_with_empty_tool_calls_and_text_is_text() -> None:
    out = translate([ch({"content": "a", "tool_calls": []}), ch({}, "stop")])
    assert out[1:4] == [block_start(0, TEXT), text(0, "a"), block_stop(0)]
    assert out[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_done_without_usage_uses_the_hint() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID, input_tokens_hint=42)
    t.on_chunk(ch({"content": "a"}))
    assert t.on_chunk(ch({}, "stop")) == [block_stop(0)]
    assert t.on_done() == ending("end_turn", usage(42, 0))
    assert t.finished and t.usage == usage(42, 0)


def test_done_without_finish_reason_still_finishes() -> None:
    out = translate([ch({"content": "a"})], end="done")
    assert out[-3:] == [block_stop(0), *ending("end_turn", usage(0, 0))]


def test_eof_after_finish_reason_finishes_normally() -> None:
    out = translate([ch({"content": "a"}), ch({}, "length")], end="eof")
    assert out[-2:] == ending("max_tokens", usage(0, 0))


def test_eof_without_finish_is_an_error_not_a_stop() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    t.on_chunk(ch({"content": "partial"}))
    assert t.on_eof() == [
        block_stop(0),
        error_event("api_error", "upstream stream ended before the response finished"),
    ]
    assert t.ended and not t.finished
    assert t.on_eof() == [] and t.on_done() == [] and t.on_chunk(ch({}, "stop")) == []


def test_eof_or_done_before_any_chunk_is_an_error_alone() -> None:
    assert translate([], end="eof") == [
        error_event("api_error", "upstream stream ended before the response finished")
    ]
    assert translate([], end="done") == [
        error_event("api_error", "upstream stream ended without any data")
    ]


def test_in_band_error_chunk_mid_stream() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    t.on_chunk(ch(calls(tool_open(0, "call_a", "f", '{"x"'))))
    overloaded = {
        "error": {
            "message": "The engine is currently overloaded, please try again later",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert t.on_chunk(overloaded) == [
        block_stop(0),
        error_event(
            "overloaded_error", "The engine is currently overloaded, please try again later"
        ),
    ]
    assert t.on_chunk(ch({"content": "more"})) == []
    assert t.on_done() == [] and t.on_eof() == [] and t.on_error("api_error", "x") == []
    assert not t.finished


def test_chunk_that_is_not_an_object_is_an_error() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    t.on_chunk(ch({"content": "a"}))
    assert t.on_chunk(orjson.loads(b"[1]")) == [
        block_stop(0),
        error_event("api_error", "upstream sent a stream chunk that is not an object"),
    ]


def test_error_chunk_after_the_end_is_ignored() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    t.on_chunk(ch({"content": "a"}, "stop", {"prompt_tokens": 1, "completion_tokens": 1}))
    assert t.finished and t.on_chunk({"error": {"message": "late"}}) == []


def test_on_error_closes_the_block_and_is_idempotent() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    t.on_chunk(ch({"reasoning_content": "hmm"}))
    assert t.on_error("timeout_error", "upstream timed out") == [
        block_stop(0),
        error_event("timeout_error", "upstream timed out"),
    ]
    assert t.on_error("timeout_error", "upstream timed out") == []


def test_error_as_first_chunk_has_no_message_start() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    out = t.on_chunk({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
    assert out == [error_event("rate_limit_error", "Rate limit reached")]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "m", "type": "invalid_request_error"}, ("invalid_request_error", "m")),
        ({"message": "m", "type": "server_error", "code": "overloaded"}, ("overloaded_error", "m")),
        (
            {"message": "m", "type": "weird", "code": "rate_limit_exceeded"},
            ("rate_limit_error", "m"),
        ),
        ({"message": "m", "type": "insufficient_quota"}, ("billing_error", "m")),
        ({"type": "server_error"}, ("api_error", "upstream error")),
        ("boom", ("api_error", "boom")),
    ],
)
def test_error_kinds_from_openai(error: object, expected: tuple[str, str]) -> None:
    assert error_kind_from_openai(error) == expected


def test_missing_invalid_and_reused_tool_ids_are_replaced() -> None:
    chunks = [
        ch(calls(tool_open(0, None, "f", "{}"))),
        ch(calls(tool_open(1, "call:1", "g", "{}"))),
        ch(calls(tool_open(2, "call_x", "h", "{}"))),
        ch(calls(tool_open(3, "call_x", "i", "{}"))),
        ch({}, "tool_calls"),
    ]
    ids = [e[1]["content_block"]["id"] for e in translate(chunks) if e[0] == "content_block_start"]
    assert ids == ["toolu_msg_gw_0001_0", "toolu_msg_gw_0001_1", "call_x", "toolu_msg_gw_0001_3"]


def test_repeated_whole_arguments_are_not_doubled() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", "f", '{"a": 1}'))),
        ch(calls({"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"a": 1}'}})),
        ch({}, "tool_calls"),
    ]
    parts = [
        e[1]["delta"]["partial_json"] for e in translate(chunks) if e[0] == "content_block_delta"
    ]
    assert parts == ['{"a": 1}']


def test_arguments_sent_as_an_object() -> None:
    chunks = [ch(calls(tool_open(0, "call_a", "f", {"a": 1}))), ch({}, "tool_calls")]
    assert json_part(0, '{"a":1}') in translate(chunks)


def test_name_arriving_after_the_id_is_used() -> None:
    chunks = [
        ch(calls(tool_open(0, "call_a", None))),
        ch(calls({"index": 0, "function": {"name": "late", "arguments": '{"q": '}})),
        ch(calls(tool_args(0, "1}"))),
        ch({}, "tool_calls"),
    ]
    out = translate(chunks)
    assert out[1:4] == [tool_block(0, "call_a", "late"), json_part(0, '{"q": 1}'), block_stop(0)]


def test_other_choices_are_ignored() -> None:
    chunk = ch({"content": "a"})
    chunk["choices"].append({"index": 1, "delta": {"content": "b"}, "finish_reason": None})
    assert translate([chunk, ch({}, "stop")])[1:3] == [block_start(0, TEXT), text(0, "a")]


def test_encode_anthropic_events() -> None:
    assert encode_anthropic_events([block_stop(3), ("custom", {"type": "custom"})]) == (
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":3}\n\n'
        b'event: custom\ndata: {"type":"custom"}\n\n'
    )


# -- the Anthropic grammar ------------------------------------------------------------------------


def check_grammar(events: list[AnthropicEvent]) -> list[dict[str, Any]]:
    """Assert `events` is a valid Anthropic stream; return the content blocks it builds (tool
    inputs as accumulated JSON text)."""
    assert events, "a translated stream is never empty"
    names = [name for name, _ in events]
    for name, data in events:
        assert data["type"] == name
    if names[0] == "error":
        assert len(events) == 1
        return []
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert names[-1] in ("message_stop", "error")
    assert names.count("message_stop") + names.count("error") == 1
    if names[-1] == "message_stop":
        assert names[-2] == "message_delta" and names.count("message_delta") == 1
    blocks: list[dict[str, Any]] = []
    open_block: dict[str, Any] | None = None
    ids: set[str] = set()
    for name, data in events[1:]:
        if name == "content_block_start":
            assert open_block is None and data["index"] == len(blocks)
            block = dict(data["content_block"])
            kind = block["type"]
            assert kind in ("text", "thinking", "tool_use")
            if kind == "text":
                assert block["text"] == ""
            elif kind == "thinking":
                assert block["thinking"] == "" and block["signature"] == ""
            else:
                assert block["input"] == {} and block["name"]
                assert TOOL_ID.match(block["id"]) and block["id"] not in ids
                ids.add(block["id"])
                block["json"] = ""
            blocks.append(block)
            open_block = block
        elif name == "content_block_delta":
            assert open_block is not None and data["index"] == len(blocks) - 1
            d = data["delta"]
            kind = open_block["type"]
            if d["type"] == "text_delta":
                assert kind == "text" and d["text"]
                open_block["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                assert kind == "thinking" and d["thinking"]
                open_block["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                assert kind == "thinking"
                open_block["signature"] += d["signature"]
            else:
                assert d["type"] == "input_json_delta" and kind == "tool_use"
                open_block["json"] += d["partial_json"]
        elif name == "content_block_stop":
            assert open_block is not None and data["index"] == len(blocks) - 1
            if open_block["type"] == "text":
                assert open_block["text"].strip(), "empty or whitespace-only text block"
            open_block = None
        elif name == "message_delta":
            assert open_block is None
            assert data["delta"]["stop_reason"] in STOP_REASONS
            assert all(isinstance(v, int) and v >= 0 for v in data["usage"].values())
        else:
            assert name in ("message_stop", "error") and open_block is None
    return blocks


# -- properties -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
tool_inputs = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
prose = st.text(max_size=6) | st.sampled_from(["", " ", "\n\n", "\u00e9t\u00e9 \U0001f600"])


@st.composite
def scripts(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible OpenAI stream: reasoning and text (mixed), then 0-3 tool calls sent one after
    the other or interleaved, a finish, usage, and how it ends."""
    chunks: list[dict[str, Any]] = [
        ch({"role": "assistant", "content": draw(st.sampled_from(["", None]))})
    ]
    pieces = draw(
        st.lists(st.tuples(st.sampled_from(["content", "reasoning_content"]), prose), max_size=8)
    )
    chunks += [ch({key: value}) for key, value in pieces]
    tools = []
    streams = []
    for k in range(draw(st.integers(0, 3))):
        args = orjson.dumps(draw(tool_inputs)).decode()
        fragments = [
            f for f in split_at(args, draw(st.lists(st.integers(0, 200), max_size=4))) if f
        ]
        tools.append((f"call_{k}", f"tool_{k}", args))
        inline = draw(st.booleans())  # the first fragment rides on the opening delta
        first = fragments.pop(0) if fragments and inline else ""
        streams.append(
            [tool_open(k, f"call_{k}", f"tool_{k}", first)] + [tool_args(k, f) for f in fragments]
        )
    if draw(st.booleans()):  # interleave, keeping each call's own order
        order = draw(st.permutations([k for k, s in enumerate(streams) for _ in s]))
        parts = [streams[k].pop(0) for k in order]
    else:
        parts = [p for s in streams for p in s]
    chunks += [ch(calls(p)) for p in parts]
    body = len(chunks)  # an in-band error goes before the finish: after the end it is ignored
    finish = draw(st.sampled_from(["stop", "tool_calls", "length", None]))
    u = {
        "prompt_tokens": 50,
        "completion_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 20},
    }
    placement = draw(st.sampled_from(["separate", "on_finish", "none"]))
    if finish is not None:
        chunks.append(ch({}, finish, u if placement == "on_finish" else None))
    if placement == "separate":
        chunks.append(usage_chunk(u))
    failure = draw(st.none() | st.integers(1, body))
    if failure is not None:
        chunks.insert(failure, {"error": {"message": "bad gateway", "type": "server_error"}})
    return {
        "chunks": chunks,
        "done": draw(st.booleans()),
        "pieces": pieces,
        "tools": tools,
        "finish": finish,
        "failed": failure is not None,
    }


def run_script(script: dict[str, Any]) -> list[AnthropicEvent]:
    return translate(script["chunks"], end="done" if script["done"] else "eof")


def script_bytes(script: dict[str, Any]) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in script["chunks"])
    return body + (b"data: [DONE]\n\n" if script["done"] else b"")


def translate_sse(chunks: Iterable[bytes]) -> list[AnthropicEvent]:
    """The whole upstream path: SSE decode, JSON parse, translate."""
    decoder = SSEDecoder()
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    out: list[AnthropicEvent] = []

    def handle(events: list[Any]) -> None:
        for event in events:
            nonlocal out
            out += t.on_done() if event.data == b"[DONE]" else t.on_chunk(orjson.loads(event.data))

    for chunk in chunks:
        handle(decoder.feed(chunk))
    handle(decoder.close())
    return out + t.on_eof()


@SETTINGS
@given(script=scripts())
def test_every_output_is_valid_and_keeps_the_content(script: dict[str, Any]) -> None:
    events = run_script(script)
    blocks = check_grammar(events)
    if script["failed"]:
        assert events[-1][0] == "error"
        return
    if script["finish"] is None and not script["done"]:
        assert events[-1][0] == "error"
        return
    assert events[-1][0] == "message_stop"
    stop = events[-2][1]["delta"]["stop_reason"]
    thinking = "".join(b["thinking"] for b in blocks if b["type"] == "thinking")
    assert thinking == "".join(v for k, v in script["pieces"] if k == "reasoning_content")
    said = "".join(b["text"] for b in blocks if b["type"] == "text")
    wanted = "".join(v for k, v in script["pieces"] if k == "content")
    assert re.sub(r"\s", "", said) == re.sub(r"\s", "", wanted)
    got_tools = sorted(
        (b["id"], b["name"], orjson.loads(b["json"] or "{}"))
        for b in blocks
        if b["type"] == "tool_use"
    )
    assert got_tools == sorted((i, n, orjson.loads(a)) for i, n, a in script["tools"])
    if script["tools"]:
        assert stop == ("max_tokens" if script["finish"] == "length" else "tool_use")


@SETTINGS
@given(
    script=scripts(),
    eol=st.sampled_from(LINE_ENDINGS),
    cut=st.lists(st.integers(0, 5000), max_size=20),
)
def test_any_rechunking_gives_the_same_translation(
    script: dict[str, Any], eol: bytes, cut: list[int]
) -> None:
    raw = with_eol(script_bytes(script), eol)
    assert translate_sse(split_at(raw, cut)) == run_script(script)


@SETTINGS
@given(eol=st.sampled_from(LINE_ENDINGS), cut=st.lists(st.integers(0, 10_000), max_size=30))
def test_real_shaped_stream_rechunked(eol: bytes, cut: list[int]) -> None:
    whole = translate_sse([OPENAI_TWO_TOOLS])
    blocks = check_grammar(whole)
    assert [b["type"] for b in blocks] == ["thinking", "text", "tool_use", "tool_use"]
    assert whole[-2][1]["usage"] == usage(300, 57, read=512)
    assert translate_sse(split_at(with_eol(OPENAI_TWO_TOOLS, eol), cut)) == whole


# A text delta with one thing beside it that makes it more than text (or not a chunk at all).
odd_text_chunks = st.sampled_from(
    [
        lambda t: ch({"content": t}, "stop"),
        lambda t: ch({"content": t}, None, {"prompt_tokens": 3, "completion_tokens": 1}),
        lambda t: ch({"content": t, "reasoning_content": "why"}),
        lambda t: ch({"content": t, "reasoning": "why"}),
        lambda t: ch({"content": t, "thinking": {"content": "why", "signature": "s"}}),
        lambda t: ch({"content": t, **calls(tool_open(0, "call_x", "tool_x", "{}"))}),
        lambda t: ch({"content": t, "tool_calls": [], "reasoning_content": None}),
        lambda t: ch({"content": [t]}),
        lambda t: {**ch({"content": t}), "error": {"message": "late", "type": "server_error"}},
        lambda t: {**ch({"content": t}), "choices": [{"index": 1, "delta": {"content": t}}]},
        lambda t: {**ch({"content": t}), "choices": ch({"content": t})["choices"] * 2},
        lambda t: {**ch({"content": t}), "choices": [{"delta": {"content": t}, "index": None}]},
        lambda t: {**ch({"content": t}), "choices": [["not", "a", "choice"]]},
        lambda t: ["not", "an", "object", t],
    ]
)


@SETTINGS
@given(
    script=scripts(),
    odd=st.lists(st.tuples(st.integers(0, 12), odd_text_chunks, prose), max_size=4),
)
def test_encode_chunk_renders_what_on_chunk_says(
    script: dict[str, Any], odd: list[tuple[int, Any, str]]
) -> None:
    """The text fast path of `encode_chunk` gives the bytes of the events `on_chunk` returns,
    whatever surrounds the text, and leaves the translator where `on_chunk` would."""
    chunks: list[Any] = list(script["chunks"])
    for at, make, t in odd:
        chunks.insert(min(at, len(chunks)), make(t))
    fast = OpenAIToAnthropicStream(MODEL, MSG_ID)
    slow = OpenAIToAnthropicStream(MODEL, MSG_ID)
    for chunk in chunks:
        assert fast.encode_chunk(chunk) == encode_anthropic_events(slow.on_chunk(chunk))
    assert encode_anthropic_events(fast.on_done()) == encode_anthropic_events(slow.on_done())
    assert fast.usage == slow.usage


def test_encode_chunk_text_deltas_carry_their_block_index() -> None:
    t = OpenAIToAnthropicStream(MODEL, MSG_ID)
    t.on_chunk(ch({"reasoning_content": "hmm"}))
    t.on_chunk(ch({"content": "a"}))  # closes the thinking block (0), opens text at index 1
    got = t.encode_chunk(ch({"content": 'b "quoted"\n\u00e9'}))
    assert got == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
        b'"delta":{"type":"text_delta","text":"b \\"quoted\\"\\n\xc3\xa9"}}\n\n'
    )
