"""Sans-I/O HTTP/1.1 client codecs: serialise one request, parse its response.

How this works: a connection owns one codec and runs one exchange at a time on it. For each
exchange it calls ``encode_head`` once, ``encode_data`` per body chunk and ``encode_end`` when
the request is complete, writing what they return. Received bytes go to ``receive``, which calls
the `ResponseSink` synchronously: ``on_response_head`` once (1xx interim responses are skipped),
``on_response_data`` per body piece as it arrives and ``on_response_end``. When the peer closes,
``receive_eof`` says whether that EOF completed a close-delimited body. After the response ended,
``reusable`` tells whether the connection may carry another exchange and ``next_cycle`` readies
the codec for it.

Two implementations sit behind that interface: `HttptoolsCodec` (llhttp; the fast path) and
`H11Codec` (pure Python, strict). Both raise `UpstreamProtocolError` on bad bytes, on headers
over the size bound, and when the request body disagrees with its declared length.
"""

from __future__ import annotations

from typing import Literal, Protocol

import h11
import httptools

from proxy.errors import UpstreamProtocolError
from proxy.headers import Headers

CodecName = Literal["auto", "httptools", "h11"]

# Methods whose empty body is announced with ``content-length: 0`` (servers may otherwise wait
# for a body or answer 411).
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_NO_BODY_STATUS = frozenset({204, 304})


class ResponseSink(Protocol):
    def on_response_head(self, status: int, headers: Headers) -> None: ...

    def on_response_data(self, data: bytes) -> None: ...

    def on_response_end(self) -> None: ...


class Http1ClientCodec(Protocol):
    def encode_head(
        self, method: bytes, path: bytes, authority: bytes, headers: Headers, end_stream: bool
    ) -> bytes:
        """The request line and headers, framing chosen from ``headers`` and ``end_stream``."""
        ...

    def encode_data(self, data: bytes) -> bytes: ...

    def encode_end(self) -> bytes: ...

    def receive(self, data: bytes) -> None: ...

    def receive_eof(self) -> bool:
        """The peer closed. True when that completed the response (close-delimited body)."""
        ...

    @property
    def reusable(self) -> bool:
        """After on_response_end: the response allows another exchange on this connection."""
        ...

    def next_cycle(self) -> None: ...


def request_framing(method: bytes, headers: Headers, end_stream: bool) -> tuple[int, bytes]:
    """Pick request body framing: (declared length or -1 for chunked/none, extra header line).

    A caller-given content-length wins; an empty POST/PUT/PATCH announces ``content-length: 0``;
    other bodiless requests send no framing header; everything else is chunked.
    """
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value), b""
            except ValueError:
                raise UpstreamProtocolError("request content-length is not a number") from None
    if end_stream:
        if method in _BODY_METHODS:
            return 0, b"\r\ncontent-length: 0"
        return 0, b""
    return -1, b"\r\ntransfer-encoding: chunked"


def _too_large(limit: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"upstream response headers exceed {limit} bytes")


class _HeadResponseDone(Exception):
    """Raised out of llhttp after a HEAD response's headers: it has no body to wait for."""


