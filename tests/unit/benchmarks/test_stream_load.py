"""The streaming load generator: its SSE watcher byte by byte, its counters, and one short run
against an in-process SSE server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
import uvloop

from benchmarks.pacing import Window
from benchmarks.stream_load import (
    StreamLoad,
    StreamRecord,
    StreamStats,
    StreamWatch,
    summarize_streams,
)
from benchmarks.target import build_request, loopback_target

MS = 1_000_000

OPENAI_STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"Hm"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" world"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"content":[]}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"thinking","thinking":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"thinking_delta","thinking":"about \\"text_delta\\""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
    b'"delta":{"type":"text_delta","text":"Hello"}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
# The event whose arrival makes the first token visible, by index (0-based).
OPENAI_TOKEN_EVENT = 2
ANTHROPIC_TOKEN_EVENT = 3


def first_token_at(dialect: str, stream: bytes, pieces: list[bytes]) -> int | None:
    """Feeds `pieces`; returns how many bytes of `stream` had arrived when the token showed."""
    watch = StreamWatch(dialect)
    seen = 0
    for piece in pieces:
        watch.feed(piece)
        seen += len(piece)
        if watch.first_token:
            return seen
    return None


def token_byte(stream: bytes, event_index: int, marker: bytes, extra: int) -> int:
    """Bytes needed to see the token: through the marker and `extra` bytes after it."""
    start = 0
    for _ in range(event_index):
        start = stream.index(b"\n\n", start) + 2
    return stream.index(marker, start) + len(marker) + extra


def events_of(stream: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in stream.split(b"\n\n") if e]


def test_openai_token_found_at_the_same_byte_however_the_stream_is_cut() -> None:
    # OpenAI: the byte after the marker tells a token from the role chunk's empty string.
    needed = token_byte(OPENAI_STREAM, OPENAI_TOKEN_EVENT, b'"content":"', 1)
    whole = first_token_at("openai", OPENAI_STREAM, [OPENAI_STREAM])
    assert whole == len(OPENAI_STREAM)
    one_by_one = [OPENAI_STREAM[i : i + 1] for i in range(len(OPENAI_STREAM))]
    assert first_token_at("openai", OPENAI_STREAM, one_by_one) == needed
    for size in (2, 3, 7, 11, 64):
        pieces = [OPENAI_STREAM[i : i + size] for i in range(0, len(OPENAI_STREAM), size)]
        got = first_token_at("openai", OPENAI_STREAM, pieces)
        assert got is not None and needed <= got < needed + size


def test_role_chunk_and_null_content_are_no_token() -> None:
    head = OPENAI_STREAM[
        : OPENAI_STREAM.index(b'data: {"choices":[{"index":0,"delta":{"content":"H')
    ]
    watch = StreamWatch("openai")
    watch.feed(head)
    assert not watch.first_token
    assert watch.events == 2


def test_anthropic_token_is_the_first_text_delta_not_thinking() -> None:
    needed = token_byte(ANTHROPIC_STREAM, ANTHROPIC_TOKEN_EVENT, b'"text_delta"', 0)
    one_by_one = [ANTHROPIC_STREAM[i : i + 1] for i in range(len(ANTHROPIC_STREAM))]
    assert first_token_at("anthropic", ANTHROPIC_STREAM, one_by_one) == needed
    # The thinking text mentions "text_delta" escaped inside a JSON string: no token.
    before = b"".join(events_of(ANTHROPIC_STREAM)[:ANTHROPIC_TOKEN_EVENT])
    watch = StreamWatch("anthropic")
    watch.feed(before)
    assert b"text_delta" in before and not watch.first_token


def test_events_counted_across_any_split() -> None:
    for dialect, stream in (("openai", OPENAI_STREAM), ("anthropic", ANTHROPIC_STREAM)):
        expected = stream.count(b"\n\n")
        for size in (1, 2, 5, 13, len(stream)):
            watch = StreamWatch(dialect)
            for i in range(0, len(stream), size):
                watch.feed(stream[i : i + size])
            assert watch.events == expected, (dialect, size)


def test_close_reports_end_and_in_band_error() -> None:
    # Documented limit: the marker must start in one of the last two pieces, which holds
    # when (as with Junction and the mock) each event is written whole.
    for dialect, stream in (("openai", OPENAI_STREAM), ("anthropic", ANTHROPIC_STREAM)):
        watch = StreamWatch(dialect)
        for event in events_of(stream):
            watch.feed(event)
        watch.close()
        assert watch.ended and not watch.error
        split = StreamWatch(dialect)
        last = events_of(stream)[-1]
        split.feed(stream[: -len(last)])
        split.feed(last[:3])
        split.feed(last[3:])
        split.close()
        assert split.ended
    cut = StreamWatch("openai")
    cut.feed(OPENAI_STREAM[: OPENAI_STREAM.index(b"data: [DONE]")])
    cut.close()
    assert not cut.ended
    failed = StreamWatch("anthropic")
    failed.feed(ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_stop")])
    failed.feed(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n')
    failed.close()
    assert failed.error and not failed.ended
    openai_failed = StreamWatch("openai")
    openai_failed.feed(b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
    openai_failed.close()
    assert openai_failed.error and not openai_failed.ended


def test_only_streams_due_in_the_window_count_in_ttft() -> None:
    stats = StreamStats(Window(0, 1000 * MS, 2000 * MS))
    ramp = StreamRecord(0, due_ns=500 * MS, start_ns=501 * MS, head_ns=502 * MS)
    ramp.first_token_ns, ramp.end_ns, ramp.status, ramp.outcome = 530 * MS, 900 * MS, 200, "ok"
    measured = StreamRecord(1, due_ns=1500 * MS, start_ns=1500 * MS, head_ns=1503 * MS)
    measured.first_token_ns, measured.end_ns = 1525 * MS, 1900 * MS
    measured.status, measured.outcome = 200, "ok"
    refused = StreamRecord(2, due_ns=1600 * MS, start_ns=1600 * MS, head_ns=1601 * MS)
    refused.end_ns, refused.status, refused.outcome = 1601 * MS, 503, "status"
    for rec in (ramp, measured, refused):
        stats.finish(rec)
    stats.concurrency.extend([10, 12, 14])
    summary = summarize_streams(stats, {"rate": 1.0}, cpu_s=1.0, cpu_window_s=0.25)
    assert summary["ttft_ms"]["count"] == 1
    assert summary["ttft_ms"]["p50"] == 25.0
    assert summary["ttft_all_ms"]["count"] == 2
    assert summary["measured_streams"] == 2
    assert summary["outcomes"]["ok"] == 2 and summary["outcomes"]["status"] == 1
    assert summary["failed"] == 1
    assert summary["by_status"] == {"503": 1}
    assert summary["concurrency"] == {"samples": 3, "min": 10, "mean": 12.0, "max": 14}
    assert summary["generator_cpu_percent_in_window"] == 25.0
    assert summary["ttft_by_second"] == {"0": [1, 30.0, 30.0], "1": [1, 25.0, 25.0]}


class SSEServer(asyncio.Protocol):
    """Answers each request with a short chunked OpenAI stream, a few ms between events."""

    def __init__(self, gap_s: float) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._gap_s = gap_s
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        events = events_of(OPENAI_STREAM)
        loop = asyncio.get_running_loop()
        for i, event in enumerate(events):
            loop.call_later(i * self._gap_s, self._send, b"%x\r\n%s\r\n" % (len(event), event))
        loop.call_later(len(events) * self._gap_s, self._send, b"0\r\n\r\n")

    def _send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


def run_against_sse_server(watch_every: int) -> dict[str, Any]:
    async def scenario() -> StreamLoad:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SSEServer(0.005), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        target = loopback_target(f"http://127.0.0.1:{port}/v1/chat/completions")
        load = StreamLoad(
            target,
            build_request("POST", target, [], b"{}"),
            dialect="openai",
            rate=50,
            warmup_s=0.1,
            duration_s=0.3,
            stream_timeout_s=2.0,
            watch_every=watch_every,
            burst_s=0.05,
        )
        await load.run()
        server.close()
        return load

    load = uvloop.run(scenario())
    return summarize_streams(load.stats, {}, cpu_s=0.0, cpu_window_s=0.0)


def test_a_short_run_against_a_loopback_sse_server() -> None:
    s = run_against_sse_server(watch_every=1)
    assert s["scheduled"] == 20
    assert s["outcomes"]["ok"] == 20 and s["failed"] == 0
    assert s["ok_without_token"] == 0
    assert s["measured_streams"] == 15
    # The token is the third event, sent 10 ms after the head; nothing here waits long.
    assert s["ttft_ms"]["count"] == 15
    assert 8.0 <= s["ttft_ms"]["p50"] < 200.0  # uvloop timers may fire up to 1 ms early
    assert s["events"] == 20 * OPENAI_STREAM.count(b"\n\n")
    assert s["gap_ms"]["count"] > 0 and s["gap_ms"]["p50"] >= 4.0
    assert s["concurrency"]["max"] >= 1


def test_streams_read_in_bursts_still_complete_and_give_their_first_token() -> None:
    s = run_against_sse_server(watch_every=4)
    assert s["outcomes"]["ok"] == 20 and s["failed"] == 0
    assert s["ttft_ms"]["count"] == 15 and s["ok_without_token"] == 0
    assert s["events"] == 20 * OPENAI_STREAM.count(b"\n\n")
    # Only streams 0, 4, 8, ... give gaps and exact durations.
    assert s["stream_duration_ms"]["count"] == 5
    assert s["gap_ms"]["p50"] < 40.0
