"""The HTTP/2 server codecs (native and h2) against malformed requests and floods
(hardening.md §2 C1-C11)."""

from __future__ import annotations

import tracemalloc

import pytest
from h2.errors import ErrorCodes
from hpack.hpack import encode_integer
from hyperframe.frame import GoAwayFrame, RstStreamFrame

from proxy.errors import DownstreamProtocolError
from proxy.events import RequestData, RequestHeaders, StreamReset
from proxy.protocol.http2 import H2ServerCodec
from proxy.protocol.limits import CodecLimits

from .test_http2_support import GET, Codec, implementation, of_type, parse_frames, post, raw_codec

__all__ = ["implementation"]
pytestmark = pytest.mark.usefixtures("implementation")

M, S, P, A = b":method", b":scheme", b":path", b":authority"
BASE = [(M, b"GET"), (S, b"https"), (P, b"/v1/models"), (A, b"api.example.com")]


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [h for h in BASE if h[0] != name]


def goaway_of(codec: Codec) -> GoAwayFrame:
    frames = parse_frames(codec.data_to_send())
    assert isinstance(frames[-1], GoAwayFrame), "the last frame must be the GOAWAY"
    return frames[-1]


MALFORMED = {
    "missing :method": without(M),
    "missing :path": without(P),
    "missing :scheme": without(S),
    "duplicate :path": [*BASE, (P, b"/admin")],
    "duplicate :method": [(M, b"GET"), *BASE],
    "pseudo after regular": [*without(A), (b"accept", b"*/*"), (A, b"api.example.com")],
    "unknown pseudo": [*BASE, (b":foo", b"bar")],
    "response pseudo": [*BASE, (b":status", b"200")],
    "uppercase name": [*BASE, (b"X-Api-Key", b"k")],
    "underscore name": [*BASE, (b"x_api_key", b"k")],
    "space in name": [*BASE, (b"x api", b"k")],
    "colon in name": [*BASE, (b"x:api", b"k")],
    "empty name": [*BASE, (b"", b"k")],
    "connection": [*BASE, (b"connection", b"keep-alive")],
    "keep-alive": [*BASE, (b"keep-alive", b"5")],
    "proxy-connection": [*BASE, (b"proxy-connection", b"close")],
    "transfer-encoding": [*BASE, (b"transfer-encoding", b"chunked")],
    "upgrade": [*BASE, (b"upgrade", b"h2c")],
    "te gzip": [*BASE, (b"te", b"gzip")],
    "CR in value": [*BASE, (b"x-a", b"a\rb")],
    "LF in value": [*BASE, (b"x-a", b"a\nx-injected: 1")],
    "NUL in value": [*BASE, (b"x-a", b"a\x00b")],
    "control char in value": [*BASE, (b"x-a", b"a\x01b")],
    "leading space": [*BASE, (b"x-a", b" a")],
    "trailing tab": [*BASE, (b"x-a", b"a\t")],
    "empty path": [*without(P), (P, b"")],
    "relative path": [*without(P), (P, b"v1/models")],
    "space in path": [*without(P), (P, b"/v1/models HTTP/1.1")],
    "non-ascii path": [*without(P), (P, "/v1/é".encode())],
    "asterisk path on GET": [*without(P), (P, b"*")],
    "userinfo in authority": [*without(A), (A, b"user@api.example.com")],
    "space in authority": [*without(A), (A, b"api example.com")],
    "authority host mismatch": [*BASE, (b"host", b"evil.example.com")],
    "duplicate host": [*without(A), (b"host", b"a.example.com"), (b"host", b"a.example.com")],
    "bad host": [*without(A), (b"host", b"a b")],
    "bad scheme": [*without(S), (S, b"ftp")],
    "bad method": [(M, b"GE T"), *without(M)],
    "CONNECT": [(M, b"CONNECT"), (A, b"api.example.com:443")],
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_resets_only_its_stream(headers: list) -> None:
    codec, raw = raw_codec()
    assert codec.receive(raw.headers(1, headers), 0.0) == []
    resets = of_type(parse_frames(codec.data_to_send()), RstStreamFrame)
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, ErrorCodes.PROTOCOL_ERROR)]
    events = codec.receive(raw.headers(3, GET), 0.0)  # the connection lives on
    assert [type(e) for e in events] == [RequestHeaders] and codec.keep_alive


