"""Responses from both HTTP/1.1 codecs: framing, keep-alive, ordering, 100-continue, errors,
drain. Output is checked byte for byte and also read back with a real h11 client."""

from __future__ import annotations

import h11
import pytest

from proxy.errors import DownstreamProtocolError
from proxy.events import RequestData, RequestHeaders
from proxy.protocol.http1_common import Http1ServerCodecBase
from tests.unit.protocol.test_http1_support import codec_cls, make, request

__all__ = ["codec_cls"]

Codec = type[Http1ServerCodecBase]
JSON = [(b"content-type", b"application/json")]


def opened(codec_cls: Codec, data: bytes = b"") -> Http1ServerCodecBase:
    codec = make(codec_cls)
    events = codec.receive(data or request(), 0.0)
    assert events and isinstance(events[0], RequestHeaders)
    return codec


def read_back(data: bytes, method: bytes = b"GET") -> list[object]:
    """Parse response bytes with a real h11 client."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    events: list[object] = []
    while True:
        ev = client.next_event()
        if ev in (h11.NEED_DATA, h11.PAUSED):
            break
        events.append(ev)
        if isinstance(ev, h11.EndOfMessage):
            break
    return events


def test_content_length_response(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 200, [*JSON, (b"content-length", b"5")], False)
    assert codec.keep_alive and not codec.idle
    codec.send_data(1, b"hel", False)
    codec.send_data(1, b"lo", True)
    out = codec.data_to_send()
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello"
    )
    assert codec.data_to_send() == b""
    assert codec.keep_alive and codec.idle and codec.pipelined == 0
    resp, data, _end = read_back(out)
    assert isinstance(resp, h11.Response) and resp.status_code == 200
    assert isinstance(data, h11.Data) and data.data == b"hello"


def test_end_stream_headers_get_content_length_zero(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 404, JSON, True)
    assert codec.data_to_send() == (
        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"
    )
    assert codec.idle and codec.keep_alive


def test_streaming_response_is_chunked(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 200, [(b"content-type", b"text/event-stream")], False)
    codec.send_data(1, b"event: a\n\n", False)
    codec.send_data(1, b"", False)  # an empty write must not end the chunked body
    codec.send_data(1, b"x" * 300, False)
    codec.send_data(1, b"", True)
    out = codec.data_to_send()
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        b"a\r\nevent: a\n\n\r\n12c\r\n" + b"x" * 300 + b"\r\n0\r\n\r\n"
    )
    events = read_back(out)
    assert (
        b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"event: a\n\n" + b"x" * 300
    )
    assert isinstance(events[-1], h11.EndOfMessage)
    assert codec.keep_alive


def test_last_data_with_end_stream_closes_the_chunked_body(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 200, [], False)
    codec.send_data(1, b"abc", True)
    assert codec.data_to_send().endswith(b"3\r\nabc\r\n0\r\n\r\n")


def test_http10_client_gets_close_delimited_body(codec_cls: Codec) -> None:
    codec = opened(codec_cls, b"GET / HTTP/1.0\r\n\r\n")
    codec.send_headers(1, 200, [], False)
    codec.send_data(1, b"abc", False)
    assert codec.keep_alive  # not before the response is complete
    codec.send_data(1, b"def", True)
    assert codec.data_to_send() == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabcdef"
    assert not codec.keep_alive


def test_http10_keep_alive_with_content_length(codec_cls: Codec) -> None:
    codec = opened(codec_cls, b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    codec.send_headers(1, 200, [(b"content-length", b"2")], False)
    codec.send_data(1, b"ok", True)
    assert codec.data_to_send() == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"
    )
    assert codec.keep_alive
    events = codec.receive(b"GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0.0)
    assert [type(e) for e in events] == [RequestHeaders]


def test_http10_keep_alive_without_length_must_close(codec_cls: Codec) -> None:
    codec = opened(codec_cls, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    codec.send_headers(1, 200, [], False)
    codec.send_data(1, b"abc", True)
    assert codec.data_to_send() == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc"
    assert not codec.keep_alive


def test_http10_without_keep_alive_closes(codec_cls: Codec) -> None:
    codec = opened(codec_cls, b"GET / HTTP/1.0\r\n\r\n")
    codec.send_headers(1, 200, [(b"content-length", b"0")], True)
    assert (
        codec.data_to_send() == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert not codec.keep_alive


def test_client_connection_close(codec_cls: Codec) -> None:
    codec = opened(codec_cls, request(headers=[(b"Host", b"h"), (b"Connection", b"close")]))
    codec.send_headers(1, 200, [(b"content-length", b"1")], False)
    assert codec.keep_alive
    codec.send_data(1, b"x", True)
    assert codec.data_to_send() == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx"
    )
    assert not codec.keep_alive and codec.idle


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(codec_cls: Codec, status: int) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, status, [(b"etag", b'"x"')], False)
    codec.send_data(1, b"must not be written", True)
    out = codec.data_to_send()
    assert out == b'HTTP/1.1 %d %s\r\netag: "x"\r\n\r\n' % (
        status,
        b"No Content" if status == 204 else b"Not Modified",
    )
    assert codec.keep_alive and codec.idle


def test_head_response_keeps_length_but_has_no_body(codec_cls: Codec) -> None:
    codec = opened(codec_cls, request(b"HEAD"))
    codec.send_headers(1, 200, [(b"content-length", b"1234")], False)
    codec.send_data(1, b"x" * 1234, True)
    out = codec.data_to_send()
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
    assert isinstance(read_back(out, b"HEAD")[-1], h11.EndOfMessage)
    assert codec.keep_alive


def test_head_response_streamed_without_length(codec_cls: Codec) -> None:
    codec = opened(codec_cls, request(b"HEAD"))
    codec.send_headers(1, 200, [], False)
    codec.send_data(1, b"body", True)
    assert codec.data_to_send() == b"HTTP/1.1 200 OK\r\n\r\n"
    assert codec.keep_alive


def test_codec_owns_framing_headers(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(
        1,
        200,
        [(b"transfer-encoding", b"gzip"), (b"connection", b"x"), (b"keep-alive", b"1")],
        True,
    )
    assert codec.data_to_send() == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_unknown_status_has_empty_reason(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 599, [], True)
    assert codec.data_to_send().startswith(b"HTTP/1.1 599 \r\n")


def test_response_splitting_is_refused(codec_cls: Codec) -> None:
    for headers in (
        [(b"x-model", b"a\r\nset-cookie: evil=1")],
        [(b"x-model", b"a\nb")],
        [(b"x-model", b"a\rb")],
        [(b"x-a\r\nb", b"1")],
    ):
        codec = opened(codec_cls)
        with pytest.raises(ValueError):
            codec.send_headers(1, 200, headers, True)
        assert codec.data_to_send() == b""


def test_pipelined_responses_must_go_in_order(codec_cls: Codec) -> None:
    codec = opened(codec_cls, request(path=b"/1") + request(path=b"/2"))
    assert codec.pipelined == 2
    with pytest.raises(ValueError):
        codec.send_headers(2, 200, [], True)
    with pytest.raises(ValueError):
        codec.send_data(1, b"x", True)  # before headers
    codec.send_headers(1, 200, [(b"content-length", b"1")], False)
    with pytest.raises(ValueError):
        codec.send_headers(1, 200, [], True)  # twice
    with pytest.raises(ValueError):
        codec.send_data(1, b"too long", False)
    codec.send_data(1, b"1", True)
    assert codec.pipelined == 1
    codec.send_headers(2, 200, [(b"content-length", b"1")], False)
    codec.send_data(2, b"2", True)
    out = codec.data_to_send()
    assert out.count(b"HTTP/1.1 200 OK") == 2 and out.index(b"\r\n\r\n1") < out.index(b"\r\n\r\n2")
    assert codec.pipelined == 0 and codec.idle


def test_truncated_content_length_response_closes(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 200, [(b"content-length", b"10")], False)
    codec.send_data(1, b"abc", True)
    assert not codec.keep_alive


def test_response_before_request_body_complete_closes(codec_cls: Codec) -> None:
    data = request(b"POST", headers=[(b"Host", b"h"), (b"Content-Length", b"10")], body=b"abc")
    codec = opened(codec_cls, data)
    assert codec.receiving == "body"
    codec.send_headers(1, 401, [], True)
    assert not codec.keep_alive
    assert codec.receive(b"defghij" + request(), 0.0) == []  # never parsed as a request


class TestContinue:
    DATA = request(
        b"POST",
        headers=[(b"Host", b"h"), (b"Expect", b"100-continue"), (b"Content-Length", b"3")],
    )

    def test_continue_once_then_body(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls, self.DATA)
        codec.send_continue(1)
        codec.send_continue(1)
        assert codec.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert codec.receive(b"abc", 0.0) == [RequestData(1, b"abc", True)]
        codec.send_headers(1, 200, [], True)
        assert codec.keep_alive

    def test_no_continue_once_body_arrived(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls, self.DATA)
        codec.receive(b"a", 0.0)
        codec.send_continue(1)
        assert codec.data_to_send() == b""

    def test_no_continue_without_expect(self, codec_cls: Codec) -> None:
        codec = opened(
            codec_cls, request(b"POST", headers=[(b"Host", b"h"), (b"Content-Length", b"3")])
        )
        codec.send_continue(1)
        assert codec.data_to_send() == b""

    def test_no_continue_after_final_response(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls, self.DATA)
        codec.send_headers(1, 417, [], False)
        codec.send_continue(1)
        codec.send_data(1, b"", True)
        out = codec.data_to_send()
        assert b"100 Continue" not in out
        assert b"connection: close\r\n" in out  # the body will never be read
        assert not codec.keep_alive

    def test_answer_after_continue_but_before_body(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls, self.DATA)
        codec.send_continue(1)
        codec.send_headers(1, 200, [], False)
        assert b"connection: close" not in codec.data_to_send()  # the body may still come
        assert codec.receive(b"ab", 0.0) == [RequestData(1, b"ab", False)]
        codec.send_data(1, b"", True)
        assert not codec.keep_alive  # finished before its request: cannot reuse the connection

    def test_no_continue_for_another_stream(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls, self.DATA)
        codec.send_continue(2)
        assert codec.data_to_send() == b""


class TestErrorResponse:
    def test_after_protocol_error(self, codec_cls: Codec) -> None:
        codec = make(codec_cls)
        with pytest.raises(DownstreamProtocolError):
            codec.receive(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0.0)
        assert codec.send_error_response(
            400, [(b"content-type", b"application/json"), (b"connection", b"keep-alive")], b"{}"
        )
        assert codec.data_to_send() == (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: 2\r\nconnection: close\r\n\r\n{}"
        )
        assert not codec.keep_alive
        assert not codec.send_error_response(400, [], b"")  # only once

    def test_not_after_response_started(self, codec_cls: Codec) -> None:
        data = request(b"POST", headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
        codec = opened(codec_cls, data)
        codec.send_headers(1, 200, [], False)
        codec.send_data(1, b"partial", False)
        with pytest.raises(DownstreamProtocolError):
            codec.receive(b"zz\r\n", 0.0)
        before = codec.data_to_send()
        assert not codec.send_error_response(400, [], b"bad")
        assert codec.data_to_send() == b""
        assert before.endswith(b"7\r\npartial\r\n")
        assert not codec.keep_alive

    def test_after_complete_responses(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls)
        codec.send_headers(1, 200, [], True)
        with pytest.raises(DownstreamProtocolError):
            codec.receive(b"BAD\r\n\r\n", 0.0)
        assert codec.send_error_response(400, [], b"x")
        out = codec.data_to_send()
        assert out.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 ")


class TestDrain:
    def test_drain_when_idle_closes_at_once(self, codec_cls: Codec) -> None:
        codec = make(codec_cls)
        assert codec.idle and codec.keep_alive
        codec.start_drain()
        assert not codec.keep_alive
        assert codec.receive(request(), 0.0) == []

    def test_drain_marks_next_response(self, codec_cls: Codec) -> None:
        codec = opened(codec_cls, request(path=b"/1") + request(path=b"/2"))
        codec.start_drain()
        assert codec.keep_alive
        codec.send_headers(1, 200, [], False)
        codec.send_data(1, b"x", True)
        assert b"connection: close\r\n" in codec.data_to_send()
        assert not codec.keep_alive
        codec.send_headers(2, 200, [], True)  # dropped: the connection is closing
        assert codec.data_to_send() == b""

    def test_drain_during_partial_head(self, codec_cls: Codec) -> None:
        codec = make(codec_cls)
        codec.receive(b"GET / HT", 0.0)
        assert not codec.idle
        codec.start_drain()
        assert codec.keep_alive
        codec.receive(b"TP/1.1\r\nHost: h\r\n\r\n", 0.0)
        codec.send_headers(1, 200, [], True)
        assert codec.data_to_send().endswith(b"connection: close\r\n\r\n")
        assert not codec.keep_alive


def test_reset_stream_closes_connection(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 200, [], False)
    codec.reset_stream(1)
    assert not codec.keep_alive
    codec.send_data(1, b"late", True)
    assert b"late" not in codec.data_to_send()


def test_flow_control_is_a_no_op(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.acknowledge_received(1, 100)
    assert codec.pending_bytes(1) == 0


def test_informational_response(codec_cls: Codec) -> None:
    codec = opened(codec_cls)
    codec.send_headers(1, 103, [(b"link", b"</a>; rel=preload")], False)
    codec.send_headers(1, 200, [], True)
    assert codec.data_to_send() == (
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    )
    with pytest.raises(ValueError):
        opened(codec_cls).send_headers(1, 101, [], False)


def test_keep_alive_cycle_with_real_client(codec_cls: Codec) -> None:
    client = h11.Connection(h11.CLIENT)
    codec = make(codec_cls)
    for i in range(3):
        body = b'{"n":%d}' % i
        wire = client.send(
            h11.Request(
                method="POST",
                target="/v1/messages",
                headers=[("host", "h"), ("content-length", str(len(body)))],
            )
        )
        assert wire is not None
        wire += client.send(h11.Data(data=body)) or b""
        wire += client.send(h11.EndOfMessage()) or b""
        events = codec.receive(wire, 0.0)
        assert events[-1] == RequestData(i + 1, body, True)
        codec.send_headers(i + 1, 200, [(b"content-type", b"application/json")], False)
        codec.send_data(i + 1, body, True)
        client.receive_data(codec.data_to_send())
        got = []
        while not isinstance(ev := client.next_event(), h11.EndOfMessage):
            got.append(ev)
        assert isinstance(got[0], h11.Response) and got[0].status_code == 200
        assert b"".join(e.data for e in got[1:] if isinstance(e, h11.Data)) == body
        client.start_next_cycle()
    assert codec.keep_alive and codec.idle
