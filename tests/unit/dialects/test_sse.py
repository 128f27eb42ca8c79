"""SSE codec: the event-stream rules LLM providers rely on, the size bound, and that neither
the line-ending style nor how the body is split into reads changes the decoded events."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.dialects.sse import SSEDecoder, SSEEvent, encode_event, end_of_last_event
from proxy.errors import UpstreamBadResponseError

STREAMS = Path(__file__).parents[2] / "fixtures" / "dialects" / "streams"
ANTHROPIC_TOOL_TURN = (STREAMS / "mock_response_cc_tool_turn1.sse").read_bytes()

S = TypeVar("S", bytes, str)
LINE_ENDINGS = (b"\n", b"\r\n", b"\r")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_all(chunks: Iterable[bytes], max_event_bytes: int | None = None) -> list[SSEEvent]:
    decoder = SSEDecoder() if max_event_bytes is None else SSEDecoder(max_event_bytes)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def split_at(data: S, cuts: Iterable[int]) -> list[S]:
    """`data` cut at the given offsets (taken modulo its length, in any order)."""
    points: list[int] = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def with_eol(raw: bytes, eol: bytes) -> bytes:
    """`raw` (LF line endings, no CR inside) with another line-ending style."""
    return raw.replace(b"\n", eol)


# -- the event-stream rules -----------------------------------------------------------------


def test_named_event() -> None:
    assert decode_all([b'event: ping\ndata: {"type":"ping"}\n\n']) == [
        SSEEvent("ping", b'{"type":"ping"}')
    ]


def test_data_only_events_have_no_name() -> None:
    assert decode_all([b"data: one\n\ndata: [DONE]\n\n"]) == [
        SSEEvent(None, b"one"),
        SSEEvent(None, b"[DONE]"),
    ]


def test_data_lines_join_with_lf_and_empty_data_counts() -> None:
    assert decode_all([b"data: a\ndata: b\ndata:\n\n"]) == [SSEEvent(None, b"a\nb\n")]
    assert decode_all([b"data\n\n"]) == [SSEEvent(None, b"")]


def test_space_after_colon_is_optional_and_only_one_is_removed() -> None:
    assert decode_all([b"event:x\ndata:y\n\nevent:  z\ndata:  w\n\n"]) == [
        SSEEvent("x", b"y"),
        SSEEvent(" z", b" w"),
    ]


def test_comments_ids_retry_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: z\n:\n\n"
    assert decode_all([stream]) == [SSEEvent(None, b"z")]


def test_event_without_data_is_not_dispatched_and_its_name_does_not_leak() -> None:
    assert decode_all([b"event: a\n\ndata: x\n\n: only a comment\n\n"]) == [SSEEvent(None, b"x")]


def test_empty_event_name_means_none() -> None:
    assert decode_all([b"event:\ndata: x\n\n"]) == [SSEEvent(None, b"x")]


@pytest.mark.parametrize("eol", LINE_ENDINGS)
def test_every_line_ending(eol: bytes) -> None:
    raw = with_eol(b"event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n", eol)
    assert decode_all([raw]) == [SSEEvent("a", b"1\n2"), SSEEvent(None, b"3")]


def test_mixed_line_endings() -> None:
    assert decode_all([b"data: a\r\ndata: b\rdata: c\n\r\n"]) == [SSEEvent(None, b"a\nb\nc")]


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [SSEEvent(None, b"a")]  # the CR ends the blank line at once
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(None, b"b")]
    assert decoder.close() == []


def test_lone_cr_at_chunk_end_dispatches_without_waiting() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [SSEEvent(None, b"a")]
    assert decoder.feed(b"data: b\r\r") == [SSEEvent(None, b"b")]


def test_event_comes_out_of_the_feed_that_completes_it() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {") == []
    assert decoder.feed(b'"a":1}\n') == []
    assert decoder.feed(b"\n") == [SSEEvent(None, b'{"a":1}')]


def test_leading_bom_is_dropped_even_when_split() -> None:
    bom = b"\xef\xbb\xbf"
    assert decode_all([bom + b"data: a\n\n"]) == [SSEEvent(None, b"a")]
    assert decode_all([bom[:1], bom[1:] + b"data: a\n", b"\n"]) == [SSEEvent(None, b"a")]
    # Only at the very start: later it is part of a (then unknown) field name.
    assert decode_all([b"data: a\n\n" + bom + b"data: b\n\n"]) == [SSEEvent(None, b"a")]


# -- end of stream ----------------------------------------------------------------------------


def test_close_delivers_an_event_missing_its_blank_line() -> None:
    assert decode_all([b"data: x\n\ndata: [DONE]\n"]) == [
        SSEEvent(None, b"x"),
        SSEEvent(None, b"[DONE]"),
    ]


def test_close_delivers_an_unterminated_last_line() -> None:
    # A cut-off JSON payload is passed on as is; the JSON layer above rejects it.
    assert decode_all([b'data: {"a":1}\n\ndata: {"b"']) == [
        SSEEvent(None, b'{"a":1}'),
        SSEEvent(None, b'{"b"'),
    ]


def test_close_with_nothing_pending() -> None:
    assert decode_all([b"data: x\n\n"]) == [SSEEvent(None, b"x")]
    assert decode_all([b"data: x\n\n: bye\n"]) == [SSEEvent(None, b"x")]
    assert decode_all([]) == []
    assert decode_all([b"event: lonely\n"]) == []


# -- the bound --------------------------------------------------------------------------------


def test_event_at_the_bound_passes_and_the_count_restarts_per_event() -> None:
    # 8 data bytes + 1 for its line = 9 per event, bound 9: each passes.
    events = decode_all([b"data: 12345678\n\n" * 3], max_event_bytes=9)
    assert events == [SSEEvent(None, b"12345678")] * 3


def test_oversized_single_line_raises() -> None:
    with pytest.raises(UpstreamBadResponseError):
        decode_all([b"data: 123456789\n\n"], max_event_bytes=9)


def test_oversized_line_raises_before_its_end_arrives() -> None:
    decoder = SSEDecoder(64)
    decoder.feed(b"data: " + b"x" * 40)
    with pytest.raises(UpstreamBadResponseError):
        decoder.feed(b"x" * 40)


def test_many_lines_adding_up_past_the_bound_raise() -> None:
    with pytest.raises(UpstreamBadResponseError):
        decode_all([b"data: 1234\n" * 10 + b"\n"], max_event_bytes=30)


# -- encoding ---------------------------------------------------------------------------------


def test_encode_event() -> None:
    assert encode_event("ping", b'{"type":"ping"}') == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert encode_event(None, b"[DONE]") == b"data: [DONE]\n\n"
    assert encode_event(None, b"a\nb\r\nc\r") == b"data: a\ndata: b\ndata: c\ndata: \n\n"


# -- properties -------------------------------------------------------------------------------

names = st.none() | st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20)
payloads = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b""))
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=25)


@SETTINGS
@given(
    events=st.lists(st.tuples(names, payloads, st.booleans()), max_size=8),
    eol=st.sampled_from(LINE_ENDINGS),
    cut=cuts,
)
def test_any_split_and_line_ending_give_the_encoded_events(
    events: list[tuple[str | None, bytes, bool]], eol: bytes, cut: list[int]
) -> None:
    raw = b"".join(
        (b": keep-alive\n" if comment else b"") + encode_event(name, data)
        for name, data, comment in events
    )
    decoded = decode_all(split_at(with_eol(raw, eol), cut))
    assert decoded == [SSEEvent(name, data) for name, data, _ in events]


@SETTINGS
@given(eol=st.sampled_from(LINE_ENDINGS), cut=cuts)
def test_any_split_of_a_real_stream_decodes_the_same(eol: bytes, cut: list[int]) -> None:
    whole = decode_all([ANTHROPIC_TOOL_TURN])
    assert len(whole) == 22 and whole[0].event == "message_start"
    assert decode_all(split_at(with_eol(ANTHROPIC_TOOL_TURN, eol), cut)) == whole


@SETTINGS
@given(data=st.binary(max_size=300), cut=cuts)
def test_arbitrary_bytes_decode_the_same_however_split(data: bytes, cut: list[int]) -> None:
    whole = decode_all([data])
    assert decode_all(split_at(data, cut)) == whole
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == whole


@pytest.mark.parametrize(
    ("buf", "start", "cut"),
    [
        (b"data: 1\n\ndata: 2\n\n", 0, 18),
        (b"data: 1\n\ndata: 2", 0, 9),  # the second event is not finished
        (b"data: 1\r\n\r\ndata: 2\n", 0, 11),
        (b"data: 1\n\ndata: 2\r\n\r\n", 0, 20),
        (b"data: 1\ndata: 2\n", 0, -1),  # one line break: an event still open
        (b"data: 1\n\ndata: 2\n\n", 10, 18),
        (b"data: 1\n\ndata: 2", 10, -1),  # nothing finished after ``start``
    ],
)
def test_end_of_last_event(buf: bytes, start: int, cut: int) -> None:
    assert end_of_last_event(buf, start) == cut
    assert end_of_last_event(bytearray(buf), start) == cut


event_shaped = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda name, data, eol: (
            (b"event: " + name + eol if name is not None else b"") + b"data: " + data + eol + eol
        ),
        st.none() | st.binary(max_size=12),
        st.binary(max_size=40),
        st.sampled_from(LINE_ENDINGS),
    ),
)


@SETTINGS
@given(chunk=event_shaped, after=st.binary(max_size=40))
def test_a_read_holding_one_whole_event_decodes_as_in_any_other_read(
    chunk: bytes, after: bytes
) -> None:
    # Once the stream runs, a read of exactly one event takes a shortcut past the line loop;
    # it must give what the same bytes give inside a larger read, and leave the same state.
    first = b"data: warm-up\n\n"
    alone = SSEDecoder()
    got = alone.feed(first) + alone.feed(chunk) + alone.feed(after) + alone.close()
    joined = SSEDecoder()
    assert got == joined.feed(first + chunk + after) + joined.close()
