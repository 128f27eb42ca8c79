"""Anthropic event stream -> OpenAI chunk stream (protocol.md §5.3): golden chunk sequences,
errors without [DONE], the same output however the upstream bytes are split, and a round trip
through both translators that keeps the content."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.dialects.sse import SSEDecoder
from proxy.dialects.translate.a2o_stream import (
    AnthropicToOpenAIStream,
    OpenAIChunk,
    encode_openai_chunks,
    openai_error_chunk,
)
from proxy.dialects.translate.o2a_stream import (
    AnthropicEvent,
    OpenAIToAnthropicStream,
    encode_anthropic_events,
)
from tests.unit.dialects.test_o2a_stream import check_grammar
from tests.unit.dialects.test_sse import LINE_ENDINGS, split_at, with_eol

STREAMS = Path(__file__).parents[2] / "fixtures" / "dialects" / "streams"
ANTHROPIC_TOOL_TURN = (STREAMS / "mock_response_cc_tool_turn1.sse").read_bytes()

MODEL = "gpt-4o"
CID = "chatcmpl-gw1"
CREATED = 1767225600
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chunk(delta: dict[str, Any], finish: str | None = None, *, usage: bool = True) -> OpenAIChunk:
    c: OpenAIChunk = {
        "id": CID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        c["usage"] = None
    return c


def usage_chunk(usage: dict[str, Any]) -> OpenAIChunk:
    return {
        "id": CID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [],
        "usage": usage,
    }


def openai_usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


ROLE = {"role": "assistant", "content": ""}


def args(k: int, fragment: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}


def tool_start(k: int, call_id: str, name: str) -> dict[str, Any]:
    call = {
        "index": k,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    return {"tool_calls": [call]}


def decode(raw: Iterable[bytes]) -> list[tuple[str, dict[str, Any]]]:
    decoder = SSEDecoder()
    events = [e for part in raw for e in decoder.feed(part)] + decoder.close()
    return [(e.event or "", orjson.loads(e.data)) for e in events]


def translate(
    events: Iterable[tuple[str, dict[str, Any]]], *, include_usage: bool = True, eof: bool = True
) -> tuple[list[OpenAIChunk], AnthropicToOpenAIStream]:
    t = AnthropicToOpenAIStream(MODEL, CID, CREATED, include_usage=include_usage)
    out = [c for name, data in events for c in t.on_event(name, data)]
    if eof:
        out += t.on_eof()
    return out, t


def ev(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (data["type"], data)


def start(input_tokens: int = 10, read: int = 0) -> tuple[str, dict[str, Any]]:
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": read,
        "output_tokens": 1,
    }
    return ev({"type": "message_start", "message": {"id": "msg_1", "usage": usage, "content": []}})


def block(index: int, content_block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_start", "index": index, "content_block": content_block})


def bdelta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_delta", "index": index, "delta": delta})


def bstop(index: int) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_stop", "index": index})


def mdelta(stop: str, output_tokens: int, **more: int) -> tuple[str, dict[str, Any]]:
    usage = {"output_tokens": output_tokens, **more}
    return ev({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": usage})


MSTOP = ev({"type": "message_stop"})


# -- golden sequences ---------------------------------------------------------------------------


def test_real_tool_turn_with_usage() -> None:
    out, t = translate(decode([ANTHROPIC_TOOL_TURN]))
    assert out == [
        chunk(ROLE),
        chunk({"reasoning_content": "The user wants a short answer."}),
        chunk({"content": "I'll rea"}),
        chunk({"content": "d the fi"}),
        chunk({"content": "le."}),
        chunk(tool_start(0, "toolu_mock_7c5d9496212640c5a511", "Read")),
        chunk(args(0, '{"file_')),
        chunk(args(0, 'path": ')),
        chunk(args(0, '"/home/user/project')),
        chunk(args(0, "c-toold")),
        chunk(args(0, "ir/hell")),
        chunk(args(0, 'o.txt"}')),
        chunk({}, "tool_calls"),
        usage_chunk(openai_usage(1676, 12)),
    ]
    assert t.done and t.finished and t.usage == openai_usage(1676, 12)
    assert t.upstream_usage == {
        "input_tokens": 1676,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 12,
    }


def test_without_include_usage_there_is_no_usage_anywhere() -> None:
    out, t = translate(decode([ANTHROPIC_TOOL_TURN]), include_usage=False)
    assert all("usage" not in c for c in out)
    assert out[0] == chunk(ROLE, usage=False) and out[-1] == chunk({}, "tool_calls", usage=False)
    assert t.done and t.usage == openai_usage(1676, 12)


def test_each_event_yields_its_chunks_at_once() -> None:
    t = AnthropicToOpenAIStream(MODEL, CID, CREATED, include_usage=True)
    assert t.on_event(*start(20, read=100)) == [chunk(ROLE)]
    assert t.on_event(*block(0, {"type": "text", "text": ""})) == []
    assert t.on_event("ping", {"type": "ping"}) == []
    assert t.on_event(*bdelta(0, {"type": "text_delta", "text": "Hi"})) == [
        chunk({"content": "Hi"})
    ]
    assert t.on_event(*bstop(0)) == []
    assert t.on_event(*mdelta("end_turn", 3)) == [chunk({}, "stop")]
    assert not t.done
    assert t.on_event(*MSTOP) == [usage_chunk(openai_usage(120, 3, cached=100))]
    assert t.done and t.finished and t.ended
    assert t.on_event(*MSTOP) == [] and t.on_eof() == []


def test_parallel_tool_blocks_count_tool_indexes_only_and_skip_empty_fragments() -> None:
    events = [
        start(),
        block(0, {"type": "text", "text": ""}),
        bdelta(0, {"type": "text_delta", "text": "Two calls."}),
        bstop(0),
        block(1, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
        bdelta(1, {"type": "input_json_delta", "partial_json": ""}),
        bdelta(1, {"type": "input_json_delta", "partial_json": '{"x": 1}'}),
        bstop(1),
        block(2, {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}),
        bdelta(2, {"type": "input_json_delta", "partial_json": '{"y":'}),
        bdelta(2, {"type": "input_json_delta", "partial_json": " 2}"}),
        bstop(2),
        mdelta("tool_use", 30),
        MSTOP,
    ]
    out, _ = translate(events, include_usage=False)
    assert out == [
        chunk(ROLE, usage=False),
        chunk({"content": "Two calls."}, usage=False),
        chunk(tool_start(0, "toolu_a", "f"), usage=False),
        chunk(args(0, '{"x": 1}'), usage=False),
        chunk(tool_start(1, "toolu_b", "g"), usage=False),
        chunk(args(1, '{"y":'), usage=False),
        chunk(args(1, " 2}"), usage=False),
        chunk({}, "tool_calls", usage=False),
    ]


def test_signature_redacted_thinking_and_citations_are_dropped() -> None:
    events = [
        start(),
        block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        bdelta(0, {"type": "thinking_delta", "thinking": "Hmm."}),
        bdelta(0, {"type": "signature_delta", "signature": "c2ln"}),
        bstop(0),
        block(1, {"type": "redacted_thinking", "data": "opaque"}),
        bstop(1),
        block(2, {"type": "text", "text": ""}),
        bdelta(2, {"type": "citations_delta", "citation": {"cited_text": "x"}}),
        bdelta(2, {"type": "text_delta", "text": ""}),
        bdelta(2, {"type": "text_delta", "text": "Ok"}),
        bstop(2),
        mdelta("max_tokens", 4),
        MSTOP,
    ]
    out, _ = translate(events)
    assert out == [
        chunk(ROLE),
        chunk({"reasoning_content": "Hmm."}),
        chunk({"content": "Ok"}),
        chunk({}, "length"),
        usage_chunk(openai_usage(10, 4)),
    ]


def test_tool_input_given_whole_at_block_start() -> None:
    events = [
        start(),
        block(0, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {"q": "x"}}),
        bstop(0),
        mdelta("tool_use", 5),
        MSTOP,
    ]
    out, _ = translate(events, include_usage=False)
    assert out[1:3] == [
        chunk(tool_start(0, "toolu_a", "f"), usage=False),
        chunk(args(0, '{"q":"x"}'), usage=False),
    ]


def test_cumulative_message_deltas_give_one_finish_and_the_last_usage() -> None:
    events = [
        start(7),
        mdelta("end_turn", 2),
        mdelta("end_turn", 9, input_tokens=8, cache_read_input_tokens=4),
        MSTOP,
    ]
    out, t = translate(events)
    assert out == [chunk(ROLE), chunk({}, "stop"), usage_chunk(openai_usage(12, 9, cached=4))]
    assert t.usage == openai_usage(12, 9, cached=4)


def test_data_only_stream_uses_the_type_field() -> None:
    events = [("", start()[1]), ("message", bdelta(0, {"type": "text_delta", "text": "a"})[1])]
    out, _ = translate(events, eof=False)
    assert out == [chunk(ROLE), chunk({"content": "a"})]


def test_content_without_message_start_still_leads_with_the_role() -> None:
    out, _ = translate([bdelta(0, {"type": "text_delta", "text": "a"})], eof=False)
    assert out == [chunk(ROLE), chunk({"content": "a"})]


def test_anthropic_error_event_becomes_an_error_chunk_and_ends_the_stream() -> None:
    t = AnthropicToOpenAIStream(MODEL, CID, CREATED, include_usage=True)
    t.on_event(*start())
    t.on_event(*block(0, {"type": "text", "text": ""}))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert t.on_event("error", error) == [
        {
            "error": {
                "message": "Overloaded",
                "type": "server_error",
                "param": None,
                "code": "overloaded",
            }
        }
    ]
    assert t.ended and not t.done and not t.finished
    assert t.on_event(*bdelta(0, {"type": "text_delta", "text": "x"})) == []
    assert t.on_event(*MSTOP) == [] and t.on_eof() == [] and t.on_error("api_error", "x") == []
    assert not t.done


def test_event_data_that_is_not_an_object_is_an_error() -> None:
    t = AnthropicToOpenAIStream(MODEL, CID, CREATED, include_usage=False)
    out = t.on_event("content_block_delta", orjson.loads(b"[1]"))
    assert out[0]["error"]["type"] == "server_error" and t.ended


def test_eof_before_message_delta_is_an_error() -> None:
    out, t = translate([start(), block(0, {"type": "text", "text": ""})])
    assert out == [
        chunk(ROLE),
        {
            "error": {
                "message": "upstream stream ended before the response finished",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    ]
    assert not t.done


def test_eof_after_message_delta_completes() -> None:
    out, t = translate([start(), mdelta("end_turn", 2)])
    assert out == [chunk(ROLE), chunk({}, "stop"), usage_chunk(openai_usage(10, 2))]
    assert t.done


def test_message_stop_without_message_delta() -> None:
    events = [start(), block(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}), MSTOP]
    out, t = translate(events, include_usage=False)
    assert out[-1] == chunk({}, "tool_calls", usage=False) and t.done


def test_on_error_uses_the_openai_error_mapping() -> None:
    t = AnthropicToOpenAIStream(MODEL, CID, CREATED, include_usage=False)
    assert t.on_error("rate_limit_error", "slow down") == [
        {
            "error": {
                "message": "slow down",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    ]
    assert openai_error_chunk("timeout_error", "t")["error"]["code"] == "timeout"


def test_encode_openai_chunks() -> None:
    assert encode_openai_chunks([{"a": 1}], done=False) == b'data: {"a":1}\n\n'
    assert encode_openai_chunks([{"a": 1}], done=True) == b'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert encode_openai_chunks([], done=True) == b"data: [DONE]\n\n"


# -- properties -----------------------------------------------------------------------------------

words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
tool_inputs = st.dictionaries(
    st.text(max_size=5), st.none() | st.integers(-(2**53), 2**53) | st.text(max_size=6), max_size=3
)


@st.composite
def anthropic_streams(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Anthropic stream: thinking, text and tool_use blocks in any order."""
    events: list[AnthropicEvent] = [start(draw(st.integers(0, 500)), draw(st.integers(0, 500)))]
    blocks: list[tuple[str, Any]] = []
    tools = 0
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "thinking", "tool_use"]))
        if kind == "text":
            pieces = [*draw(st.lists(words, max_size=4)), draw(words.filter(str.strip))]
            events.append(block(index, {"type": "text", "text": ""}))
            events += [bdelta(index, {"type": "text_delta", "text": p}) for p in pieces if p]
            blocks.append(("text", "".join(pieces)))
        elif kind == "thinking":
            pieces = [*draw(st.lists(words, max_size=3)), draw(words.filter(bool))]
            events.append(block(index, {"type": "thinking", "thinking": "", "signature": ""}))
            events += [bdelta(index, {"type": "thinking_delta", "thinking": p}) for p in pieces]
            events.append(bdelta(index, {"type": "signature_delta", "signature": "c2ln"}))
            blocks.append(("thinking", "".join(pieces)))
        else:
            tool_input = draw(tool_inputs)
            spelled = draw(st.booleans())  # an empty input as "{}" or as no fragment at all
            text = orjson.dumps(tool_input).decode() if tool_input or spelled else ""
            cuts = draw(st.lists(st.integers(0, 100), max_size=4))
            call_id, name = f"toolu_{tools}x", f"tool_{tools}"
            tools += 1
            events.append(
                block(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})
            )
            events.append(bdelta(index, {"type": "input_json_delta", "partial_json": ""}))
            events += [
                bdelta(index, {"type": "input_json_delta", "partial_json": p})
                for p in split_at(text, cuts)
            ]
            blocks.append(("tool_use", (call_id, name, tool_input)))
        events.append(bstop(index))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
    stop = "tool_use" if tools else draw(st.sampled_from(["end_turn", "max_tokens"]))
    events += [mdelta(stop, draw(st.integers(0, 900))), MSTOP]
    return {"events": events, "blocks": blocks, "stop": stop}


