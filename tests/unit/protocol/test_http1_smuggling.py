"""Strictness of both HTTP/1.1 codecs (hardening.md rows A1-A15, B1-B3): every bad input gets
the same error class and status from both, and no request head is emitted for a bad head."""

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
H = b"Host: h\r\n"


def head(*lines: bytes, first: bytes = b"POST / HTTP/1.1") -> bytes:
    return first + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


TE = b"Transfer-Encoding: chunked"

# (id, bytes, status). Each input is bad in its head: no RequestHeaders may come out of it.
BAD_HEADS = [
    ("A1-cl-and-te", head(b"Host: h", b"Content-Length: 3", TE) + b"0\r\n\r\n", 400),
    ("A1-te-and-cl", head(b"Host: h", TE, b"Content-Length: 3") + b"0\r\n\r\n", 400),
    ("A2-cl-differ", head(b"Host: h", b"Content-Length: 1", b"Content-Length: 2") + b"ab", 400),
    ("A2-cl-same-twice", head(b"Host: h", b"Content-Length: 1", b"Content-Length: 1") + b"a", 400),
    ("A2-cl-list", head(b"Host: h", b"Content-Length: 1,2") + b"ab", 400),
    ("A2-cl-list-same", head(b"Host: h", b"Content-Length: 1,1") + b"a", 400),
    ("A2-cl-negative", head(b"Host: h", b"Content-Length: -1"), 400),
    ("A2-cl-plus", head(b"Host: h", b"Content-Length: +1") + b"a", 400),
    ("A2-cl-hex", head(b"Host: h", b"Content-Length: 0x1") + b"a", 400),
    ("A2-cl-empty", head(b"Host: h", b"Content-Length:"), 400),
    ("A12-cl-many-zeros", head(b"Host: h", b"Content-Length: " + b"0" * 30 + b"1") + b"a", 400),
    ("A12-cl-overflow", head(b"Host: h", b"Content-Length: 99999999999999999999999"), 400),
    ("A3-xchunked", head(b"Host: h", b"Transfer-Encoding: xchunked") + b"0\r\n\r\n", 400),
    ("A3-chunked-identity", head(b"Host: h", b"Transfer-Encoding: chunked, identity"), 400),
    ("A3-gzip-chunked", head(b"Host: h", b"Transfer-Encoding: gzip, chunked"), 400),
    ("A3-identity", head(b"Host: h", b"Transfer-Encoding: identity"), 400),
    ("A3-te-empty", head(b"Host: h", b"Transfer-Encoding:"), 400),
    ("A3-te-twice", head(b"Host: h", TE, TE) + b"0\r\n\r\n", 400),
    ("A3-space-before-colon", head(b"Host: h", b"Transfer-Encoding : chunked"), 400),
    ("A3-te-http10", head(TE, first=b"POST / HTTP/1.0") + b"0\r\n\r\n", 400),
    ("A3-te-vtab", head(b"Host: h", b"Transfer-Encoding: \x0bchunked"), 400),
    ("A5-bare-lf-lines", b"GET / HTTP/1.1\nHost: h\n\n\r\n\r\n", 400),
    ("A5-bare-lf-one-header", b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400),
    ("A5-bare-lf-request-line", b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
    ("A6-bare-cr-value", head(b"Host: h", b"X-Abc: \rxTransfer-Encoding: chunked"), 400),
    ("A6-bare-cr-end", b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
    ("A6-obs-fold-space", head(b"Host: h", b"X: y", b" z"), 400),
    ("A6-obs-fold-tab", head(b"Host: h", b"X: y", b"\tTransfer-Encoding: chunked"), 400),
    ("A7-nul-value", head(b"Host: h", b"X: a\x00b"), 400),
    ("A7-ctl-value", head(b"Host: h", b"X: a\x01b"), 400),
    ("A7-del-value", head(b"Host: h", b"X: a\x7fb"), 400),
    ("A7-cr-in-name", head(b"Host: h", b"F\roo: x"), 400),
    ("A7-nul-in-name", head(b"Host: h", b"F\x00oo: x"), 400),
    ("A7-question-name", head(b"Host: h", b"Foo?: x"), 400),
    ("A7-space-name", head(b"Host: h", b"Foo : x"), 400),
    ("A7-empty-name", head(b"Host: h", b": x"), 400),
    ("A7-no-colon", head(b"Host: h", b"Foo"), 400),
    ("A8-underscore", head(b"Host: h", b"x_api_key: sk"), 400),
    ("A8-underscore-version", head(b"Host: h", b"anthropic_version: 1"), 400),
    ("A9-duplicate-host", head(b"Host: a", b"Host: b"), 400),
    ("A9-missing-host", head(first=b"GET / HTTP/1.1"), 400),
    ("A10-version-umlaut", head(b"Host: h", first=b"GET / HTTP/1\xc3\xb61"), 400),
    ("A10-version-unicode-digit", head(b"Host: h", first=b"GET / HTTP/1.\xf0\x9d\x9f\x99"), 400),
    ("A10-version-lower", head(b"Host: h", first=b"GET / http/1.1"), 400),
    ("A10-version-2", head(b"Host: h", first=b"GET / HTTP/2.0"), 505),
    ("A10-version-0.9", head(b"Host: h", first=b"GET / HTTP/0.9"), 505),
    ("A10-version-1.2", head(b"Host: h", first=b"GET / HTTP/1.2"), 505),
    ("A10-lowercase-method", head(b"Host: h", first=b"get / HTTP/1.1"), 400),
    ("A10-unknown-method", head(b"Host: h", first=b"FOO / HTTP/1.1"), 501),
    ("A10-connect", head(b"Host: h", first=b"CONNECT h:443 HTTP/1.1"), 501),
    ("A10-absolute-foreign", head(b"Host: h", first=b"GET http://evil.test/ HTTP/1.1"), 400),
    ("A10-absolute-same", head(b"Host: h", first=b"GET http://h/ HTTP/1.1"), 400),
    ("A10-authority-form", head(b"Host: h", first=b"OPTIONS h:443 HTTP/1.1"), 400),
    ("A10-star-not-options", head(b"Host: h", first=b"GET * HTTP/1.1"), 400),
    ("A10-double-space", head(b"Host: h", first=b"GET  / HTTP/1.1"), 400),
    ("A10-space-in-target", head(b"Host: h", first=b"GET /a b HTTP/1.1"), 400),
    ("A10-trailing-space", head(b"Host: h", first=b"GET / HTTP/1.1 "), 400),
    ("A10-ctl-target", head(b"Host: h", first=b"GET /a\x01 HTTP/1.1"), 400),
    ("A10-high-target", head(b"Host: h", first=b"GET /a\xff HTTP/1.1"), 400),
    ("A10-no-version", head(b"Host: h", first=b"GET /"), 400),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
]

# (id, bytes after a valid chunked POST head, status)
BAD_CHUNKED = [
    ("A4-garbage-after-data", b"3\r\nabcXX0\r\n\r\n", 400),
    ("A4-lf-only-after-data", b"3\r\nabc\n0\r\n\r\n", 400),
    ("A5-bare-lf-size", b"3\nabc\r\n0\r\n\r\n", 400),
    ("A5-lf-in-extension", b"3;a\nb\r\nabc\r\n0\r\n\r\n", 400),
    ("A5-bare-lf-last-chunk", b"0\n\r\n", 400),
    ("A5-bare-lf-trailer", b"0\r\nX: 1\n\r\n", 400),
    ("A12-size-overflow", b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    ("A12-size-overflow-17", b"10000000000000000\r\nabc\r\n0\r\n\r\n", 400),
    ("size-0x", b"0x3\r\nabc\r\n0\r\n\r\n", 400),
    ("size-space", b"3 \r\nabc\r\n0\r\n\r\n", 400),
    ("size-negative", b"-3\r\nabc\r\n0\r\n\r\n", 400),
    ("size-empty", b"\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-space-before", b"3 ;a=b\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-spaces-around-eq", b"3; a = b\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-empty", b"3;\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-trailing-semicolon", b"3;a=b;\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-ctl", b"3;a\x01\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-unterminated-quote", b'3;a="b\r\nabc\r\n0\r\n\r\n', 400),
    ("ext-after-quote", b'3;a="b"c\r\nabc\r\n0\r\n\r\n', 400),
    ("ext-value-space", b"3;a=b c\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-value-slash", b"3;a=b/c\r\nabc\r\n0\r\n\r\n", 400),
    ("ext-quoted-del", b'3;a="\x7f"\r\nabc\r\n0\r\n\r\n', 400),
    ("ext-bad-quoted-pair", b'3;a="\\\x01"\r\nabc\r\n0\r\n\r\n', 400),
    ("trailer-bad-name", b"0\r\nX T: 1\r\n\r\n", 400),
    ("trailer-ctl", b"0\r\nX: \x01\r\n\r\n", 400),
    ("trailer-obs-fold", b"0\r\nX: a\r\n b\r\n\r\n", 400),
    ("trailer-empty-name", b"0\r\n: a\r\n\r\n", 400),
]

GOOD_EXTENSIONS = [
    b"3;a=b",
    b'3;a="b"',
    b"3;a",
    b"3;a;b",
    b'3;a="b";c',
    b'3;a="\\"q\\""',
    b'3;a="\tb \xff"',
    b"3;a=#",
    b"03",
    b"0000000000000000000000000003",
]


def _assert_rejected_head(codec_cls: Codec, data: bytes, status: int, sizes: list[int]) -> None:
    codec = make(codec_cls)
    events, err = feed(codec, data, sizes)
    assert err is not None, "accepted a bad request"
    assert err.status == status, err
    assert not any(isinstance(e, RequestHeaders) for e in events)
    assert not codec.keep_alive
    assert codec.receive(request(), 0.0) == []  # dead: nothing more is parsed


@pytest.mark.parametrize(
    ("data", "status"), [c[1:] for c in BAD_HEADS], ids=[c[0] for c in BAD_HEADS]
)
def test_bad_head_is_rejected_whole(codec_cls: Codec, data: bytes, status: int) -> None:
    _assert_rejected_head(codec_cls, data, status, [len(data)])


@pytest.mark.parametrize(
    ("data", "status"), [c[1:] for c in BAD_HEADS], ids=[c[0] for c in BAD_HEADS]
)
def test_bad_head_is_rejected_byte_by_byte(codec_cls: Codec, data: bytes, status: int) -> None:
    _assert_rejected_head(codec_cls, data, status, [1])


@pytest.mark.parametrize(
    ("body", "status"), [c[1:] for c in BAD_CHUNKED], ids=[c[0] for c in BAD_CHUNKED]
)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
def test_bad_chunked_body_is_rejected(
    codec_cls: Codec, body: bytes, status: int, split: bool
) -> None:
    codec = make(codec_cls)
    (first,) = codec.receive(head(b"Host: h", TE), 0.0)
    assert isinstance(first, RequestHeaders)
    events, err = feed(codec, body + request(), [1] if split else None)
    assert err is not None and err.status == status, err
    assert isinstance(err, DownstreamProtocolError)
    assert not any(isinstance(e, RequestData) and e.end_stream for e in events)
    assert not any(isinstance(e, RequestHeaders) for e in events)
    assert not codec.keep_alive


@pytest.mark.parametrize("line", GOOD_EXTENSIONS)
def test_well_formed_chunk_lines_are_accepted(codec_cls: Codec, line: bytes) -> None:
    codec = make(codec_cls)
    events = codec.receive(head(b"Host: h", TE) + line + b"\r\nabc\r\n0\r\n\r\n", 0.0)
    assert events[-1] == RequestData(1, b"", True)
    assert b"".join(e.data for e in events if isinstance(e, RequestData)) == b"abc"


def test_tab_before_a_value_is_whitespace(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    events = codec.receive(head(b"Host: h", b"Transfer-Encoding:\tchunked") + b"0\r\n\r\n", 0.0)
    assert events[-1] == RequestData(1, b"", True)


def test_good_request_then_bad_one_rejects_in_the_same_read(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    events, err = feed(codec, request() + head(b"Host: h", b"Content-Length: 1,2"))
    assert err is not None and err.status == 400
    codec = make(codec_cls)
    events, err = feed(codec, request() + head(b"Host: h", b"Content-Length: 1,2"), [1])
    assert err is not None
    assert [e.stream_id for e in events if isinstance(e, RequestHeaders)] == [1]


def test_large_but_valid_content_length_gets_413(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_body_bytes=1000)
    _, err = feed(codec, head(b"Host: h", b"Content-Length: 1001"))
    assert isinstance(err, RequestBodyTooLargeError) and err.status == 413


def test_expect_continue_with_a_too_large_body_gets_413_before_the_body(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_body_bytes=1000)
    data = head(b"Host: h", b"Expect: 100-continue", b"Content-Length: 5000")
    events, err = feed(codec, data)
    assert isinstance(err, RequestBodyTooLargeError)
    assert events == []
    assert codec.send_error_response(413, [], b"too large")
    out = codec.data_to_send()
    assert out.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"100 Continue" not in out


def test_errors_leave_no_library_exception(codec_cls: Codec) -> None:
    # Inputs each library raises its own exception type for, mapped to ours.
    for data in (
        head(b"Host: h", b"Content-Length: 3", TE),
        head(b"Host: h", b"X: \x00"),
        b"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n",
        head(b"Host: h", b"Connection: Upgrade", b"Upgrade: x", b"Content-Length: 1,2"),
    ):
        with pytest.raises(DownstreamProtocolError):
            make(codec_cls).receive(data, 0.0)


def test_headers_too_large_class(codec_cls: Codec) -> None:
    codec = make(codec_cls, max_header_bytes=100)
    with pytest.raises(RequestHeadersTooLargeError):
        codec.receive(head(b"Host: h", b"X: " + b"a" * 200), 0.0)
