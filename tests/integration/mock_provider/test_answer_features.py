"""Reasoning, signatures, usage (include_usage, cached tokens), images, retry-after and
count_tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import httpx
import pytest

from .helpers import KEY, anthropic_body, openai_body, provider, run, sse_events

THINKING = "Let me think about what the user asked and answer briefly."
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


def chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of an OpenAI stream, checking it ends with [DONE]."""
    events = sse_events(raw)
    assert events[-1] == (None, "[DONE]")
    return [json.loads(data) for _, data in events[:-1]]


def test_openai_reasoning_streams_before_content_and_fills_the_message() -> None:
    async def main() -> None:
        async with (
            provider(output_tokens=4) as mock,
            httpx.AsyncClient(base_url=mock.base_url) as c,
        ):
            body = openai_body(reasoning_effort="high", stream=True)
            got = chunks((await c.post("/v1/chat/completions", json=body)).content)
            deltas = [ch["choices"][0]["delta"] for ch in got]
            kinds = ["reasoning" if d.get("reasoning_content") else "content" for d in deltas[1:-1]]
            assert kinds == ["reasoning"] * 11 + ["content"] * 4  # reasoning strictly first
            assert "".join(d.get("reasoning_content") or "" for d in deltas) == THINKING
            assert all(d["content"] is None for d in deltas if d.get("reasoning_content"))
            plain = await c.post("/v1/chat/completions", json=openai_body(reasoning_effort="low"))
            message = plain.json()["choices"][0]["message"]
            assert message["reasoning_content"] == THINKING
            assert len(message["content"].split()) == 4
            usage = plain.json()["usage"]
            assert usage["completion_tokens"] == 11 + 4
            assert usage["completion_tokens_details"] == {"reasoning_tokens": 11}
            # the other ways to ask, and to refuse
            for extra, headers, expected in (
                ({"thinking": {"type": "enabled"}}, {}, True),
                ({"thinking": {"type": "disabled"}}, {}, False),
                ({"reasoning_effort": "none"}, {}, False),
                ({}, {}, False),
                ({}, {"x-mock-reasoning": "1"}, True),
                ({"reasoning_effort": "high"}, {"x-mock-reasoning": "0"}, False),
            ):
                r = await c.post("/v1/chat/completions", json=openai_body(**extra), headers=headers)
                assert ("reasoning_content" in r.json()["choices"][0]["message"]) is expected

    run(main())


def test_anthropic_thinking_has_a_deterministic_signature() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            body = anthropic_body(max_tokens=4096, thinking={"type": "adaptive"})
            first = (await c.post("/v1/messages", json=body)).json()["content"][0]
            second = (await c.post("/v1/messages", json=body)).json()["content"][0]
            assert first["type"] == "thinking" and first["thinking"] == THINKING
            assert base64.b64decode(first["signature"]).startswith(b"mock-signature-")
            assert first == second
            r = await c.post("/v1/messages", json=body | {"stream": True})
            deltas = [
                json.loads(d)["delta"]
                for n, d in sse_events(r.content)
                if n == "content_block_delta"
            ]
            signatures = [d["signature"] for d in deltas if d["type"] == "signature_delta"]
            assert len(signatures) == 1  # the body differs, and with it the seed
            assert base64.b64decode(signatures[0]).startswith(b"mock-signature-")
            # the header turns thinking on for a request that did not ask for it
            forced = await c.post(
                "/v1/messages", json=anthropic_body(), headers={"x-mock-reasoning": "1"}
            )
            assert [b["type"] for b in forced.json()["content"]] == ["thinking", "text"]

    run(main())


def test_openai_include_usage_nulls_then_usage_chunk_with_cached_tokens() -> None:
    async def main() -> None:
        async with (
            provider(output_tokens=3) as mock,
            httpx.AsyncClient(base_url=mock.base_url) as c,
        ):
            body = openai_body(stream=True, stream_options={"include_usage": True})
            r = await c.post(
                "/v1/chat/completions", json=body, headers={"x-mock-cached-tokens": "1000"}
            )
            got = chunks(r.content)
            usage_chunk = got[-1]
            assert usage_chunk["choices"] == []
            assert got[-2]["choices"][0]["finish_reason"] == "stop"  # usage after the finish
            assert all("usage" in ch and ch["usage"] is None for ch in got[:-1])
            estimate = len(mock.recorded[-1].body) // 4
            assert usage_chunk["usage"]["prompt_tokens"] == estimate + 1000
            assert usage_chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}
            assert usage_chunk["usage"]["total_tokens"] == estimate + 1000 + 3
            # without include_usage: no usage anywhere in the stream
            r = await c.post("/v1/chat/completions", json=openai_body(stream=True))
            assert all("usage" not in ch for ch in chunks(r.content))
            plain = await c.post(
                "/v1/chat/completions", json=openai_body(), headers={"x-mock-cached-tokens": "7"}
            )
            assert plain.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 7

    run(main())


