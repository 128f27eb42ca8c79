"""Request parsing shared by both HTTP/1.1 codecs: heads, bodies, pipelining, read splits."""

from __future__ import annotations

import pytest

from proxy.events import RequestData, RequestHeaders
from proxy.protocol.http1_common import Http1ServerCodecBase
from tests.unit.protocol.test_http1_support import (
    chunked,
    codec_cls,
    feed,
    make,
    merge,
    request,
)

__all__ = ["codec_cls"]

Codec = type[Http1ServerCodecBase]

POST = request(
    b"POST",
    b"/v1/messages?beta=true",
    [
        (b"Host", b"api.example.com:8080"),
        (b"Content-Type", b"application/json"),
        (b"X-Api-Key", b"sk-ant-1"),
        (b"Content-Length", b"13"),
    ],
    b'{"model":"x"}',
)


def test_get_without_body(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    events = codec.receive(request(headers=[(b"Host", b"a.test"), (b"Accept", b"*/*")]), 0.0)
    assert events == [
        RequestHeaders(
            1, b"GET", b"/", b"a.test", [(b"host", b"a.test"), (b"accept", b"*/*")], True
        )
    ]
    assert codec.receiving == "idle"
    assert codec.pipelined == 1
    assert not codec.idle
    assert codec.alpn == "http/1.1"


def test_post_with_content_length(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    events = codec.receive(POST, 0.0)
    assert events == [
        RequestHeaders(
            1,
            b"POST",
            b"/v1/messages?beta=true",
            b"api.example.com:8080",
            [
                (b"host", b"api.example.com:8080"),
                (b"content-type", b"application/json"),
                (b"x-api-key", b"sk-ant-1"),
                (b"content-length", b"13"),
            ],
            False,
            False,
            13,
        ),
        RequestData(1, b'{"model":"x"}', True),
    ]


def test_body_in_several_reads_keeps_receiving_body(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    head, body = POST[:-13], POST[-13:]
    assert codec.receiving == "idle"
    assert codec.receive(head[:10], 0.0) == []
    assert codec.receiving == "headers"
    events = codec.receive(head[10:], 0.0)
    assert isinstance(events[0], RequestHeaders) and not events[0].end_stream
    assert codec.receiving == "body"
    assert codec.receive(body[:5], 0.0) == [RequestData(1, body[:5], False)]
    assert codec.receiving == "body"
    assert codec.receive(body[5:], 0.0) == [RequestData(1, body[5:], True)]
    assert codec.receiving == "idle"


def test_chunked_body_with_extensions_and_trailers(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    body = b'5;name=value;q="a b"\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n'
    data = request(b"POST", headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]) + body
    events = merge(codec.receive(data, 0.0))
    assert events == [
        RequestHeaders(
            1, b"POST", b"/", b"h", [(b"host", b"h"), (b"transfer-encoding", b"chunked")], False
        ),
        RequestData(1, b"hello world", True),
    ]
    assert codec.receiving == "idle"


@pytest.mark.parametrize("te", [b"chunked", b"CHUNKED", b"Chunked"])
def test_transfer_encoding_is_case_insensitive(codec_cls: Codec, te: bytes) -> None:
    codec = make(codec_cls)
    data = request(b"POST", headers=[(b"Host", b"h"), (b"Transfer-Encoding", te)])
    events = merge(codec.receive(data + chunked(b"abc"), 0.0))
    assert events[-1] == RequestData(1, b"abc", True)


def test_empty_chunked_body_ends_with_empty_data(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    data = request(b"POST", headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
    events = codec.receive(data + b"0\r\n\r\n", 0.0)
    assert events[1:] == [RequestData(1, b"", True)]


def test_content_length_zero_ends_the_stream_at_the_head(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    events = codec.receive(
        request(b"POST", headers=[(b"Host", b"h"), (b"Content-Length", b"0")]), 0.0
    )
    assert len(events) == 1
    head = events[0]
    assert isinstance(head, RequestHeaders)
    assert head.end_stream and head.content_length == 0


def test_pipelined_requests_in_one_read(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    data = (
        request(path=b"/1")
        + POST
        + request(b"POST", b"/3", [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
        + chunked(b"abc", b"de")
        + request(b"HEAD", b"/4")
    )
    events = merge(codec.receive(data, 0.0))
    heads = [e for e in events if isinstance(e, RequestHeaders)]
    assert [(h.stream_id, h.method, h.path) for h in heads] == [
        (1, b"GET", b"/1"),
        (2, b"POST", b"/v1/messages?beta=true"),
        (3, b"POST", b"/3"),
        (4, b"HEAD", b"/4"),
    ]
    bodies = [e for e in events if isinstance(e, RequestData)]
    assert bodies == [RequestData(2, b'{"model":"x"}', True), RequestData(3, b"abcde", True)]
    assert codec.pipelined == 4


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_split_reads_give_the_same_events(codec_cls: Codec, size: int) -> None:
    data = (
        request(path=b"/1")
        + POST
        + request(b"POST", b"/3", [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
        + b"3;x=y\r\nabc\r\n10\r\n"
        + b"\r\n\r\n" * 4
        + b"\r\n0\r\nT: 1\r\n\r\n"
        + request(path=b"/4")
    )
    whole, err = feed(make(codec_cls), data)
    assert err is None
    pieces, err = feed(make(codec_cls), data, [size])
    assert err is None
    assert merge(pieces) == merge(whole)
    assert len([e for e in whole if isinstance(e, RequestHeaders)]) == 4


def test_blank_lines_before_a_request_are_ignored(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    events = codec.receive(b"\r\n\r\n" + request(), 0.0)
    assert [type(e) for e in events] == [RequestHeaders]
    codec2 = make(codec_cls)
    assert codec2.receive(b"\r", 0.0) == []
    assert codec2.receive(b"\n" + request(), 0.0)[0] == events[0]


def test_header_values_lose_surrounding_whitespace_but_keep_inner(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    data = b"GET / HTTP/1.1\r\nHost:  h \r\nX-A:\t a  b \t\r\nX-Empty:\r\n\r\n"
    (head,) = codec.receive(data, 0.0)
    assert isinstance(head, RequestHeaders)
    assert head.headers == [(b"host", b"h"), (b"x-a", b"a  b"), (b"x-empty", b"")]
    assert head.authority == b"h"


def test_obs_text_in_values_is_kept(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    (head,) = codec.receive(request(headers=[(b"Host", b"h"), (b"X-Name", b"caf\xc3\xa9")]), 0.0)
    assert isinstance(head, RequestHeaders)
    assert head.headers[1] == (b"x-name", b"caf\xc3\xa9")


def test_http10_request_without_host(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    (head,) = codec.receive(b"GET /x HTTP/1.0\r\n\r\n", 0.0)
    assert isinstance(head, RequestHeaders)
    assert head.authority == b"" and head.end_stream


def test_options_star(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    (head,) = codec.receive(request(b"OPTIONS", b"*"), 0.0)
    assert isinstance(head, RequestHeaders) and head.path == b"*"


@pytest.mark.parametrize(
    "extra",
    [
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"h2c"),
            (b"HTTP2-Settings", b"AAMAAABkAAQAAP__"),
        ],
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), (b"Sec-WebSocket-Key", b"x")],
    ],
)
def test_upgrade_requests_are_ordinary_requests(
    codec_cls: Codec, extra: list[tuple[bytes, bytes]]
) -> None:
    codec = make(codec_cls)
    headers = [(b"Host", b"h"), *extra, (b"Content-Length", b"3")]
    data = request(b"POST", b"/u", headers, b"abc") + request(path=b"/next")
    events = codec.receive(data, 0.0)
    assert [type(e) for e in events] == [RequestHeaders, RequestData, RequestHeaders]
    first = events[0]
    assert isinstance(first, RequestHeaders)
    assert (b"upgrade", extra[1][1]) in first.headers  # nothing dropped
    assert events[1] == RequestData(1, b"abc", True)
    chunked_upgrade = request(
        b"POST", b"/c", [(b"Host", b"h"), *extra, (b"Transfer-Encoding", b"chunked")]
    )
    codec2 = make(codec_cls)
    events = merge(codec2.receive(chunked_upgrade + chunked(b"xyz") + request(), 0.0))
    assert [type(e) for e in events] == [RequestHeaders, RequestData, RequestHeaders]
    assert events[1] == RequestData(1, b"xyz", True)


def test_expect_continue_flag(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    headers = [(b"Host", b"h"), (b"Expect", b"100-Continue"), (b"Content-Length", b"3")]
    (head,) = codec.receive(request(b"POST", headers=headers), 0.0)
    assert isinstance(head, RequestHeaders) and head.expect_continue
    # No body means nothing to wait for; HTTP/1.0 clients do not know 100 Continue.
    for data in (
        request(b"POST", headers=[(b"Host", b"h"), (b"Expect", b"100-continue")]),
        request(b"POST", headers=headers, version=b"HTTP/1.0"),
    ):
        (head,) = make(codec_cls).receive(data, 0.0)
        assert isinstance(head, RequestHeaders) and not head.expect_continue


def test_bytes_after_a_close_request_are_ignored(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    data = request(headers=[(b"Host", b"h"), (b"Connection", b"close")]) + request(path=b"/2")
    events = codec.receive(data, 0.0)
    assert [e.stream_id for e in events if isinstance(e, RequestHeaders)] == [1]
    assert codec.receive(b"garbage that would not parse\r\n\r\n", 0.0) == []
    codec10 = make(codec_cls)
    events = codec10.receive(b"GET / HTTP/1.0\r\n\r\n" + request(path=b"/2"), 0.0)
    assert len(events) == 1


def test_http10_keep_alive_reads_the_next_request(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    data = b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n"
    events = codec.receive(data, 0.0)
    assert [e.path for e in events if isinstance(e, RequestHeaders)] == [b"/1", b"/2"]


def test_stream_ids_count_up_across_reads(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    ids = []
    for _ in range(3):
        (head,) = codec.receive(request(), 0.0)
        assert isinstance(head, RequestHeaders)
        ids.append(head.stream_id)
        codec.send_headers(head.stream_id, 204, [], True)
    assert ids == [1, 2, 3]


def test_body_bytes_and_next_request_in_one_read_after_split_head(codec_cls: Codec) -> None:
    codec = make(codec_cls)
    cut = POST.index(b"\r\n\r\n") + 2
    assert codec.receive(POST[:cut], 0.0) == []
    events = codec.receive(POST[cut:] + request(path=b"/2"), 0.0)
    assert [type(e) for e in events] == [RequestHeaders, RequestData, RequestHeaders]
