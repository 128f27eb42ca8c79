"""Sans-I/O checks of the upstream wire codecs (no sockets): whole input, byte by byte and
split anywhere must give the same events, and both HTTP/1.1 codecs must agree."""

from __future__ import annotations

import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, SettingsFrame

from proxy.errors import UpstreamProtocolError
from proxy.headers import Headers
from proxy.upstream.h2_frames import GoawaySplitter, request_headers
from proxy.upstream.http1_codec import Http1ClientCodec, HttptoolsCodec, request_framing
from proxy.upstream.http1_h11 import H11Codec
from tests.integration.upstream.helpers import CODECS


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_response_head(self, status: int, headers: Headers) -> None:
        self.events.append(("head", (status, headers)))

    def on_response_data(self, data: bytes) -> None:
        if self.events and self.events[-1][0] == "data":  # merge: chunking is not an event
            self.events[-1] = ("data", self.events[-1][1] + data)  # type: ignore[operator]
        else:
            self.events.append(("data", data))

    def on_response_end(self) -> None:
        self.events.append(("end", None))


def make(codec: str, sink: Sink, limit: int = 4096) -> Http1ClientCodec:
    return HttptoolsCodec(sink, limit) if codec == "httptools" else H11Codec(sink, limit)


RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]


def feed(codec: str, pieces: list[bytes]) -> list[tuple[str, object]]:
    sink = Sink()
    c = make(codec, sink)
    c.encode_head(b"GET", b"/", b"h", [], True)
    c.encode_end()
    for piece in pieces:
        c.receive(piece)
    assert c.reusable
    return sink.events


@pytest.mark.parametrize("response", RESPONSES)
def test_http1_codecs_agree_whole_and_byte_by_byte(response: bytes) -> None:
    whole = feed("httptools", [response])
    assert whole[-1] == ("end", None)
    for codec in CODECS:
        assert feed(codec, [response]) == whole
        assert feed(codec, [response[i : i + 1] for i in range(len(response))]) == whole


@pytest.mark.parametrize("codec", CODECS)
def test_http1_request_serialisation(codec: str) -> None:
    c = make(codec, Sink())
    head = c.encode_head(b"POST", b"/v1/x?y=1", b"api.example:8443", [(b"x-k", b"v")], False)
    assert head.startswith(b"POST /v1/x?y=1 HTTP/1.1\r\nhost: api.example:8443\r\n")
    assert b"x-k: v\r\n" in head and head.lower().count(b"transfer-encoding: chunked") == 1
    assert c.encode_data(b"abc") == b"3\r\nabc\r\n"
    assert c.encode_end() == b"0\r\n\r\n"


@pytest.mark.parametrize("codec", CODECS)
def test_http1_declared_length_is_enforced(codec: str) -> None:
    c = make(codec, Sink())
    c.encode_head(b"PUT", b"/", b"h", [(b"content-length", b"2")], False)
    with pytest.raises(UpstreamProtocolError):
        c.encode_data(b"abc")


ENCODE_CASES = [
    (b"POST", [(b"content-length", b"5")], [b"hello"], True),
    (b"POST", [(b"x-a", b"1"), (b"content-length", b"5"), (b"x-b", b"2")], [b"he", b"llo"], True),
    (b"PUT", [(b"content-length", b"5")], [b"he"], False),
    (b"POST", [(b"x-content-length", b"9")], [b"abc"], True),
    (b"POST", [(b"x-a", b"content-length")], [], True),
    (b"POST", [], [b"abc"], False),
    (b"GET", [], [], True),
    (b"HEAD", [(b"accept", b"*/*")], [], True),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("method", "headers", "body", "end"), ENCODE_CASES)
def test_encode_request_is_the_head_then_each_chunk(
    codec: str, method: bytes, headers: Headers, body: list[bytes], end: bool
) -> None:
    at_once = make(codec, Sink()).encode_request(method, b"/p", b"h:1", headers, body, end)
    c = make(codec, Sink())
    pieces = [c.encode_head(method, b"/p", b"h:1", headers, end and not body)]
    pieces += [c.encode_data(chunk) for chunk in body]
    if end:
        pieces.append(c.encode_end())
    assert at_once == b"".join(pieces)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("method", "path", "authority", "headers", "body"),
    [
        (b"GET", b"/", b"h", [(b"x", b"a\r\nb: c")], []),
        (b"GET", b"/", b"h", [(b"x", b"a\nb")], []),
        (b"GET", b"/", b"h", [(b"x", b"a\x00b")], []),
        (b"GET", b"/", b"h", [(b"x\r", b"a")], []),
        (b"GET", b"/a\r\nx: y", b"h", [], []),
        (b"GE\nT", b"/", b"h", [], []),
        (b"GET", b"/", b"h\r\nx: y", [], []),
        (b"POST", b"/", b"h", [(b"content-length", b"-1")], [b"abc"]),
        (b"POST", b"/", b"h", [(b"content-length", b"x")], [b"abc"]),
        (b"POST", b"/", b"h", [(b"content-length", b"2")], [b"abc"]),
        (b"POST", b"/", b"h", [(b"content-length", b"4")], [b"abc"]),
    ],
)
def test_encode_request_refuses_bad_heads_and_lengths(
    codec: str, method: bytes, path: bytes, authority: bytes, headers: Headers, body: list[bytes]
) -> None:
    with pytest.raises(UpstreamProtocolError):
        make(codec, Sink()).encode_request(method, path, authority, headers, body, True)


def test_request_framing_rules() -> None:
    assert request_framing(b"POST", [], True) == (0, b"\r\ncontent-length: 0")
    assert request_framing(b"GET", [], True) == (0, b"")
    assert request_framing(b"POST", [(b"content-length", b"7")], False) == (7, b"")
    assert request_framing(b"POST", [], False) == (-1, b"\r\ntransfer-encoding: chunked")