def merged(blocks: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """What survives OpenAI's shape: adjacent text (or thinking) blocks become one."""
    out: list[tuple[str, Any]] = []
    for kind, value in blocks:
        if out and kind != "tool_use" and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + value)
        else:
            out.append((kind, value))
    return out


@SETTINGS
@given(
    stream=anthropic_streams(),
    eol=st.sampled_from(LINE_ENDINGS),
    cut=st.lists(st.integers(0, 5000), max_size=20),
)
def test_any_rechunking_gives_the_same_chunks(
    stream: dict[str, Any], eol: bytes, cut: list[int]
) -> None:
    raw = with_eol(encode_anthropic_events(stream["events"]), eol)
    expected, t = translate(stream["events"])
    assert t.done
    assert translate(decode(split_at(raw, cut)))[0] == expected


@SETTINGS
@given(stream=anthropic_streams())
def test_round_trip_through_both_translators_keeps_the_content(stream: dict[str, Any]) -> None:
    chunks, _ = translate(stream["events"])
    assert chunks[0]["choices"][0]["delta"] == ROLE
    assert [c["usage"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    o2a = OpenAIToAnthropicStream("claude-x", "msg_rt")
    back = [e for c in chunks for e in o2a.on_chunk(c)] + o2a.on_done() + o2a.on_eof()
    blocks = check_grammar(back)
    got: list[tuple[str, Any]] = []
    for b in blocks:
        if b["type"] == "tool_use":
            got.append(("tool_use", (b["id"], b["name"], orjson.loads(b["json"] or "{}"))))
        else:
            got.append((b["type"], b[b["type"]]))
    assert got == merged(stream["blocks"])
    assert back[-2][1]["delta"]["stop_reason"] == stream["stop"]
    sent = stream["events"][0][1]["message"]["usage"]
    assert o2a.usage == {
        "input_tokens": sent["input_tokens"],
        "output_tokens": stream["events"][-2][1]["usage"]["output_tokens"],
        "cache_read_input_tokens": sent["cache_read_input_tokens"],
        "cache_creation_input_tokens": 0,
    }


@SETTINGS
@given(eol=st.sampled_from(LINE_ENDINGS), cut=st.lists(st.integers(0, 5000), max_size=30))
def test_real_stream_rechunked(eol: bytes, cut: list[int]) -> None:
    expected, _ = translate(decode([ANTHROPIC_TOOL_TURN]))
    raw = with_eol(ANTHROPIC_TOOL_TURN, eol)
    assert translate(decode(split_at(raw, cut)))[0] == expected
