"""HTTP/2 attacks against a live Junction over a real socket (hardening.md §2 C1-C11), with raw
frames built on hpack and hyperframe (h2spec cannot be installed here). Each case asserts the
frame Junction answers with, whether the connection closed, that the mock provider received
nothing it should not have, and (through the fixtures) that no connection, exchange or task
is left once Junction drains. Every case runs against both HTTP/2 codecs (``server.http2``:
native and the reference over h2)."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from h2.errors import ErrorCodes
from hpack.hpack import encode_integer
from hyperframe.frame import DataFrame

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running

from .h2raw import GET_MODELS, RawH2, post_messages

MSG = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()


@pytest.fixture(params=["native", "h2"])
def junction_factory(
    junction_factory: Callable[..., Running], request: pytest.FixtureRequest
) -> Callable[..., Running]:
    """The harness's factory with ``server.http2`` set to the codec under test."""

    def make(**sections: Any) -> Running:
        server = {"http2": request.param, **sections.pop("server", {})}
        return junction_factory(server=server, **sections)

    return make


@pytest.fixture
def run(junction_factory: Callable[..., Running]) -> Running:
    return junction_factory()


def connections(run: Running) -> int:
    return run.lt.call(lambda: len(run.worker.conns.conns))  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def assert_closed_with(c: RawH2, run: Running, code: int) -> None:
    goaway = c.goaway()
    assert goaway is not None, c.frames[-5:]
    assert goaway.error_code == code, goaway
    assert c.wait_closed(), "the connection must be closed after the GOAWAY"
    assert wait_for(lambda: connections(run) == 0)
    c.close()


def good_request_works(run: Running, mock: MockProvider) -> None:
    """Other connections are unaffected: a fresh one still gets an answer."""
    before = mock.recorder.requests_total
    c = RawH2(run.port)
    c.send(c.headers(1, post_messages([(b"content-length", b"%d" % len(MSG))]), end_stream=False))
    c.send(c.data(1, MSG, end_stream=True))
    c.read_until(lambda _: c.ended(1))
    assert c.statuses.get(1) == 200, c.frames
    c.close()
    assert mock.recorder.requests_total == before + 1


# ---- C1 rapid reset and C2 MadeYouReset -------------------------------------------------------


def test_rapid_reset_gets_enhance_your_calm(run: Running, mock: MockProvider) -> None:
    c = RawH2(run.port)
    burst = b""
    for i in range(400):
        sid = 2 * i + 1
        # Body never completes: a request is forwarded only once its body is in.
        burst += c.headers(sid, post_messages(), end_stream=False) + c.rst(sid)
    c.send(burst)
    assert_closed_with(c, run, ErrorCodes.ENHANCE_YOUR_CALM)
    assert mock.recorder.requests_total == 0
    good_request_works(run, mock)


def test_rapid_reset_of_complete_requests_is_cut_off(run: Running, mock: MockProvider) -> None:
    """Whole requests reset at once: the budget trips and almost nothing reaches upstream
    (a request read before its reset may be dispatched, then is cancelled)."""
    c = RawH2(run.port)
    burst = b""
    for i in range(400):
        sid = 2 * i + 1
        burst += c.headers(sid, post_messages(), end_stream=False)
        burst += c.data(sid, MSG, end_stream=True) + c.rst(sid)
    c.send(burst)
    assert_closed_with(c, run, ErrorCodes.ENHANCE_YOUR_CALM)
    assert mock.recorder.requests_total <= 101
    assert wait_for(lambda: run.upstream_stats()["exchanges_active"] == 0)


@pytest.mark.parametrize(
    "malformed",
    [
        [*GET_MODELS, (b"Bad-Case", b"x")],  # the server resets each such stream itself
        [*GET_MODELS, (b"x-a", b"a\r\nx-injected: 1")],
    ],
    ids=["uppercase", "crlf"],
)
def test_made_you_reset_counts_the_resets_junction_sends(
    run: Running, mock: MockProvider, malformed: list[tuple[bytes, bytes]]
) -> None:
    c = RawH2(run.port)
    c.send(b"".join(c.headers(2 * i + 1, malformed) for i in range(300)))
    assert_closed_with(c, run, ErrorCodes.ENHANCE_YOUR_CALM)
    resets = c.resets()
    assert resets and set(resets.values()) == {ErrorCodes.PROTOCOL_ERROR}
    assert len(resets) <= 101
    assert mock.recorder.requests_total == 0