@pytest.mark.parametrize("codec", CODECS)
def test_http1_trailers_are_bounded(codec: str) -> None:
    c = make(codec, Sink(), limit=1024)
    c.encode_head(b"GET", b"/", b"h", [], True)
    c.encode_end()
    c.receive(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n")
    with pytest.raises(UpstreamProtocolError):
        for _ in range(100):
            c.receive(b"x-trailer: " + b"t" * 100 + b"\r\n")


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def at_chunk_boundary(sink: Sink) -> HttptoolsCodec:
    """An httptools codec that has parsed a chunked head and one whole chunk through llhttp."""
    codec = HttptoolsCodec(sink, 4096)
    codec.encode_head(b"GET", b"/", b"h", [], True)
    codec.encode_end()
    codec.receive(CHUNKED_HEAD + b"1\r\na\r\n")
    return codec


def test_whole_chunks_at_a_boundary_are_read_without_llhttp() -> None:
    sink = Sink()
    codec = at_chunk_boundary(sink)
    # Whole plain chunks are ours; from the first chunk with an extension on, llhttp's.
    rest = codec._whole_chunks(b"3\r\nbcd\r\n00A\r\n0123456789\r\n1;x=y\r\ne\r\n0\r\n\r\n")
    assert rest == b"1;x=y\r\ne\r\n0\r\n\r\n"
    assert sink.events[-1] == ("data", b"abcd0123456789")
    codec.receive(rest)  # llhttp is where it was: at the next chunk-size line
    assert sink.events[-2:] == [("data", b"abcd0123456789e"), ("end", None)]
    assert codec.reusable


@pytest.mark.parametrize(
    "pieces",
    [
        [b"3\r\nabc\r\n4\r\ndefg\r\n", b"0\r\n\r\n"],  # whole chunks, then the last
        [b"3\r\nabc\r\n4\r\nde", b"fg\r\n0\r\n\r\n"],  # a chunk cut by the read
        [b"3\r\nabc\r\n4\r\ndefg\r", b"\n0\r\n\r\n"],  # cut inside its CRLF
        [b"3\r\nabc\r\n4;ext\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n"],  # extension, trailer
        [b"3\r\nabc\r\n", b"4\r\ndefg\r\n", b"0\r\n\r\n"],  # one chunk per read
    ],
)
def test_chunked_reads_give_what_h11_gives(pieces: list[bytes]) -> None:
    results = []
    for codec in CODECS:
        sink = Sink()
        c = make(codec, sink)
        c.encode_head(b"GET", b"/", b"h", [], True)
        c.encode_end()
        c.receive(CHUNKED_HEAD + b"1\r\nx\r\n")
        for piece in pieces:
            c.receive(piece)
        assert c.reusable
        results.append(sink.events)
    assert results[0] == results[1]
    assert results[0][1:] == [("data", b"xabcdefg"), ("end", None)]


@pytest.mark.parametrize(
    "bad",
    [
        b"3\r\nabcXY",  # no CRLF after the chunk's bytes
        b"+3\r\nabc\r\n",  # int() would take these size lines; HTTP does not
        b"0x3\r\nabc\r\n",
        b"1_0\r\n0123456789abcdef\r\n",
        b"3\r\nabc\r\nzz\r\n",  # a good chunk, then garbage
    ],
)
def test_bad_chunks_after_a_boundary_are_still_refused(bad: bytes) -> None:
    sink = Sink()
    codec = at_chunk_boundary(sink)
    with pytest.raises(UpstreamProtocolError, match="malformed"):
        codec.receive(bad)


def test_h2_request_headers() -> None:
    headers = request_headers(
        b"POST",
        b"https",
        b"api:443",
        b"/v1",
        [(b"X-Key", b"v"), (b"connection", b"keep-alive"), (b"host", b"x"), (b"te", b"trailers")],
    )
    assert headers == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"api:443"),
        (b":path", b"/v1"),
        (b"x-key", b"v"),
    ]
    assert request_headers(b"GET", b"http", b"a", b"/", [(b"x", b"a\r\nb: c")]) is None
    assert request_headers(b"GET", b"http", b"a", b"/", [(b"x\n", b"a")]) is None


def _goaway(last: int, code: int) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last
    frame.error_code = code
    return bytes(frame.serialize())


def _data(sid: int, payload: bytes) -> bytes:
    frame = DataFrame(sid)
    frame.data = payload
    return bytes(frame.serialize())


def test_goaway_splitter_any_split_gives_the_same_result() -> None:
    settings = bytes(SettingsFrame(0).serialize())
    others = [settings, _data(1, b"a" * 300), _data(3, b"")]
    stream = others[0] + others[1] + _goaway(1, 0) + others[2] + _goaway(0, 2)
    expected = (b"".join(others), [(1, 0), (0, 2)])

    def run(pieces: list[bytes]) -> tuple[bytes, list[tuple[int, int]]]:
        splitter = GoawaySplitter()
        passed, goaways = b"", []
        for piece in pieces:
            out, found = splitter.feed(piece)
            passed += out
            goaways += found
        return passed, goaways

    assert run([stream]) == expected
    assert run([stream[i : i + 1] for i in range(len(stream))]) == expected
    for cut in range(1, len(stream)):
        assert run([stream[:cut], stream[cut:]]) == expected


def test_goaway_splitter_passes_frames_through_untouched() -> None:
    payload = _data(1, b"z" * 1000)
    out, goaways = GoawaySplitter().feed(payload)
    assert out is payload and goaways == []
