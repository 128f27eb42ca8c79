"""PassthroughCheck: whole events only, terminal events required, whole answers validated."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from proxy.errors import UpstreamBadResponseError, UpstreamError
from proxy.filters.api import Dialect
from proxy.filters.passthrough import MAX_CHECKED_BODY_BYTES, PassthroughCheck

EVENTS = [
    b'event: message_start\ndata: {"type":"message_start"}\n\n',
    b'event: content_block_delta\r\ndata: {"type":"content_block_delta","x":"a\\n\\nb"}\r\n\r\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
STREAM = b"".join(EVENTS)


def _run(check: PassthroughCheck, chunks: list[bytes]) -> bytes:
    return b"".join(check.feed(c) for c in chunks)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_chunking_forwards_the_same_whole_events(cuts: list[int]) -> None:
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=True)
    out = _run(check, _split(STREAM, cuts))
    tail, error = check.end()
    assert error is None and out + tail == STREAM


@given(st.integers(1, len(STREAM) - 1))
def test_a_cut_stream_never_forwards_half_an_event(at: int) -> None:
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=True)
    out = check.feed(STREAM[:at])
    boundaries = {0} | {len(b"".join(EVENTS[: i + 1])) for i in range(len(EVENTS))}
    assert len(out) in boundaries  # only whole events went out
    _, error = check.end()
    assert isinstance(error, UpstreamBadResponseError)


def test_a_stream_without_its_terminal_event_is_broken() -> None:
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=True)
    check.feed(b"".join(EVENTS[:2]))
    assert "message_stop" in str(check.end()[1])
    openai = PassthroughCheck(Dialect.OPENAI, stream=True)
    openai.feed(b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}\n\n')
    assert openai.end()[1] is not None
    done = PassthroughCheck(Dialect.OPENAI, stream=True)
    done.feed(b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n')
    assert done.end()[1] is None  # servers that end with a finish_reason and no [DONE]


def test_a_providers_own_error_event_ends_a_stream() -> None:
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=True)
    check.feed(EVENTS[0] + b'event: error\ndata: {"type":"error"}\n\n')
    assert check.end()[1] is None


def test_whole_answers_are_held_and_checked() -> None:
    good = orjson.dumps({"type": "message", "content": []})
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=False)
    assert check.feed(good[:5]) == b"" and check.feed(good[5:]) == b""
    assert check.end() == (good, None) and check.obj == {"type": "message", "content": []}
    for body in (b"", b"   ", b"{not json", b"[1, 2]"):
        bad = PassthroughCheck(Dialect.OPENAI, stream=False)
        bad.feed(body)
        assert isinstance(bad.end()[1], UpstreamBadResponseError), body
    err = PassthroughCheck(Dialect.ANTHROPIC, stream=False)
    err.feed(b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}')
    error = err.end()[1]
    assert isinstance(error, UpstreamError) and error.status == 529


def test_a_large_answer_passes_unchecked() -> None:
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=False)
    first = b"x" * (MAX_CHECKED_BODY_BYTES // 2)
    assert check.feed(first) == b""
    second = b"y" * (MAX_CHECKED_BODY_BYTES // 2 + 10)
    assert check.feed(second) == first + second  # over the bound: everything held goes out
    assert check.feed(b"z") == b"z" and check.end() == (b"", None)


BAD = b"event: content_block_delta\ndata: {this is not json\n\n"


@given(st.lists(st.integers(0, len(EVENTS[0] + BAD + EVENTS[2])), max_size=8))
def test_an_event_that_is_not_json_stops_the_stream_before_it(cuts: list[int]) -> None:
    check = PassthroughCheck(Dialect.ANTHROPIC, stream=True)
    out = _run(check, _split(EVENTS[0] + BAD + EVENTS[2], cuts))
    assert out == EVENTS[0]  # the good event before it, whole; nothing from it on
    assert isinstance(check.broken, UpstreamBadResponseError)


def test_event_data_forms_that_are_fine() -> None:
    fine = [
        b"data: [DONE]\n\n",
        b": a comment, no data\n\n",
        b"event: ping\n\n",
        b'data: {"a":\ndata: 1}\n\n',  # one JSON value over two data lines
        b'data:{"no":"space"}\r\n\r\n',
        b'id: 7\ndata: {"x": 1}\nretry: 10\n\n',
        b'data: {"text": "data: not a line start"}\n\n',
    ]
    check = PassthroughCheck(Dialect.OPENAI, stream=True)
    stream = b"".join(fine)
    assert check.feed(stream) == stream
    assert check.broken is None


def test_event_data_forms_that_are_broken() -> None:
    for bad in (
        b"data: {}\ndata: {}\n\n",  # two JSON values joined: not one
        b"data: hello\n\n",
        b'event: x\ndata: {"cut":\n\n',
        b"data: [DONE] \ndata: more\n\n",
    ):
        check = PassthroughCheck(Dialect.OPENAI, stream=True)
        assert check.feed(bad) == b""
        assert check.broken is not None, bad
