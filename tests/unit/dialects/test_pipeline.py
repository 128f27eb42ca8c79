"""The exchange plan and the response translator, byte level and without sockets."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from proxy.dialects.pipeline import (
    MAX_ERROR_BODY_BYTES,
    MAX_JSON_RESPONSE_BYTES,
    ExchangePlan,
    ResponseTranslator,
    plan_exchange,
)
from proxy.dialects.transformers.registry import TransformerChain, build_chain
from proxy.errors import BadRequestError, TranslationError, UpstreamBadResponseError
from proxy.filters.api import Dialect

A, OA = Dialect.ANTHROPIC, Dialect.OPENAI
A_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
O_BODY: dict[str, Any] = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def plan(
    client: Dialect,
    provider: Dialect,
    body: dict[str, Any],
    *,
    model: str = "m",
    chain: TransformerChain | None = None,
    path: bytes = b"/v1/messages?beta=true",
) -> ExchangePlan:
    raw = orjson.dumps(body)
    return plan_exchange(
        client=client,
        provider=provider,
        provider_name="p",
        path=path,
        body_json=json.loads(raw),
        raw_body=raw,
        model=model,
        chain=chain,
        id_hex="abc123",
        now_unix=1_700_000_000,
    )


def run(tr: ResponseTranslator, status: int, headers: list[tuple[bytes, bytes]], *chunks: bytes):  # type: ignore[no-untyped-def]
    tr.start(status, headers)
    out = b"".join(tr.feed(c) for c in chunks) + tr.end()
    return tr.head(), out


def sse_events(raw: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for block in raw.decode().split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


# -- plans ---------------------------------------------------------------------------------


def test_same_dialect_without_transformers_forwards_the_bytes() -> None:
    raw = orjson.dumps({**A_BODY, "model": "m"})
    p = plan_exchange(
        client=A,
        provider=A,
        provider_name="p",
        path=b"/v1/messages?beta=true",
        body_json=json.loads(raw),
        raw_body=raw,
        model="m",
        chain=None,
        id_hex="x",
        now_unix=0,
    )
    assert p.body is raw and p.response is None and p.path == b"/v1/messages?beta=true"
    assert p.set_headers == [] and p.drop_headers == frozenset()


def test_same_dialect_rewrites_the_model_only() -> None:
    p = plan(A, A, A_BODY, model="claude-opus-4-8")
    assert json.loads(p.body) == {**A_BODY, "model": "claude-opus-4-8"}
    assert p.response is None


def test_anthropic_to_openai_plan_changes_path_headers_and_body() -> None:
    p = plan(A, OA, {**A_BODY, "stream": True}, model="gpt-4.1")
    assert p.path == b"/v1/chat/completions"
    body = json.loads(p.body)
    assert body["model"] == "gpt-4.1" and body["stream_options"] == {"include_usage": True}
    assert (b"accept-encoding", b"identity") in p.set_headers
    assert {b"anthropic-version", b"anthropic-beta", b"accept-encoding"} <= p.drop_headers
    assert p.response is not None


def test_openai_to_anthropic_plan_adds_anthropic_version() -> None:
    p = plan(OA, A, O_BODY, model="claude-sonnet-4-5", path=b"/v1/chat/completions")
    assert p.path == b"/v1/messages"
    assert (b"anthropic-version", b"2023-06-01") in p.set_headers
    assert json.loads(p.body)["max_tokens"] > 0


def test_client_model_is_kept_when_the_target_names_none() -> None:
    p = plan(A, OA, A_BODY, model="")
    assert json.loads(p.body)["model"] == "claude-sonnet-4-5"


def test_untranslatable_request_raises_translation_error() -> None:
    body = {**O_BODY, "n": 3}
    with pytest.raises(TranslationError) as info:
        plan(OA, A, body)
    assert info.value.field == "n" and info.value.status == 400


def test_non_object_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError):
        plan_exchange(
            client=A,
            provider=OA,
            provider_name="p",
            path=b"/v1/messages",
            body_json=[1, 2],
            raw_body=b"[1,2]",
            model="m",
            chain=None,
            id_hex="x",
            now_unix=0,
        )


def test_transformers_run_on_the_provider_request_even_for_the_same_dialect() -> None:
    chain = TransformerChain(build_chain([["maxtoken", {"max_tokens": 50}]], where="t"))
    p = plan(OA, OA, {**O_BODY, "max_tokens": 4000}, chain=chain, path=b"/v1/chat/completions")
    assert json.loads(p.body)["max_tokens"] == 50
    assert p.response is not None  # the response passes the chain too


# -- responses -------------------------------------------------------------------------------

SSE = [(b"content-type", b"text/event-stream")]
JSON = [(b"content-type", b"application/json"), (b"content-length", b"10")]


def test_openai_error_becomes_anthropic_error_with_overload_mapped_to_529() -> None:
    tr = plan(A, OA, A_BODY).response
    assert tr is not None
    body = b'{"error":{"message":"busy","type":"server_error","code":null}}'
    (status, headers), out = run(tr, 503, [*JSON, (b"retry-after", b"7")], body)
    assert status == 529
    assert (b"retry-after", b"7") in headers
    assert (b"content-length", b"10") not in headers
    doc = json.loads(out)
    assert doc["type"] == "error" and doc["error"]["type"] == "overloaded_error"
    assert "busy" in doc["error"]["message"]


def test_anthropic_529_becomes_openai_503() -> None:
    tr = plan(OA, A, O_BODY, path=b"/v1/chat/completions").response
    assert tr is not None
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    (status, _), out = run(tr, 529, JSON, body)
    assert status == 503
    assert json.loads(out)["error"]["message"] == "Overloaded"


def test_error_body_is_bounded_and_garbage_is_tolerated() -> None:
    tr = plan(A, OA, A_BODY).response
    assert tr is not None
    (status, _), out = run(tr, 500, [], b"<html>" + b"x" * (2 * MAX_ERROR_BODY_BYTES))
    assert status == 500
    doc = json.loads(out)
    assert doc["error"]["type"] == "api_error" and len(doc["error"]["message"]) < 1000


def test_whole_openai_answer_becomes_anthropic_message() -> None:
    tr = plan(A, OA, A_BODY).response
    assert tr is not None
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    raw = orjson.dumps(answer)
    (status, headers), out = run(tr, 200, JSON, raw[:10], raw[10:])
    assert status == 200 and (b"content-type", b"application/json") in headers
    doc = json.loads(out)
    assert doc["id"] == "msg_abc123" and doc["model"] == "claude-sonnet-4-5"
    assert doc["content"] == [{"type": "text", "text": "Hi!"}]
    assert doc["usage"]["input_tokens"] == 5 and doc["stop_reason"] == "end_turn"


def test_provider_garbage_in_a_whole_answer_raises_bad_response() -> None:
    tr = plan(A, OA, A_BODY).response
    assert tr is not None
    tr.start(200, JSON)
    tr.feed(b"{not json")
    with pytest.raises(UpstreamBadResponseError):
        tr.end()


def test_whole_answer_larger_than_the_bound_is_refused() -> None:
    tr = plan(A, OA, A_BODY).response
    assert tr is not None
    tr.start(200, JSON)
    chunk = b"x" * (1024 * 1024)
    with pytest.raises(UpstreamBadResponseError):
        for _ in range(MAX_JSON_RESPONSE_BYTES // len(chunk) + 1):
            tr.feed(chunk)


OPENAI_STREAM = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
    b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


def test_openai_stream_becomes_anthropic_events_as_they_arrive() -> None:
    tr = plan(A, OA, {**A_BODY, "stream": True}).response
    assert tr is not None
    tr.start(200, SSE)
    status, headers = tr.head()
    assert status == 200 and (b"content-type", b"text/event-stream; charset=utf-8") in headers
    first = tr.feed(OPENAI_STREAM[:150])
    assert b"message_start" in first  # the first chunk is out before the rest arrived
    rest = tr.feed(OPENAI_STREAM[150:]) + tr.end()
    names = [n for n, _ in sse_events(first + rest)]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = sse_events(rest)[-2][1]
    assert delta["usage"]["output_tokens"] == 2 and delta["delta"]["stop_reason"] == "end_turn"


def test_stream_cut_before_the_end_closes_with_an_error_event() -> None:
    tr = plan(A, OA, {**A_BODY, "stream": True}).response
    assert tr is not None
    tr.start(200, SSE)
    out = tr.feed(OPENAI_STREAM[:200]) + tr.end()
    names = [n for n, _ in sse_events(out)]
    assert names[-1] == "error" and "message_stop" not in names


def test_failure_mid_stream_closes_the_open_block_then_errors() -> None:
    tr = plan(A, OA, {**A_BODY, "stream": True}).response
    assert tr is not None
    tr.start(200, SSE)
    out = tr.feed(OPENAI_STREAM[:200]) + tr.fail("timeout_error", "stream idle timeout")
    events = sse_events(out)
    assert [n for n, _ in events][-2:] == ["content_block_stop", "error"]
    assert events[-1][1]["error"]["type"] == "timeout_error"
    assert tr.fail("api_error", "again") == b"" and tr.feed(b"data: {}\n\n") == b""


def test_bad_json_event_ends_the_stream_in_band() -> None:
    tr = plan(A, OA, {**A_BODY, "stream": True}).response
    assert tr is not None
    tr.start(200, SSE)
    out = tr.feed(b"data: {oops\n\n")
    assert sse_events(out)[-1][0] == "error"


ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":3}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


@pytest.mark.parametrize("include_usage", [True, False])
def test_anthropic_stream_becomes_openai_chunks_then_done(include_usage: bool) -> None:
    body = {**O_BODY, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    tr = plan(OA, A, body, path=b"/v1/chat/completions").response
    assert tr is not None
    (_, _), out = run(tr, 200, SSE, ANTHROPIC_STREAM)
    events = sse_events(out)
    assert events[-1] == (None, "[DONE]")
    chunks = [d for _, d in events[:-1]]
    assert chunks[0]["id"] == "chatcmpl-abc123" and chunks[0]["model"] == "gpt-4.1"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop"
    has_usage_chunk = any(c["choices"] == [] and c.get("usage") for c in chunks)
    assert has_usage_chunk is include_usage


def test_same_dialect_stream_through_transformers_is_re_encoded() -> None:
    chain = TransformerChain(build_chain(["enhancetool"], where="t"))
    tr = plan(
        OA, OA, {**O_BODY, "stream": True}, chain=chain, path=b"/v1/chat/completions"
    ).response
    assert tr is not None
    (_, _), out = run(tr, 200, SSE, OPENAI_STREAM)
    events = sse_events(out)
    assert events[-1] == (None, "[DONE]")
    text = "".join(
        d["choices"][0]["delta"].get("content") or "" for _, d in events[:-1] if d["choices"]
    )
    assert text == "Hello"


@pytest.mark.parametrize(
    ("transformers", "dropped"),
    [
        ([["maxtoken", {"max_tokens": 100}]], {b"accept-encoding"}),
        ([["anthropiccompat", {}]], {b"accept-encoding", b"anthropic-beta"}),
    ],
)
def test_same_dialect_with_transformers_keeps_the_clients_version_header(
    transformers: list[Any], dropped: set[bytes]
) -> None:
    """An Anthropic client to an Anthropic provider with transformers: the request is still
    Anthropic's, so its anthropic-version goes on (the API requires it); only an
    anthropiccompat endpoint loses the betas it may not know."""

    chain = TransformerChain(build_chain(transformers, where="t"))
    plan = plan_exchange(
        client=Dialect.ANTHROPIC,
        provider=Dialect.ANTHROPIC,
        provider_name="a",
        path=b"/v1/messages",
        body_json={"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
        raw_body=None,
        model="m",
        chain=chain,
        id_hex="0" * 24,
        now_unix=1,
    )
    assert set(plan.drop_headers) == dropped
    assert b"anthropic-version" not in plan.drop_headers
