"""Stream grammar against a real capture, Claude Code requests, and pacing."""

from __future__ import annotations

import json
import time
from itertools import groupby

import httpx

from .helpers import FIXTURES, anthropic_body, fixture_json, provider, run, sse_events


def collapsed(names: list[str | None]) -> list[str | None]:
    return [name for name, _ in groupby(names)]


def test_claude_code_tool_turn_matches_the_real_stream_grammar() -> None:
    capture = fixture_json("cc_06_tool_loop_turn1.json")
    real = sse_events((FIXTURES / "mock_response_cc_tool_turn1.sse").read_bytes())
    headers = {k: v for k, v in capture["headers"] if k.lower() not in ("content-length", "host")}

    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post(capture["target"], json=capture["body"], headers=headers)
            assert r.status_code == 200
            assert r.headers["content-type"] == "text/event-stream"
            ours = sse_events(r.content)
            # same event sequence as the real answer: thinking, text, tool_use blocks
            assert collapsed([n for n, _ in ours]) == collapsed([n for n, _ in real])
            for name, data in ours:
                assert json.loads(data)["type"] == name
            starts = [json.loads(d) for n, d in ours if n == "content_block_start"]
            assert [s["index"] for s in starts] == [0, 1, 2]
            tool = starts[2]["content_block"]
            first_tool = capture["body"]["tools"][0]
            assert tool["name"] == first_tool["name"]
            fragments = [
                json.loads(d)["delta"]["partial_json"]
                for n, d in ours
                if n == "content_block_delta" and '"input_json_delta"' in d
            ]
            assert fragments[0] == "" and len(fragments) >= 3
            tool_input = json.loads("".join(fragments))
            assert set(tool_input) == set(first_tool["input_schema"]["required"])
            delta = json.loads(ours[-2][1])
            assert delta["delta"]["stop_reason"] == "tool_use"
            assert delta["usage"]["output_tokens"] > 0
            rec = mock.recorded[0]
            assert rec.path == "/v1/messages?beta=true"
            assert rec.header("x-claude-code-session-id") is not None

    run(main())


def test_claude_code_tool_result_turn_answers_text() -> None:
    capture = fixture_json("cc_07_tool_loop_turn2_tool_result.json")

    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post("/v1/messages?beta=true", json=capture["body"])
            names = [n for n, _ in sse_events(r.content)]
            starts = [
                json.loads(d)["content_block"]["type"]
                for n, d in sse_events(r.content)
                if n == "content_block_start"
            ]
            assert starts == ["thinking", "text"]  # adaptive thinking, then the answer
            assert names[-1] == "message_stop"
            assert '"stop_reason":"end_turn"' in r.text

    run(main())


def test_tokens_per_second_spreads_the_stream() -> None:
    async def main() -> None:
        async with provider(tokens_per_s=100.0, output_tokens=20) as mock:
            async with httpx.AsyncClient(base_url=mock.base_url) as c:
                start = time.monotonic()
                arrivals = []
                async with c.stream("POST", "/v1/messages", json=anthropic_body(stream=True)) as r:
                    async for _ in r.aiter_raw():
                        arrivals.append(time.monotonic() - start)
                elapsed = time.monotonic() - start
            assert elapsed >= 0.8 * 20 / 100.0  # 20 tokens at 100/s: about 0.2 s
            assert len(arrivals) >= 5  # the events came in many reads, not one
            # per-request override: faster pace, plus a first-byte latency
            async with httpx.AsyncClient(base_url=mock.base_url) as c:
                start = time.monotonic()
                headers = {
                    "x-mock-tokens-per-s": "0",
                    "x-mock-sse-gap-ms": "0",
                    "x-mock-latency-ms": "150",
                }
                async with c.stream(
                    "POST", "/v1/messages", json=anthropic_body(stream=True), headers=headers
                ) as r:
                    await r.aread()
                assert time.monotonic() - start >= 0.8 * 0.15
                assert r.text.endswith('{"type":"message_stop"}\n\n')

    run(main())


def test_sse_gap_and_output_token_overrides() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            start = time.monotonic()
            headers = {"x-mock-sse-gap-ms": "10", "x-mock-output-tokens": "3"}
            r = await c.post("/v1/messages", json=anthropic_body(stream=True), headers=headers)
            events = sse_events(r.content)
            # 3 text deltas and about 9 other events, 10 ms apart
            assert time.monotonic() - start >= 0.8 * 0.01 * (len(events) - 1)
            deltas = [d for n, d in events if n == "content_block_delta"]
            assert len(deltas) == 3

    run(main())