@pytest.mark.parametrize(
    "headers",
    [
        [*BASE, (b"te", b"trailers")],
        [*without(A), (b"host", b"[::1]:8080")],
        [*BASE, (b"host", b"api.example.com")],
        [(M, b"OPTIONS"), (S, b"http"), (P, b"*"), (A, b"x")],
        [(M, b"GET"), (S, b"https"), (P, b"/")],  # no authority at all: allowed in HTTP/2
        [*BASE, (b"x-empty", b""), (b"x-tab", b"a\tb"), (b"x-utf8", "é".encode())],
    ],
)
def test_unusual_but_valid_requests_pass(headers: list) -> None:
    codec, raw = raw_codec()
    assert [type(e) for e in codec.receive(raw.headers(1, headers), 0.0)] == [RequestHeaders]


def test_malformed_trailers_reset_an_announced_stream() -> None:
    codec, raw = raw_codec()
    codec.receive(raw.headers(1, post(), end_stream=False) + raw.data(1, b"{}"), 0.0)
    events = codec.receive(raw.headers(1, [(b":path", b"/x")], end_stream=True), 0.0)
    assert events == [StreamReset(1, ErrorCodes.PROTOCOL_ERROR)]
    assert codec.idle and codec.keep_alive


@pytest.mark.parametrize(
    "frames",
    [
        # more DATA than content-length announced
        lambda raw: (
            raw.headers(1, post(extra=[(b"content-length", b"3")]), end_stream=False)
            + raw.data(1, b"abcd", end_stream=True)
        ),
        # END_STREAM before content-length was reached
        lambda raw: (
            raw.headers(1, post(extra=[(b"content-length", b"10")]), end_stream=False)
            + raw.data(1, b"abcd", end_stream=True)
        ),
        lambda raw: raw.headers(1, post(extra=[(b"content-length", b"1x")])),
        lambda raw: raw.headers(
            1, post(extra=[(b"content-length", b"1"), (b"content-length", b"2")])
        ),
    ],
    ids=["too much data", "too little data", "not a number", "conflicting values"],
)
def test_content_length_violations_close_the_connection(frames) -> None:
    # h2 checks Content-Length before any of it reaches us, as a connection error.
    codec, raw = raw_codec()
    with pytest.raises(DownstreamProtocolError):
        events = codec.receive(frames(raw), 0.0)
        # Never a complete body for the proxy, even had h2 reported part of it.
        assert not any(isinstance(e, RequestData) and e.end_stream for e in events)
    assert goaway_of(codec).error_code == ErrorCodes.PROTOCOL_ERROR
    assert not codec.keep_alive


def test_rapid_reset_gets_enhance_your_calm() -> None:
    codec, raw = raw_codec()
    events = []
    with pytest.raises(DownstreamProtocolError):
        for i in range(1000):
            sid = 2 * i + 1
            events += codec.receive(raw.headers(sid, GET) + raw.rst(sid), i * 0.001)
    assert sid == 201  # the 101st stream: > 100 opened and all of them premature
    assert events == []  # opened and reset within one read: never shown to the proxy
    goaway = goaway_of(codec)
    assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway.last_stream_id == sid


def test_rapid_reset_across_reads_cancels_announced_streams() -> None:
    codec, raw = raw_codec()
    with pytest.raises(DownstreamProtocolError):
        for i in range(1000):
            sid = 2 * i + 1
            opened = codec.receive(raw.headers(sid, GET), i * 0.001)
            assert [e.stream_id for e in opened] == [sid]
            assert codec.receive(raw.rst(sid), i * 0.001) == [StreamReset(sid, 8)]
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_made_you_reset_with_malformed_requests() -> None:
    codec, raw = raw_codec(CodecLimits(h2_max_glitches=10_000))
    with pytest.raises(DownstreamProtocolError):
        for i in range(1000):
            codec.receive(raw.headers(2 * i + 1, [*BASE, (b"Bad", b"x")]), 0.0)
    assert i == 100
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_made_you_reset_with_data_after_end_stream() -> None:
    # h2 resets such streams itself (STREAM_CLOSED); those resets count as the client's.
    codec, raw = raw_codec(CodecLimits(h2_max_glitches=10_000))
    with pytest.raises(DownstreamProtocolError):
        for i in range(1000):
            sid = 2 * i + 1
            codec.receive(raw.headers(sid, GET), 0.0)
            codec.receive(raw.data(sid, b"x"), 0.0)
    assert sid == 201


