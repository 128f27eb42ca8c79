"""The receive core shared by the two HTTP/1.1 server codecs (llhttp via httptools, and h11).

How this works: the core owns everything both codecs must do identically and leaves each
library only the part it is good at; the response side lives in `http1_response`.

The core frames the byte stream itself: it finds each request head (the bytes up
to the first blank line), bounds it by ``max_header_bytes`` and ``max_header_count`` while the
bytes arrive, checks the request line, and hands the complete head to the library
(``_parse_head``) for header parsing and validation. It then interprets the framing headers
with one set of rules (Content-Length, Transfer-Encoding, Host, Connection, Expect) and frames
Content-Length bodies by slicing. Chunked bodies go back to the library
(``_receive_chunked``) which must stop exactly at the end of the message, so the core always
knows where the next request starts. States: IDLE -> HEAD (partial head buffered) -> BODY_CL
or BODY_CHUNKED -> IDLE, or INPUT_CLOSED once no further request may be read (the client asked
to close, or the output side decided to close), or DEAD after a protocol error.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from proxy.errors import (
    DownstreamProtocolError,
    RequestBodyTooLargeError,
    RequestHeadersTooLargeError,
)
from proxy.events import Event, RequestData, RequestHeaders
from proxy.headers import Headers
from proxy.protocol.http1_response import Exchange, Http1ResponseSide
from proxy.protocol.limits import CodecLimits

# Receive states.
_IDLE: Final = 0
_HEAD: Final = 1
_BODY_CL: Final = 2
_BODY_CHUNKED: Final = 3
_INPUT_CLOSED: Final = 4
_DEAD: Final = 5

_HTTP11: Final = b"HTTP/1.1"
_HTTP10: Final = b"HTTP/1.0"
_VERSION_SHAPE: Final = re.compile(rb"HTTP/[0-9]\.[0-9]")
# Methods an LLM API gateway serves. CONNECT and TRACE belong to forward proxies and debugging.
_METHODS: Final = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
FRAMING_HEADERS: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
)


def bad_request(message: str, status: int = 400) -> DownstreamProtocolError:
    return DownstreamProtocolError(message, status=status)


def underscore_error() -> DownstreamProtocolError:
    # Some upstreams treat "_" and "-" alike, so x_api_key could smuggle a second x-api-key.
    return bad_request("underscore in header name")


class Http1ServerCodecBase(Http1ResponseSide):
    """The ServerCodec for HTTP/1.1, minus the three library hooks subclasses provide."""

    alpn = "http/1.1"

    def __init__(self, limits: CodecLimits) -> None:
        super().__init__()
        self._max_head = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        # A header line takes at least 4 bytes ("a:" CRLF), a request line at least 16: a head
        # no longer than this cannot hold too many headers, so it is not counted.
        self._count_free_head = 18 + 4 * limits.max_header_count
        self._max_body = limits.max_body_bytes
        self._rstate = _IDLE
        self._partial = bytearray()  # an incomplete head, at most max_header_bytes
        self._next_stream_id = 1
        self._cur: Exchange | None = None  # the exchange whose request is being received
        self._body_left = 0  # Content-Length bytes still to come
        self._body_total = 0  # chunked body bytes so far
        self._chunked_consumed = 0  # chunked bytes so far, framing included

    # ---- library hooks -------------------------------------------------------------------

    def _parse_head(self, head: bytes) -> tuple[Headers, Headers]:
        """Parse and validate a complete head. Return its headers (names lower-case, values
        without surrounding whitespace) and the subset whose names are in FRAMING_HEADERS.
        Raise DownstreamProtocolError on anything invalid, including an underscore in a name.
        """
        raise NotImplementedError

    def _start_chunked(self) -> None:
        """A chunked body starts after the head just parsed."""
        raise NotImplementedError

    def _receive_chunked(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Consume chunked body bytes from ``data[pos:]``; return the new position. Call
        ``_body_bytes`` for data and ``_chunked_done`` exactly at the end of the message."""
        raise NotImplementedError

    # ---- receiving -----------------------------------------------------------------------

    @property
    def receiving(self) -> Literal["idle", "headers", "body"]:
        st = self._rstate
        if st == _HEAD:
            return "headers"
        if st in (_BODY_CL, _BODY_CHUNKED):
            return "body"
        return "idle"

    @property
    def pipelined(self) -> int:
        return len(self._exchanges)

    def receive(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if self._rstate >= _INPUT_CLOSED:
            return events  # dead, or closing: later bytes are never read as requests
        try:
            self._receive(data, events)
        except DownstreamProtocolError:
            self._rstate = _DEAD
            self._must_close = True
            self._partial.clear()
            self._cur = None
            raise
        return events

    def _receive(self, data: bytes, events: list[Event]) -> None:
        pos = 0
        n = len(data)
        while pos < n:
            st = self._rstate
            if st == _IDLE and data[pos] != 13:
                # The common case: a whole head at a request boundary, found without copying.
                end = data.find(b"\r\n\r\n", pos, pos + self._max_head)
                if end < 0:
                    pos = self._receive_head(data, pos, events)
                else:
                    end += 4
                    self._on_head(data if pos == 0 and end == n else data[pos:end], events)
                    pos = end
            elif st == _BODY_CL:
                cur = self._cur
                assert cur is not None
                left = self._body_left
                take = n - pos
                if take > left:
                    take = left
                chunk = data if take == n else data[pos : pos + take]
                pos += take
                left -= take
                self._body_left = left
                cur.body_started = True
                events.append(RequestData(cur.stream_id, chunk, not left))
                if not left:
                    self._request_done(cur)
            elif st == _BODY_CHUNKED:
                start = pos
                pos = self._receive_chunked(data, pos, events)
                self._chunked_consumed += pos - start
                if pos >= n or self._rstate != _BODY_CHUNKED:
                    self._check_chunked_framing()
            elif st in (_IDLE, _HEAD):
                pos = self._receive_head(data, pos, events)
            else:
                return

    def _check_chunked_framing(self) -> None:
        # Size lines, extensions and trailers are bounded as a whole, relative to the body.
        # Both codecs check at the same points (message end, end of a read) with exact counts.
        overhead = self._chunked_consumed - self._body_total
        if overhead > self._max_head + self._body_total:
            raise bad_request("chunked framing overhead too large")

    def _receive_head(self, data: bytes, pos: int, events: list[Event]) -> int:
        n = len(data)
        max_head = self._max_head
        partial = self._partial
        if partial:
            if partial == b"\r" and data[pos] == 10:  # a blank line split across reads
                partial.clear()
                self._rstate = _IDLE
                return pos + 1
            seen = len(partial)
            partial += data[pos : pos + max_head - seen]
            end = partial.find(b"\r\n\r\n", max(0, seen - 3))
            if end < 0:
                self._check_partial_head()
                return n
            head = bytes(partial[: end + 4])
            partial.clear()
            pos += end + 4 - seen
        else:
            # RFC 9112 section 2.2: ignore empty lines before a request line.
            while data.startswith(b"\r\n", pos):
                pos += 2
            if pos >= n:
                return n
            end = data.find(b"\r\n\r\n", pos, pos + max_head)
            if end < 0:
                partial += data[pos : pos + max_head]
                self._rstate = _HEAD
                self._check_partial_head()
                return n
            head = data[pos : end + 4]
            pos = end + 4
        self._rstate = _IDLE
        self._on_head(head, events)
        return pos

    def _check_partial_head(self) -> None:
        partial = self._partial
        if len(partial) >= self._max_head:
            raise RequestHeadersTooLargeError(
                f"request head exceeds {self._max_head} bytes", status=431
            )
        if partial.count(b"\n") != partial.count(b"\r\n"):
            raise bad_request("bare LF in request head")
        if partial.count(b"\r\n") > self._max_header_count + 1:
            raise RequestHeadersTooLargeError("too many request headers", status=431)

    def _on_head(self, head: bytes, events: list[Event]) -> None:
        # One LF ends the request line and one the head: the rest are header lines. Counted
        # before any parsing so thousands of tiny headers cost no per-header work.
        if len(head) > self._count_free_head and head.count(10) - 2 > self._max_header_count:
            raise RequestHeadersTooLargeError("too many request headers", status=431)
        parts = head[: head.find(b"\r\n")].split(b" ")
        if len(parts) != 3:
            raise bad_request("malformed request line")
        method, target, version = parts
        if version == _HTTP11:
            http10 = False
        elif version == _HTTP10:
            http10 = True
        elif _VERSION_SHAPE.fullmatch(version):
            raise bad_request("unsupported HTTP version", 505)
        else:
            raise bad_request("malformed HTTP version")
        if method not in _METHODS:
            if method.isalpha() and method.isupper():
                raise bad_request("method not implemented", 501)
            raise bad_request("malformed method")
        if not target.startswith(b"/") and not (target == b"*" and method == b"OPTIONS"):
            # absolute-form and authority-form are for forward proxies; we are not one
            raise bad_request("request target must be origin-form")
        headers, framing = self._parse_head(head)

        host: bytes | None = None
        length: bytes | None = None
        chunked = False
        close = False
        keep_alive = False
        expect = False
        for name, value in framing:
            if name == b"host":
                if host is not None:
                    raise bad_request("duplicate Host header")
                host = value
            elif name == b"content-length":
                if length is not None:
                    raise bad_request("duplicate Content-Length header")
                if not value.isdigit() or len(value) > 19:  # 19 digits fit in 63 bits
                    raise bad_request("invalid Content-Length")
                length = value
            elif name == b"transfer-encoding":
                if chunked or value.lower() != b"chunked":
                    raise bad_request("unsupported Transfer-Encoding")
                chunked = True
            elif name == b"connection":
                for token in value.lower().split(b","):
                    token = token.strip(b" \t")
                    if token == b"close":
                        close = True
                    elif token == b"keep-alive":
                        keep_alive = True
            else:  # expect
                expect = value.lower() == b"100-continue"
        if host is None and not http10:
            raise bad_request("missing Host header")
        content_length: int | None = None
        if chunked:
            if length is not None:
                raise bad_request("both Content-Length and Transfer-Encoding")
            if http10:
                raise bad_request("Transfer-Encoding in an HTTP/1.0 request")
        elif length is not None:
            content_length = int(length)
            if content_length > self._max_body:
                raise RequestBodyTooLargeError(
                    f"request body exceeds {self._max_body} bytes", status=413
                )

        sid = self._next_stream_id
        self._next_stream_id = sid + 1
        has_body = chunked or bool(content_length)
        ex = Exchange(
            sid,
            method == b"HEAD",
            http10,
            close or (http10 and not keep_alive),
            expect and has_body and not http10,
            self._draining,
        )
        self._exchanges.append(ex)
        events.append(
            RequestHeaders(
                sid,
                method,
                target,
                host if host is not None else b"",
                headers,
                not has_body,
                ex.expect_continue,
                content_length,
            )
        )
        if chunked:
            self._cur = ex
            self._body_total = 0
            self._chunked_consumed = 0
            self._rstate = _BODY_CHUNKED
            self._start_chunked()
        elif has_body:
            assert content_length is not None
            self._cur = ex
            self._body_left = content_length
            self._rstate = _BODY_CL
        else:
            self._request_done(ex)

    def _request_done(self, ex: Exchange) -> None:
        ex.request_done = True
        self._cur = None
        if self._rstate != _INPUT_CLOSED:
            self._rstate = _INPUT_CLOSED if ex.close_requested else _IDLE

    def _body_bytes(self, data: bytes, events: list[Event]) -> None:
        """Chunked body bytes decoded by the library. Call ``_check_body_total`` after."""
        cur = self._cur
        assert cur is not None
        self._body_total += len(data)
        cur.body_started = True
        events.append(RequestData(cur.stream_id, data, False))

    def _check_body_total(self) -> None:
        if self._body_total > self._max_body:
            raise RequestBodyTooLargeError(
                f"request body exceeds {self._max_body} bytes", status=413
            )

    def _chunked_done(self, events: list[Event]) -> None:
        cur = self._cur
        assert cur is not None
        cur.body_started = True
        events.append(RequestData(cur.stream_id, b"", True))
        self._request_done(cur)

    # ---- hooks for the response side -----------------------------------------------------

    def _stop_input(self) -> None:
        self._partial.clear()
        self._cur = None  # a request still arriving is abandoned
        if self._rstate != _DEAD:
            self._rstate = _INPUT_CLOSED

    def _between_requests(self) -> bool:
        return self._rstate != _HEAD and self._cur is None
