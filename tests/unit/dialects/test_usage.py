"""UsageTap: the usage a provider reports, from parsed objects and from raw bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.dialects.usage import MAX_TAPPED_BODY_BYTES, UsageTap
from proxy.filters.api import Dialect

ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":'
    b'{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"hi"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":42}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
OPENAI_STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":42}}\n\n'
    b"data: [DONE]\n\n"
)


def tap_bytes(dialect: Dialect, streaming: bool, chunks: list[bytes]) -> tuple[int, int]:
    tap = UsageTap(dialect)
    tap.start(streaming)
    for c in chunks:
        tap.feed(c)
    tap.end()
    return tap.input_tokens, tap.output_tokens


def test_anthropic_stream_counts_cached_input_and_the_final_output() -> None:
    assert tap_bytes(Dialect.ANTHROPIC, True, [ANTHROPIC_STREAM]) == (100, 42)


def test_openai_stream_reads_the_usage_chunk() -> None:
    assert tap_bytes(Dialect.OPENAI, True, [OPENAI_STREAM]) == (100, 42)


def test_whole_answers_in_both_dialects() -> None:
    a = b'{"type":"message","usage":{"input_tokens":7,"output_tokens":3}}'
    o = b'{"object":"chat.completion","usage":{"prompt_tokens":7,"completion_tokens":3}}'
    assert tap_bytes(Dialect.ANTHROPIC, False, [a[:5], a[5:]]) == (7, 3)
    assert tap_bytes(Dialect.OPENAI, False, [o]) == (7, 3)


def test_nothing_reported_stays_unknown() -> None:
    assert tap_bytes(Dialect.OPENAI, True, [OPENAI_STREAM.split(b'data: {"choices":[],')[0]]) == (
        -1,
        -1,
    )
    assert tap_bytes(Dialect.ANTHROPIC, False, [b"not json"]) == (-1, -1)


def test_a_body_over_the_bound_is_not_read() -> None:
    big = b'{"usage":{"input_tokens":1,"output_tokens":1},"pad":"' + b"x" * MAX_TAPPED_BODY_BYTES
    assert tap_bytes(Dialect.ANTHROPIC, False, [big, b'"}']) == (-1, -1)


@given(st.lists(st.integers(min_value=1, max_value=len(ANTHROPIC_STREAM) - 1), max_size=8))
def test_any_split_gives_the_same_usage(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [ANTHROPIC_STREAM[a:b] for a, b in zip([0, *points], [*points, None], strict=True)]
    assert tap_bytes(Dialect.ANTHROPIC, True, pieces) == (100, 42)