def test_window_update_zero_closes_the_connection(run: Running, mock: MockProvider) -> None:
    """RFC 9113 allows a stream error here; h2 makes it a connection error, which is stricter
    and leaves no reset to abuse (MadeYouReset's favourite trigger)."""
    c = RawH2(run.port)
    c.send(c.headers(1, post_messages(), end_stream=False) + c.window_update(1, 0))
    assert_closed_with(c, run, ErrorCodes.PROTOCOL_ERROR)
    assert mock.recorder.requests_total == 0


# ---- C3 CONTINUATION flood and C4 HPACK bomb --------------------------------------------------


def test_continuation_flood_closes_with_memory_flat(run: Running, mock: MockProvider) -> None:
    c = RawH2(run.port)
    chunk = c.continuation(1, b"\x00" * 16000)
    tracemalloc.start()
    try:
        c.send(c.raw_headers(1, c.encoder.encode(GET_MODELS)[:1], ["END_STREAM"]))
        sent = c.flood(chunk * 4, 500)  # 32 MB if anything kept it
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent < 500, "the server kept reading the flood"
    assert peak < 2_000_000, peak
    assert c.goaway() is not None
    assert c.wait_closed()
    assert mock.recorder.requests_total == 0
    good_request_works(run, mock)


def test_hpack_bomb_is_a_connection_error(run: Running, mock: MockProvider) -> None:
    c = RawH2(run.port)
    name, value = b"x-bomb", b"a" * 4000
    literal = bytes([0x40]) + bytes(encode_integer(len(name), 7)) + name
    literal += bytes(encode_integer(len(value), 7)) + value
    fields = c.encoder.encode(GET_MODELS)
    block = fields + literal + b"\xbe" * 12000  # index 62, the entry just added: 48 MB decoded
    tracemalloc.start()
    try:
        c.send(c.raw_headers(1, block[:16000], ["END_STREAM"]))
        c.send(c.continuation(1, block[16000:], end_headers=True))
        goaway = c.goaway()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert goaway is not None
    assert goaway.error_code in (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.COMPRESSION_ERROR)
    assert peak < 2_000_000, peak
    assert c.wait_closed()
    assert mock.recorder.requests_total == 0


# ---- C5 control-frame floods ------------------------------------------------------------------

FLOODS = {
    "PING": lambda c: c.ping(),
    "SETTINGS": lambda c: c.settings({}),
    "SETTINGS with many entries": lambda c: c.settings({0x4000 + i: 1 for i in range(200)}),
    "PRIORITY": lambda c: c.priority(7),
    "WINDOW_UPDATE on 0": lambda c: c.window_update(0, 1),
    "WINDOW_UPDATE on a stream": lambda c: c.window_update(1, 1),
    "empty DATA": lambda c: c.data(1, b""),
}


@pytest.mark.parametrize("frame", FLOODS.values(), ids=FLOODS.keys())
def test_control_frame_flood_gets_enhance_your_calm(
    run: Running, mock: MockProvider, frame: Callable[[RawH2], bytes]
) -> None:
    c = RawH2(run.port)
    c.send(c.headers(1, post_messages(), end_stream=False))
    one = frame(c)
    assert c.flood(one * 500, 20) < 20
    assert_closed_with(c, run, ErrorCodes.ENHANCE_YOUR_CALM)
    assert mock.recorder.requests_total == 0


# ---- C6 concurrency, C7/C8 malformed requests, C9 content-length ------------------------------