def test_anthropic_cache_read_tokens_in_body_and_stream() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            headers = {"x-mock-cached-tokens": "500"}
            r = await c.post("/v1/messages", json=anthropic_body(), headers=headers)
            usage = r.json()["usage"]
            assert usage["cache_read_input_tokens"] == 500
            assert usage["input_tokens"] == len(mock.recorded[-1].body) // 4  # uncached part
            assert usage["cache_creation_input_tokens"] == 0
            r = await c.post("/v1/messages", json=anthropic_body(stream=True), headers=headers)
            events = {n: json.loads(d) for n, d in sse_events(r.content)}
            assert events["message_start"]["message"]["usage"]["cache_read_input_tokens"] == 500
            assert events["message_delta"]["usage"]["cache_read_input_tokens"] == 500
            default = await c.post("/v1/messages", json=anthropic_body())
            assert default.json()["usage"]["cache_read_input_tokens"] == 0

    run(main())


def test_images_are_counted_in_the_answer_text() -> None:
    a_image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}
    o_image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}

    async def main() -> None:
        async with (
            provider(output_tokens=5) as mock,
            httpx.AsyncClient(base_url=mock.base_url) as c,
        ):
            content = [{"type": "text", "text": "What is this?"}, a_image, url_image]
            body = anthropic_body(messages=[{"role": "user", "content": content}])
            text = (await c.post("/v1/messages", json=body)).json()["content"][0]["text"]
            assert text.startswith("[saw 2 images] ") and len(text.split()) == 3 + 5
            o_content = [{"type": "text", "text": "And these?"}, o_image, o_image, o_image]
            body = openai_body(messages=[{"role": "user", "content": o_content}], stream=True)
            raw = (await c.post("/v1/chat/completions", json=body)).content
            streamed = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks(raw))
            assert streamed.startswith("[saw 3 images] ")
            plain = await c.post("/v1/messages", json=anthropic_body())
            assert not plain.json()["content"][0]["text"].startswith("[saw")
            # an image inside a tool result counts too
            turns = [
                {"role": "user", "content": "look"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [a_image]}
                    ],
                },
            ]
            r = await c.post("/v1/messages", json=anthropic_body(messages=turns))
            assert r.json()["content"][0]["text"].startswith("[saw 1 images] ")

    run(main())


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_and_overload_statuses_carry_retry_after(stream: bool) -> None:
    async def main() -> None:
        async with (
            provider(retry_after_s=7) as mock,
            httpx.AsyncClient(base_url=mock.base_url) as c,
        ):
            a_body, o_body = anthropic_body(stream=stream), openai_body(stream=stream)
            limited = {"x-mock-fail": "status:429"}
            a = await c.post("/v1/messages", json=a_body, headers=limited)
            assert (a.status_code, a.headers["retry-after"]) == (429, "7")
            assert a.json() == {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "Number of requests has exceeded your rate limit",
                },
                "request_id": a.headers["request-id"],
            }
            o = await c.post("/v1/chat/completions", json=o_body, headers=limited)
            assert (o.status_code, o.headers["retry-after"]) == (429, "7")
            assert o.json() == {
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "rate_limit_error",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            }
            # overloaded: 529 for Anthropic, 503 for OpenAI (non-stream; streams fail in band)
            busy = {"x-mock-fail": "overloaded-in-stream"}
            a = await c.post("/v1/messages", json=a_body, headers=busy)
            o = await c.post("/v1/chat/completions", json=o_body, headers=busy)
            if stream:
                assert (a.status_code, o.status_code) == (200, 200)
                assert sse_events(a.content)[-1][0] == "error"
                assert '"overloaded_error"' in a.text
                assert json.loads(sse_events(o.content)[-1][1])["error"]["type"] == "server_error"
            else:
                assert (a.status_code, a.headers["retry-after"]) == (529, "7")
                assert a.json()["error"]["type"] == "overloaded_error"
                assert (o.status_code, o.headers["retry-after"]) == (503, "7")
                assert o.json()["error"]["type"] == "server_error"
            plain = await c.post("/v1/messages", json=a_body, headers={"x-mock-fail": "status:500"})
            assert plain.status_code == 500 and "retry-after" not in plain.headers

    run(main())


def test_count_tokens_uses_the_estimate_and_checks_the_request() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            body = {"model": "m", "messages": [{"role": "user", "content": "count me " * 40}]}
            r = await c.post("/v1/messages/count_tokens", json=body)
            assert r.json() == {"input_tokens": len(mock.recorded[-1].body) // 4}
            bad = {"model": "m", "messages": [{"role": "assistant", "content": "hi"}]}
            r = await c.post("/v1/messages/count_tokens", json=bad)
            assert r.status_code == 400 and '"user" role' in r.json()["error"]["message"]
            sdk = anthropic.AsyncAnthropic(base_url=mock.base_url, api_key=KEY, max_retries=0)
            async with sdk:
                counted = await sdk.messages.count_tokens(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert counted.input_tokens == len(mock.recorded[-1].body) // 4

    run(main())
