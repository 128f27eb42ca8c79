"""The pure converters and the capture: message <-> events in both dialects, byte by byte."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest

from proxy.cache.anthropic_replay import events_to_message, message_to_events
from proxy.cache.capture import AnswerCapture
from proxy.cache.entry import CacheEntry, decode_entry, fresh_id, fresh_tool_id
from proxy.cache.openai_replay import chunks_to_completion, completion_to_chunks
from proxy.dialects.sse import encode_event

MESSAGE: dict[str, Any] = {
    "id": "msg_orig123",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "let me see", "signature": "sig=="},
        {"type": "text", "text": "Calling the tool."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 30},
}

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-orig456",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4.1",
    "system_fingerprint": "fp_x",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Sure.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


def test_anthropic_message_round_trips_through_events() -> None:
    events = message_to_events(MESSAGE)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == 3 == names.count("content_block_stop")
    assert events_to_message(events) == MESSAGE


def test_anthropic_events_with_split_deltas_fold_into_one_message() -> None:
    start = {
        **MESSAGE,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    raw = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "1}"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    message = events_to_message([(n, orjson.dumps(d)) for n, d in raw])
    assert message["content"] == [
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "t", "name": "n", "input": {"a": 1}},
    ]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 12, "output_tokens": 9}


def test_openai_completion_round_trips_through_chunks() -> None:
    chunks = completion_to_chunks(COMPLETION, include_usage=True)
    assert chunks[-1] == (None, b"[DONE]")
    assert orjson.loads(chunks[-2][1])["choices"] == []
    assert chunks_to_completion(chunks) == COMPLETION
    bare = completion_to_chunks(COMPLETION, include_usage=False)
    assert all(b'"usage"' not in data for _, data in bare)
    assert chunks_to_completion(bare) == {k: v for k, v in COMPLETION.items() if k != "usage"}


def _sse(events: list[tuple[str | None, bytes]]) -> bytes:
    return b"".join(encode_event(n, d) for n, d in events)


@pytest.mark.parametrize("step", [1, 7, 10_000])
def test_capture_of_a_complete_stream_gives_an_entry_whatever_the_chunking(step: int) -> None:
    body = _sse(message_to_events(MESSAGE))
    capture = AnswerCapture("anthropic", 1 << 20)
    capture.start(200, [(b"content-type", b"text/event-stream; charset=utf-8")])
    seen = []
    for i in range(0, len(body), step):
        seen += capture.feed(body[i : i + step])
    last, entry = capture.finish()
    assert entry is not None and capture.complete and capture.answer_id == "msg_orig123"
    assert len(seen) + len(last) == len(message_to_events(MESSAGE))
    assert entry.render(stream=False).body(b"msg_new").startswith(b'{"id":"msg_new"')
    assert (
        orjson.loads(entry.render(stream=False).body(b"msg_new"))["content"] == MESSAGE["content"]
    )


@pytest.mark.parametrize(
    ("dialect", "status", "ctype", "body"),
    [
        ("anthropic", 200, b"text/event-stream", _sse(message_to_events(MESSAGE)[:-1])),
        (
            "anthropic",
            200,
            b"text/event-stream",
            _sse(message_to_events(MESSAGE)[:3]) + b'event: error\ndata: {"type":"error"}\n\n',
        ),
        ("openai", 200, b"text/event-stream", _sse(completion_to_chunks(COMPLETION, False)[:-1])),
        (
            "openai",
            200,
            b"text/event-stream",
            _sse(completion_to_chunks(COMPLETION, False)[:2])
            + b'data: {"error":{"message":"x"}}\n\n'
            + b"data: [DONE]\n\n",
        ),
        ("anthropic", 500, b"application/json", orjson.dumps(MESSAGE)),
        ("anthropic", 200, b"application/json", b'{"type":"error"}'),
        ("openai", 200, b"application/json", b"not json"),
        ("openai", 200, b"text/plain", orjson.dumps(COMPLETION)),
    ],
)
def test_capture_stores_nothing_incomplete_or_failed(
    dialect: str, status: int, ctype: bytes, body: bytes
) -> None:
    capture = AnswerCapture(dialect, 1 << 20)
    capture.start(status, [(b"content-type", ctype)])
    capture.feed(body)
    assert capture.finish()[1] is None


def test_capture_past_its_bound_keeps_decoding_but_stores_nothing() -> None:
    body = _sse(message_to_events(MESSAGE))
    capture = AnswerCapture("anthropic", 300)
    capture.start(200, [(b"content-type", b"text/event-stream")])
    events = capture.feed(body)
    assert capture.too_large and len(events) == len(message_to_events(MESSAGE))
    assert capture.finish()[1] is None and capture.complete


def test_entry_encoding_round_trips_and_ids_are_fresh_in_every_chunk() -> None:
    entry = CacheEntry("openai", "chatcmpl-orig456", events=completion_to_chunks(COMPLETION, True))
    raw = entry.encode()
    back = decode_entry(raw)
    assert back.events == entry.events and back.size == len(raw) == entry.size
    body = back.render(stream=True).body(b"chatcmpl-NEW")
    assert (
        b"chatcmpl-orig456" not in body
        and body.count(b"chatcmpl-NEW") == len(entry.events or []) - 1
    )
    with pytest.raises(ValueError):
        decode_entry(b'{"v":99}')


def _tool_message() -> dict[str, Any]:
    return {
        "id": "msg_01stored",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Reading both."},
            {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"p": "a"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "Read", "input": {"p": "b"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def test_replays_get_fresh_answer_and_tool_ids() -> None:
    """A replay never repeats the stored ids: a conversation that meets the same cached
    answer twice must not hold two tool_use blocks with one id."""
    entry = CacheEntry("anthropic", "msg_01stored", message=_tool_message())
    for stream in (False, True):
        rendered = entry.render(stream)
        bodies = [
            rendered.body(fresh_id("anthropic"), lambda: fresh_tool_id("anthropic"))
            for _ in range(2)
        ]
        for body in bodies:
            assert b"msg_01stored" not in body and b"toolu_01A" not in body
            assert b"toolu_01B" not in body
        texts = [b.decode() for b in bodies]
        ids = [{i for i in re.findall(r"toolu_[0-9a-f]{24}", t)} for t in texts]
        assert len(ids[0]) == 2 and len(ids[1]) == 2 and not ids[0] & ids[1]
    # The non-streamed body is still the same message with the new ids in their places.
    body = entry.render(False).body(b"msg_new", lambda: b"toolu_new")
    doc = json.loads(body)
    assert doc["id"] == "msg_new"
    assert [b.get("id") for b in doc["content"]] == [None, "toolu_new", "toolu_new"]
    assert doc["content"][2]["input"] == {"p": "b"}


def test_openai_tool_call_ids_are_fresh_in_streams() -> None:
    completion = {
        "id": "chatcmpl-stored",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_stored1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    entry = CacheEntry("openai", "chatcmpl-stored", message=completion)
    body = entry.render(True).body(b"chatcmpl-new", lambda: fresh_tool_id("openai"))
    assert b"call_stored1" not in body and b"chatcmpl-stored" not in body
    assert re.search(rb"call_[0-9a-f]{24}", body)