def test_streams_beyond_the_limit_are_refused(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(limits={"h2_max_concurrent_streams": 5})
    c = RawH2(run.port)
    c.send(b"".join(c.headers(2 * i + 1, post_messages(), end_stream=False) for i in range(8)))
    c.read_until(lambda _: len(c.resets()) >= 3)
    assert c.resets() == {11: 7, 13: 7, 15: 7}  # REFUSED_STREAM for the excess only
    assert c.goaway(timeout=0.2) is None and not c.closed  # the connection lives on
    c.send(c.rst(1))  # one slot frees: a new stream is accepted and answered
    c.send(c.headers(17, GET_MODELS))
    c.read_until(lambda _: c.ended(17))
    assert c.statuses[17] == 200
    assert mock.recorder.requests_total == 0
    c.close()


MALFORMED = {
    "missing :path": [h for h in GET_MODELS if h[0] != b":path"],
    "duplicate :path": [*GET_MODELS, (b":path", b"/admin")],
    "pseudo after regular": [*GET_MODELS[:3], (b"accept", b"*/*"), GET_MODELS[3]],
    "unknown pseudo": [*GET_MODELS, (b":foo", b"x")],
    "uppercase name": [*GET_MODELS, (b"X-Api-Key", b"k")],
    "connection header": [*GET_MODELS, (b"connection", b"keep-alive")],
    "transfer-encoding": [*GET_MODELS, (b"transfer-encoding", b"chunked")],
    "te gzip": [*GET_MODELS, (b"te", b"gzip")],
    "authority host mismatch": [*GET_MODELS, (b"host", b"evil.example")],
    "LF in value": [*GET_MODELS, (b"x-a", b"a\nx-injected: 1")],
    "NUL in value": [*GET_MODELS, (b"x-a", b"a\x00b")],
    "underscore name": [*GET_MODELS, (b"x_api_key", b"k")],
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_is_reset_and_never_forwarded(
    run: Running, mock: MockProvider, headers: list[tuple[bytes, bytes]]
) -> None:
    c = RawH2(run.port)
    post = [(b":method", b"POST") if k == b":method" else (k, v) for k, v in headers]
    post = [
        (k, b"/v1/messages") if k == b":path" and v == b"/v1/models" else (k, v) for k, v in post
    ]
    c.send(c.headers(1, post, end_stream=False) + c.data(1, MSG, end_stream=True))
    c.read_until(lambda _: 1 in c.resets() or c.closed)
    assert c.resets().get(1) == ErrorCodes.PROTOCOL_ERROR
    assert 1 not in c.statuses
    c.send(c.headers(3, GET_MODELS))  # the connection lives on
    c.read_until(lambda _: c.ended(3))
    assert c.statuses.get(3) == 200
    assert mock.recorder.requests_total == 0
    c.close()


@pytest.mark.parametrize(
    ("length", "body"), [(b"3", MSG), (b"%d" % (len(MSG) + 10), MSG)], ids=["more", "less"]
)
def test_content_length_mismatch_is_never_forwarded(
    run: Running, mock: MockProvider, length: bytes, body: bytes
) -> None:
    c = RawH2(run.port)
    c.send(
        c.headers(1, post_messages([(b"content-length", length)]), end_stream=False)
        + c.data(1, body, end_stream=True)
    )
    assert_closed_with(c, run, ErrorCodes.PROTOCOL_ERROR)
    assert mock.recorder.requests_total == 0


def test_bad_preface_is_a_protocol_error(run: Running, mock: MockProvider) -> None:
    import socket

    s = socket.create_connection(("127.0.0.1", run.port), timeout=3)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 20)
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    s.close()
    # Either a GOAWAY(PROTOCOL_ERROR) frame or the HTTP/1.1 reply to a bad request line.
    assert out.startswith(b"HTTP/1.1 ") or b"\x07\x00\x00\x00\x00\x00" in out[:30], out
    assert mock.recorder.requests_total == 0


# ---- C10 zero windows -------------------------------------------------------------------------


def test_zero_window_streams_hold_bounded_memory_and_clean_up(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    """A client that opens streaming requests and never grants any window: Junction holds a
    bounded amount per stream, pauses the upstreams, and frees them all when the client goes."""
    run = junction_factory(limits={"write_buffer_high_bytes": 4096})
    c = RawH2(run.port, settings={0x4: 0})  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    body = json.dumps({**json.loads(MSG), "stream": True, "max_tokens": 4000}).encode()
    n = 8
    for i in range(n):
        sid = 2 * i + 1
        extra = [(b"content-length", b"%d" % len(body)), (b"x-mock-output-tokens", b"4000")]
        c.send(c.headers(sid, post_messages(extra), end_stream=False) + c.data(sid, body, True))
    c.read_until(lambda _: len(c.statuses) == n, timeout=5)
    assert set(c.statuses.values()) == {200}
    data = [f for f in c.frames if isinstance(f, DataFrame) and f.data]
    assert data == [], "no DATA may be sent into a zero window"
    # Every upstream exchange is still open, paused: the answers did not fit the buffers.
    time.sleep(0.3)
    assert run.upstream_stats()["exchanges_active"] == n, run.upstream_stats()
    c.close()  # the client leaves: every upstream exchange is cancelled
    assert wait_for(lambda: run.upstream_stats()["exchanges_active"] == 0)
    assert wait_for(lambda: connections(run) == 0)


# ---- sizes on HTTP/2 (B1, B3, B10) ------------------------------------------------------------


def test_oversized_header_list_is_refused(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(limits={"max_header_bytes": 4096})
    c = RawH2(run.port)
    big = [(b"x-big-%d" % i, b"v" * 1000) for i in range(8)]  # ~8 KB decoded, in one frame
    c.send(c.headers(1, post_messages(big), end_stream=False) + c.data(1, MSG, end_stream=True))
    # The block is counted as its frames arrive (before HPACK decoding): a connection error,
    # stricter than a 431, so a CONTINUATION flood and a big block cost the same.
    assert_closed_with(c, run, ErrorCodes.ENHANCE_YOUR_CALM)
    assert 1 not in c.statuses
    assert mock.recorder.requests_total == 0


def test_too_many_headers_are_refused(run: Running, mock: MockProvider) -> None:
    c = RawH2(run.port)
    many = [(b"x-h%d" % i, b"v") for i in range(150)]  # over the 100-header default
    c.send(c.headers(1, post_messages(many), end_stream=False) + c.data(1, MSG, end_stream=True))
    c.read_until(lambda _: 1 in c.statuses or 1 in c.resets() or c.closed)
    assert c.statuses.get(1) == 431
    assert c.goaway(0.2) is None and not c.closed
    assert mock.recorder.requests_total == 0
    c.close()


def test_body_over_the_limit_is_413(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(limits={"max_body_bytes": 10_000})
    c = RawH2(run.port)
    c.send(c.headers(1, post_messages(), end_stream=False))
    for _ in range(4):  # 16 KB, no content-length: refused once the running total passes
        c.send(c.data(1, b" " * 4000))
    c.read_until(lambda _: 1 in c.statuses or 1 in c.resets() or c.closed)
    assert c.statuses.get(1) == 413, c.frames
    assert c.resets().get(1) == ErrorCodes.NO_ERROR  # the rest of the upload is refused
    c.send(c.headers(3, GET_MODELS))  # the connection lives on
    c.read_until(lambda _: c.ended(3))
    assert c.statuses.get(3) == 200
    assert mock.recorder.requests_total == 0
    c.close()


def test_compressed_body_is_415(run: Running, mock: MockProvider) -> None:
    c = RawH2(run.port)
    extra = [(b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(MSG))]
    c.send(c.headers(1, post_messages(extra), end_stream=False) + c.data(1, MSG, True))
    c.read_until(lambda _: c.ended(1) or 1 in c.resets())
    assert c.statuses.get(1) == 415
    assert mock.recorder.requests_total == 0
    c.close()


def test_slow_body_on_a_stream_times_out(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(limits={"request_body_timeout_s": 0.3})
    c = RawH2(run.port)
    try:
        c.send(c.headers(1, post_messages(), end_stream=False) + c.data(1, b"{"))
        c.read_until(lambda _: 1 in c.statuses or 1 in c.resets() or c.closed, timeout=2)
        assert c.statuses.get(1) == 408
        assert mock.recorder.requests_total == 0
        # The connection itself goes on: another stream is answered.
        c.send(c.headers(3, post_messages(), end_stream=False) + c.data(3, MSG, True))
        c.read_until(lambda _: c.ended(3), timeout=5)
        assert c.statuses.get(3) == 200
    finally:
        c.close()  # else the held stream keeps the fixture's drain waiting


def test_the_configured_codec_serves(run: Running, request: pytest.FixtureRequest) -> None:
    expected = {"native": "NativeH2ServerCodec", "h2": "H2ServerCodec"}
    impl = request.node.callspec.params["junction_factory"]

    def codecs() -> list[str]:
        conns = run.worker.conns.conns
        return [type(conn.codec).__name__ for conn in conns if conn.codec is not None]

    c = RawH2(run.port)
    try:
        c.send(c.headers(1, GET_MODELS))
        c.read_until(lambda _: c.ended(1))
        assert c.statuses.get(1) == 200
        assert run.lt.call(codecs) == [expected[impl]]
    finally:
        c.close()