def test_glitch_budget() -> None:
    codec, raw = raw_codec(CodecLimits(h2_max_glitches=5, h2_premature_reset_min_streams=1000))
    with pytest.raises(DownstreamProtocolError):
        for i in range(10):
            codec.receive(raw.headers(2 * i + 1, [*BASE, (b"Bad", b"x")]), 0.0)
    assert i == 5


def test_refused_streams_count_as_premature_resets() -> None:
    codec, raw = raw_codec(CodecLimits(h2_max_concurrent_streams=1))
    codec.receive(raw.headers(1, GET), 0.0)  # stays open: every later stream is refused
    with pytest.raises(DownstreamProtocolError):
        for i in range(1, 1000):
            codec.receive(raw.headers(2 * i + 1, GET), 0.0)
    assert i == 100


def test_resets_that_are_not_premature_are_fine() -> None:
    codec, raw = raw_codec()
    now = 0.0
    for i in range(300):  # the proxy gives up on streams: never counted
        sid = 2 * i + 1
        codec.receive(raw.headers(sid, GET), now)
        codec.reset_stream(sid)
    for i in range(300, 600):  # the client cancels streams after they lived a while
        sid = 2 * i + 1
        codec.receive(raw.headers(sid, post(), end_stream=False), now)
        now += 1.5
        assert codec.receive(raw.rst(sid), now) == [StreamReset(sid, 8)]
    for i in range(600, 900):  # normal exchanges mixed with a few premature cancels
        sid = 2 * i + 1
        if i % 3:
            codec.receive(raw.headers(sid, GET), now)
            codec.send_headers(sid, 204, [], True)
        else:
            codec.receive(raw.headers(sid, GET) + raw.rst(sid), now)
    assert codec.keep_alive and codec.idle


@pytest.mark.parametrize(
    ("limit", "error_code"),
    [
        (10, ErrorCodes.ENHANCE_YOUR_CALM),
        # h2 itself allows a HEADERS frame and 63 CONTINUATION frames; it trips first.
        (64, ErrorCodes.PROTOCOL_ERROR),
    ],
)
def test_continuation_flood_by_frame_count(
    limit: int, error_code: int, implementation: str
) -> None:
    if implementation == "native":
        error_code = ErrorCodes.ENHANCE_YOUR_CALM  # only the guard's limit applies
    codec, raw = raw_codec(CodecLimits(h2_max_continuation_frames=limit))
    block = raw.block(GET)
    codec.receive(raw.raw_headers(1, block[:1], ["END_STREAM"]), 0.0)
    sent = 0
    with pytest.raises(DownstreamProtocolError):
        for _ in range(1000):
            sent += 1
            codec.receive(raw.continuation(1, b""), 0.0)
    assert sent == (limit + 1 if implementation == "native" else min(limit + 1, 64))
    assert goaway_of(codec).error_code == error_code


def test_continuation_flood_by_bytes_keeps_memory_flat() -> None:
    limits = CodecLimits(h2_max_continuation_frames=100_000)
    codec, raw = raw_codec(limits)
    chunk = raw.continuation(1, b"\x00" * 16000)
    tracemalloc.start()
    try:
        codec.receive(raw.raw_headers(1, b"\x82", ["END_STREAM"]), 0.0)
        with pytest.raises(DownstreamProtocolError):
            for _ in range(10_000):  # 160 MB if anything kept it
                codec.receive(chunk, 0.0)
                assert codec.buffered_header_block_bytes <= limits.max_header_bytes + 512
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_header_block_in_continuations_within_limits_is_fine() -> None:
    codec, raw = raw_codec()
    block = raw.block([*GET, (b"x-big", b"v" * 3000)])
    parts = [block[i : i + 500] for i in range(0, len(block), 500)]
    data = raw.raw_headers(1, parts[0], ["END_STREAM"])
    for j, part in enumerate(parts[1:], 1):
        data += raw.continuation(1, part, end_headers=j == len(parts) - 1)
    events = codec.receive(data, 0.0)
    assert events[0].headers == [(b"x-big", b"v" * 3000)]


