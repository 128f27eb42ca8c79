"""Named bounds of both HTTP/1.1 codecs: head bytes and count (431), body bytes (413), and the
chunked framing overhead, all enforced while bytes arrive rather than after buffering."""

from __future__ import annotations

import pytest

from proxy.errors import (
    DownstreamProtocolError,
    RequestBodyTooLargeError,
    RequestHeadersTooLargeError,
)
from proxy.events import RequestData, RequestHeaders
from proxy.protocol.http1_common import Http1ServerCodecBase
from tests.unit.protocol.test_http1_support import codec_cls, feed, make, request

__all__ = ["codec_cls"]

Codec = type[Http1ServerCodecBase]
CHUNKED_HEAD = request(b"POST", headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])


def sized_head(total: int) -> bytes:
    """A valid GET head of exactly ``total`` bytes."""
    base = request(headers=[(b"Host", b"h"), (b"X-Pad", b"")])
    head = request(headers=[(b"Host", b"h"), (b"X-Pad", b"p" * (total - len(base)))])
    assert len(head) == total
    return head


@pytest.mark.parametrize("sizes", [None, [1], [7], [100]])
def test_head_of_exactly_the_limit_is_accepted(codec_cls: Codec, sizes: list[int] | None) -> None:
    codec = make(codec_cls, max_header_bytes=512)
    events, err = feed(codec, sized_head(512) + request(path=b"/2"), sizes)
    assert err is None
    assert len([e for e in events if isinstance(e, RequestHeaders)]) == 2


@pytest.mark.parametrize("sizes", [None, [1], [7], [100]])
def test_head_one_byte_over_the_limit_gets_431(codec_cls: Codec, sizes: list[int] | None) -> None:
    codec = make(codec_cls, max_header_bytes=512)
    events, err = feed(codec, request() + sized_head(513), sizes)
    assert isinstance(err, RequestHeadersTooLargeError) and err.status == 431
    assert [e.stream_id for e in events if isinstance(e, RequestHeaders)] in ([], [1])


def test_endless_header_is_rejected_once_the_limit_is_seen(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_header_bytes=8192)
    codec.receive(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 0.0)
    fed = 0
    with pytest.raises(RequestHeadersTooLargeError):
        for _ in range(256):  # 1 MiB if it were all buffered
            codec.receive(b"a" * 4096, 0.0)
            fed += 4096
    assert fed <= 8192
    assert codec.receiving == "idle" and not codec.keep_alive


def test_one_huge_read_is_rejected_without_parsing_it(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_header_bytes=8192)
    with pytest.raises(RequestHeadersTooLargeError):
        codec.receive(b"GET / HTTP/1.1\r\nX: " + b"a" * (1 << 20), 0.0)


@pytest.mark.parametrize("sizes", [None, [50]])
def test_header_count_limit(codec_cls: Codec, sizes: list[int] | None) -> None:
    ok = request(headers=[(b"Host", b"h")] + [(b"X-%d" % i, b"v") for i in range(9)])
    events, err = feed(make(codec_cls, max_header_count=10), ok, sizes)
    assert err is None and len(events) == 1
    many = request(headers=[(b"Host", b"h")] + [(b"X-%d" % i, b"v") for i in range(10)])
    _, err = feed(make(codec_cls, max_header_count=10), many, sizes)
    assert isinstance(err, RequestHeadersTooLargeError) and err.status == 431


def test_ten_thousand_tiny_headers_fail_fast(codec_cls: Codec) -> None:
    data = b"GET / HTTP/1.1\r\n" + b"a:b\r\n" * 10_000 + b"\r\n"
    with pytest.raises(RequestHeadersTooLargeError):
        make(codec_cls).receive(data, 0.0)


def test_content_length_at_the_limit(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_body_bytes=10)
    data = request(
        b"POST", headers=[(b"Host", b"h"), (b"Content-Length", b"10")], body=b"0123456789"
    )
    assert codec.receive(data, 0.0)[-1] == RequestData(1, b"0123456789", True)


@pytest.mark.parametrize("sizes", [None, [3]])
def test_chunked_body_over_the_limit_gets_413(codec_cls: Codec, sizes: list[int] | None) -> None:
    ok = make(codec_cls, max_body_bytes=10)
    events, err = feed(ok, CHUNKED_HEAD + b"5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", sizes)
    assert err is None and events[-1] == RequestData(1, b"", True)
    codec = make(codec_cls, max_body_bytes=10)
    events, err = feed(codec, CHUNKED_HEAD + b"5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n", sizes)
    assert isinstance(err, RequestBodyTooLargeError) and err.status == 413
    assert not any(isinstance(e, RequestData) and e.end_stream for e in events)


def test_huge_chunk_size_is_stopped_by_the_running_total(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_body_bytes=100)
    codec.receive(CHUNKED_HEAD + b"fffffff\r\n", 0.0)
    with pytest.raises(RequestBodyTooLargeError):
        for _ in range(10):
            codec.receive(b"x" * 50, 0.0)


@pytest.mark.parametrize(
    "body",
    [
        b"0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(20)) + b"\r\n",
        b"3;" + b"e" * 3000 + b"\r\nabc\r\n0\r\n\r\n",
        b"0" * 3000 + b"3\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["trailers", "extension", "leading-zeros"],
)
@pytest.mark.parametrize("sizes", [None, [64]])
def test_chunked_framing_overhead_is_bounded(
    codec_cls: Codec, body: bytes, sizes: list[int] | None
) -> None:
    codec = make(codec_cls, max_header_bytes=1024)
    codec.receive(CHUNKED_HEAD, 0.0)
    events, err = feed(codec, body, sizes)
    assert type(err) is DownstreamProtocolError and err.status == 400
    assert not any(isinstance(e, RequestData) and e.end_stream for e in events)
    # The same body is fine when the bound allows it.
    codec = make(codec_cls, max_header_bytes=8192)
    codec.receive(CHUNKED_HEAD, 0.0)
    events, err = feed(codec, body, sizes)
    assert err is None and events[-1] == RequestData(1, b"", True)


def test_many_tiny_chunks_are_fine_within_the_overhead_bound(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_header_bytes=1024)
    codec.receive(CHUNKED_HEAD, 0.0)
    events = codec.receive(b"1\r\nx\r\n" * 100 + b"0\r\n\r\n", 0.0)
    assert b"".join(e.data for e in events if isinstance(e, RequestData)) == b"x" * 100
