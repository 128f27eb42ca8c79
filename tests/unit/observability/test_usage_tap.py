"""Reading usage from forwarded streams: however the bytes are cut, the same figures, and
chunks without usage are skipped without decoding."""

from __future__ import annotations

import pytest

from proxy.dialects.usage import UsageTap
from proxy.filters.api import Dialect

START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
    b'"role":"assistant","content":[],"usage":{"input_tokens":30,"cache_read_input_tokens":20,'
    b'"output_tokens":1}}}\n\n'
)
DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"x"}}\n\n'
)
END = (
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":9}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
)
ANTHROPIC_STREAM = START + DELTA * 50 + END
OPENAI_STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    * 20
    + b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,'
    b'"prompt_tokens_details":{"cached_tokens":8}}}\n\ndata: [DONE]\n\n'
)


def tapped(dialect: Dialect, chunks: list[bytes]) -> tuple[int, int, int]:
    tap = UsageTap(dialect)
    tap.start(True)
    for chunk in chunks:
        tap.feed(chunk)
    tap.end()
    return tap.input_tokens, tap.output_tokens, tap.cached_tokens


def cuts(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 333, 1 << 20])
def test_any_chunking_reads_the_same_usage(size: int) -> None:
    assert tapped(Dialect.ANTHROPIC, cuts(ANTHROPIC_STREAM, size)) == (50, 9, 20)
    assert tapped(Dialect.OPENAI, cuts(OPENAI_STREAM, size)) == (12, 4, 8)


def test_crlf_event_boundaries() -> None:
    crlf = ANTHROPIC_STREAM.replace(b"\n", b"\r\n")
    assert tapped(Dialect.ANTHROPIC, cuts(crlf, 5)) == (50, 9, 20)


def test_an_endless_event_stops_the_reading_not_the_stream() -> None:
    tap = UsageTap(Dialect.ANTHROPIC)
    tap.start(True)
    tap.feed(b'data: {"usage":' + b" " * (5 * 1024 * 1024))
    tap.feed(END)  # no longer read: the over-long event made the tap give up
    assert tap.input_tokens == -1 and tap.output_tokens == -1