def test_oversized_frame_is_refused_at_its_header() -> None:
    codec, _ = raw_codec()
    header = (1 << 20).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
    with pytest.raises(DownstreamProtocolError):
        codec.receive(header, 0.0)  # no payload sent yet: nothing was buffered
    assert goaway_of(codec).error_code == ErrorCodes.FRAME_SIZE_ERROR


def test_hpack_bomb_is_a_connection_error_without_memory_growth() -> None:
    codec, raw = raw_codec()
    name, value = b"x-bomb", b"a" * 4000
    literal = bytes([0x40]) + bytes(encode_integer(len(name), 7)) + name
    literal += bytes(encode_integer(len(value), 7)) + value
    block = literal + b"\xbe" * 12000  # index 62, the entry just added: ~48 MB decoded
    tracemalloc.start()
    try:
        with pytest.raises(DownstreamProtocolError):
            codec.receive(raw.raw_headers(1, block, ["END_STREAM", "END_HEADERS"]), 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


FLOODS = {
    "PING": lambda raw: raw.ping(),
    "SETTINGS": lambda raw: raw.settings({}),
    "PRIORITY": lambda raw: raw.priority(7),
    "WINDOW_UPDATE on 0": lambda raw: raw.window_update(0, 1),
    "empty DATA": lambda raw: raw.data(1, b""),
    "unknown type": lambda raw: b"\x00\x00\x01\x20\x00\x00\x00\x00\x00x",
}


@pytest.mark.parametrize("frame", FLOODS.values(), ids=FLOODS.keys())
def test_control_frame_flood(frame) -> None:
    codec, raw = raw_codec()
    codec.receive(raw.headers(1, post(), end_stream=False), 0.0)
    one = frame(raw)
    codec.receive(one * 900, 0.0)  # within the budget
    codec.receive(one * 140, 0.05)  # 100 left + 50 refilled
    with pytest.raises(DownstreamProtocolError):
        codec.receive(one * 20, 0.05)
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_control_frames_at_a_steady_allowed_rate() -> None:
    codec, raw = raw_codec()
    pings = raw.ping() * 400
    for i in range(20):  # 800 a second for 10 seconds
        codec.receive(pings, i * 0.5)
    assert codec.keep_alive


def test_stream_window_update_flood() -> None:
    codec, raw = raw_codec()
    codec.receive(raw.headers(1, post(), end_stream=False), 0.0)
    with pytest.raises(DownstreamProtocolError):
        codec.receive(raw.window_update(1, 1) * 1000, 0.0)
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_settings_with_too_many_entries() -> None:
    codec, raw = raw_codec()
    with pytest.raises(DownstreamProtocolError):
        codec.receive(raw.settings({0x100 + i: 1 for i in range(33)}), 0.0)
    assert goaway_of(codec).error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_unknown_settings_do_not_accumulate() -> None:
    codec, raw = raw_codec()
    for round_ in range(50):
        codec.receive(raw.settings({0x100 + 32 * round_ + i: 1 for i in range(32)}), 0.0)
    if isinstance(codec, H2ServerCodec):
        # White-box: h2 would otherwise keep a deque for each of the 1600 ids.
        assert len(codec._conn.remote_settings) < 16
    assert codec.keep_alive


def test_client_goaway_then_garbage_fails_cleanly() -> None:
    codec, raw = raw_codec()
    codec.receive(raw.goaway(), 0.0)
    with pytest.raises(DownstreamProtocolError):
        codec.receive(raw.headers(1, GET), 0.0)