class HttptoolsCodec:
    """llhttp via httptools. The parser lives as long as the connection (llhttp parses one
    response after another), except after HEAD, which llhttp cannot be told about."""

    __slots__ = (
        "_body_left",
        "_chunked",
        "_close_delimited",
        "_completed",
        "_head_bytes",
        "_headers",
        "_headers_done",
        "_is_head",
        "_keep_alive",
        "_max_header_bytes",
        "_parser",
        "_raw_bytes",
        "_sink",
    )

    def __init__(self, sink: ResponseSink, max_header_bytes: int) -> None:
        self._sink = sink
        self._max_header_bytes = max_header_bytes
        self._parser = httptools.HttpResponseParser(self)
        self._headers: Headers = []
        self._head_bytes = 0
        self._raw_bytes = 0
        self._headers_done = False
        self._completed = False
        self._keep_alive = False
        self._close_delimited = False
        self._is_head = False
        self._chunked = False
        self._body_left = 0

    # -- request direction --------------------------------------------------------------
    def encode_head(
        self, method: bytes, path: bytes, authority: bytes, headers: Headers, end_stream: bool
    ) -> bytes:
        length, framing = request_framing(method, headers, end_stream)
        self._chunked = length < 0
        self._body_left = length
        self._is_head = method == b"HEAD"
        parts = [method, b" ", path, b" HTTP/1.1\r\nhost: ", authority]
        for name, value in headers:
            parts += (b"\r\n", name, b": ", value)
        parts.append(framing)
        parts.append(b"\r\n\r\n")
        head = b"".join(parts)
        # Request splitting guard: a CR, LF or NUL inside any name or value changes the counts.
        lines = len(headers) + (4 if framing else 3)
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\x00" in head:
            raise UpstreamProtocolError("request head contains CR, LF or NUL")
        return head

    def encode_data(self, data: bytes) -> bytes:
        if self._chunked:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        self._body_left -= len(data)
        if self._body_left < 0:
            raise UpstreamProtocolError("request body longer than its content-length")
        return data

    def encode_end(self) -> bytes:
        if self._chunked:
            return b"0\r\n\r\n"
        if self._body_left > 0:
            raise UpstreamProtocolError("request body shorter than its content-length")
        return b""

    # -- response direction -------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        if not self._headers_done:
            self._raw_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # llhttp wraps whatever a callback raised; the original is the context.
            cause = exc.__context__
            if isinstance(cause, _HeadResponseDone):
                self._parser = httptools.HttpResponseParser(self)
                return
            if cause is None:  # pragma: no cover - httptools always chains it
                raise UpstreamProtocolError("malformed upstream response") from None
            raise cause from None
        except httptools.HttpParserUpgrade:
            raise UpstreamProtocolError("upstream switched protocols unasked") from None
        except httptools.HttpParserError as exc:
            raise UpstreamProtocolError(f"malformed upstream response: {exc}") from None
        # llhttp buffers an unfinished header line itself: bound what it may be holding.
        if not self._headers_done and self._raw_bytes > self._max_header_bytes:
            raise _too_large(self._max_header_bytes)

    def receive_eof(self) -> bool:
        if self._headers_done and not self._completed and self._close_delimited:
            self._completed = True
            self._sink.on_response_end()
            return True
        return False

    @property
    def reusable(self) -> bool:
        return self._completed and self._keep_alive

    def next_cycle(self) -> None:
        self._headers = []
        self._head_bytes = 0
        self._raw_bytes = 0
        self._headers_done = False
        self._completed = False

    # -- llhttp callbacks ---------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        self._head_bytes = len(status) + 15

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_header_bytes:  # also bounds chunked trailers
            raise _too_large(self._max_header_bytes)

    def on_headers_complete(self) -> None:
        if self._head_bytes > self._max_header_bytes:
            raise _too_large(self._max_header_bytes)
        parser = self._parser
        status: int = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise UpstreamProtocolError("upstream switched protocols unasked")
            self._headers = []  # interim response: wait for the final one
            self._head_bytes = 0
            self._raw_bytes = 0
            return
        self._headers_done = True
        headers = self._headers
        self._keep_alive = keep_alive = parser.should_keep_alive()
        # Only a response that cannot keep the connection may be framed by EOF: look for
        # framing headers in that rare case alone.
        self._close_delimited = (
            not keep_alive
            and not self._is_head
            and status not in _NO_BODY_STATUS
            and not any(n == b"content-length" or n == b"transfer-encoding" for n, _ in headers)
        )
        self._headers = []
        self._sink.on_response_head(status, headers)
        if self._is_head:
            self._completed = True
            self._sink.on_response_end()
            raise _HeadResponseDone

    def on_body(self, body: bytes) -> None:
        if body:
            self._sink.on_response_data(body)

    def on_message_complete(self) -> None:
        if self._headers_done:
            self._completed = True
            self._sink.on_response_end()


class H11Codec:
    """h11 in client mode: slower, strict, and a reference for the httptools codec."""

    __slots__ = ("_conn", "_max_header_bytes", "_sink")

    def __init__(self, sink: ResponseSink, max_header_bytes: int) -> None:
        self._sink = sink
        self._max_header_bytes = max_header_bytes
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)

    def encode_head(
        self, method: bytes, path: bytes, authority: bytes, headers: Headers, end_stream: bool
    ) -> bytes:
        _, framing = request_framing(method, headers, end_stream)
        all_headers = [(b"host", authority), *headers]
        if framing:
            name, _, value = framing[2:].partition(b": ")
            all_headers.append((name, value))
        try:
            request = h11.Request(method=method, target=path, headers=all_headers)
        except h11.LocalProtocolError as exc:
            raise UpstreamProtocolError(f"invalid request: {exc}") from None
        return self._send(request)

    def encode_data(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._send(h11.Data(data=data))

    def encode_end(self) -> bytes:
        return self._send(h11.EndOfMessage())

    def _send(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> bytes:
        try:
            out = self._conn.send(event)
        except h11.LocalProtocolError as exc:
            raise UpstreamProtocolError(f"invalid request: {exc}") from None
        return out or b""

    def receive(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._drain()

    def receive_eof(self) -> bool:
        conn = self._conn
        if conn.their_state is not h11.SEND_BODY:
            return False
        conn.receive_data(b"")
        try:
            self._drain()
        except UpstreamProtocolError:
            return False  # the body was framed and got cut: a reset, not an end
        return bool(conn.states[h11.SERVER] is h11.DONE)

    def _drain(self) -> None:
        conn = self._conn
        sink = self._sink
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if "too long" in str(exc).lower():
                    raise _too_large(self._max_header_bytes) from None
                raise UpstreamProtocolError(f"malformed upstream response: {exc}") from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Data):
                sink.on_response_data(bytes(event.data))
            elif isinstance(event, h11.Response):
                headers = list(event.headers)
                if sum(len(k) + len(v) + 4 for k, v in headers) > self._max_header_bytes:
                    raise _too_large(self._max_header_bytes)
                sink.on_response_head(event.status_code, headers)
            elif isinstance(event, h11.EndOfMessage):
                sink.on_response_end()
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    raise UpstreamProtocolError("upstream switched protocols unasked")
            elif isinstance(event, h11.ConnectionClosed):
                return

    @property
    def reusable(self) -> bool:
        conn = self._conn
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def next_cycle(self) -> None:
        self._conn.start_next_cycle()


def make_codec(name: CodecName, sink: ResponseSink, max_header_bytes: int) -> Http1ClientCodec:
    """``auto`` is httptools: same behaviour as h11 on every test, several times faster."""
    if name == "h11":
        return H11Codec(sink, max_header_bytes)
    return HttptoolsCodec(sink, max_header_bytes)
