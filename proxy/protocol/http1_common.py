"""The receive core shared by the two HTTP/1.1 server codecs (llhttp via httptools, and h11).

How this works: the core owns everything both codecs must do identically and leaves each
library only the part it is good at; the response side lives in `http1_response`, the checks
of a head's request line and framing headers in `http1_head`.

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

The hot path is a keep-alive client repeating its head, the body length aside: such a head
matches the last one that passed every check (`HeadTemplate`) and is neither searched for nor
parsed again. When its body arrived in the same read it is consumed at once, so the request
never leaves IDLE. ``receiving`` is a plain attribute kept in step with the state, because the
connection reads it after every read.
"""

from __future__ import annotations

from typing import Final, Literal

from proxy.errors import (
    DownstreamProtocolError,
    RequestBodyTooLargeError,
    RequestHeadersTooLargeError,
)
from proxy.events import Event, RequestData, RequestHeaders
from proxy.headers import Headers
from proxy.protocol.http1_head import (
    HeadFields,
    HeadTemplate,
    bad_request,
    check_framing,
    check_request_line,
)
from proxy.protocol.http1_response import Exchange, Http1ResponseSide
from proxy.protocol.limits import CodecLimits

# Receive states.
_IDLE: Final = 0
_HEAD: Final = 1
_BODY_CL: Final = 2
_BODY_CHUNKED: Final = 3
_INPUT_CLOSED: Final = 4
_DEAD: Final = 5

# Making a template costs a quarter of a parse, trying one a twentieth. Only the first head
# after one matched becomes the next template, and once TEMPLATE_MAX_MISSES heads in a row
# missed, none is tried; either way every TEMPLATE_RETRY-th head becomes one again.
TEMPLATE_MAX_MISSES: Final = 8
TEMPLATE_RETRY: Final = 64


class Http1ServerCodecBase(Http1ResponseSide):
    """The ServerCodec for HTTP/1.1, minus the three library hooks subclasses provide.

    Besides the ServerCodec API: ``receiving`` ("idle" | "headers" | "body": which timeout
    the connection should arm) and ``pipelined`` (requests whose response is not complete).
    """

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
        self.receiving: Literal["idle", "headers", "body"] = "idle"
        self._partial = bytearray()  # an incomplete head, at most max_header_bytes
        self._next_stream_id = 1
        self._cur: Exchange | None = None  # the exchange whose request body is being received
        self._body_left = 0  # Content-Length bytes still to come
        self._body_total = 0  # chunked body bytes so far
        self._chunked_consumed = 0  # chunked bytes so far, framing included
        self._template: HeadTemplate | None = None
        self._template_misses = 0  # heads checked the long way since one matched the template

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
    def pipelined(self) -> int:
        return 0 if self._oldest is None else 1 + len(self._later)

    def receive(self, data: bytes, now: float) -> list[Event]:
        events: list[Event] = []
        if self._rstate >= _INPUT_CLOSED:
            return events  # dead, or closing: later bytes are never read as requests
        pos = 0
        n = len(data)
        try:
            while pos < n:
                st = self._rstate
                if st == _IDLE and data[pos] != 13:
                    # The common case: a whole head at a request boundary, found in place.
                    tpl = self._template
                    if tpl is not None and data.startswith(tpl.before, pos):
                        # The last head again, but for the Content-Length digits?
                        end = pos + tpl.size
                        length: bytes | None = None
                        matched = True
                        if tpl.length_index >= 0:
                            # The digits (19 at most) run up to the tail, which starts with
                            # whitespace or CRLF: the first tail found after them is theirs.
                            stop = data.find(tpl.after, end, end + 19 + tpl.after_size)
                            matched = stop > end
                            if matched:
                                length = data[end:stop]
                                end = stop + tpl.after_size
                                matched = length.isdigit() and end - pos <= self._max_head
                        if matched:
                            self._template_misses = 0
                            headers = tpl.headers.copy()
                            if length is not None:
                                headers[tpl.length_index] = (b"content-length", length)
                            pos = self._start(data, end, tpl.fields, headers, False, length, events)
                            continue
                    end = data.find(b"\r\n\r\n", pos, pos + self._max_head)
                    if end < 0:
                        pos = self._receive_head(data, pos, events)
                    else:
                        pos = self._on_head(data, pos, end + 4, events)
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
                elif st <= _HEAD:
                    pos = self._receive_head(data, pos, events)
                else:
                    break
        except DownstreamProtocolError:
            self._rstate = _DEAD
            self.receiving = "idle"
            self.keep_alive = False
            self._partial.clear()
            self._cur = None
            raise
        return events

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
                self.receiving = "idle"
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
                self.receiving = "headers"
                self._check_partial_head()
                return n
            head = data[pos : end + 4]
            pos = end + 4
        self._rstate = _IDLE
        self.receiving = "idle"
        self._on_head(head, 0, len(head), events)  # a body is in data, for the caller's loop
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

    def _on_head(self, buf: bytes, start: int, end: int, events: list[Event]) -> int:
        """Check the complete head ``buf[start:end]`` the long way, keep it as the template
        for the next one, and start its request (see `_start`)."""
        head = buf if start == 0 and end == len(buf) else buf[start:end]
        # One LF ends the request line and one the head: the rest are header lines. Counted
        # before any parsing so thousands of tiny headers cost no per-header work.
        if len(head) > self._count_free_head and head.count(10) - 2 > self._max_header_count:
            raise RequestHeadersTooLargeError("too many request headers", status=431)
        method, target, http10 = check_request_line(head[: head.find(b"\r\n")])
        headers, framing = self._parse_head(head)
        host, close, keep_alive, expect, chunked, length = check_framing(framing, http10)
        # "plain": an HTTP/1.1 keep-alive request that is not HEAD and expects nothing.
        plain = not (http10 or close or expect or method == b"HEAD")
        fields = (method, target, host, plain, http10, close, keep_alive, expect)
        if not chunked:  # a chunked head is never a template, nor does it drop one
            misses = self._template_misses + 1
            self._template_misses = misses
            if misses == 1 or not self._next_stream_id % TEMPLATE_RETRY:
                self._template = HeadTemplate.of(head, headers, fields, length)
            elif misses > TEMPLATE_MAX_MISSES:
                self._template = None  # this client's heads keep changing: stop matching
        return self._start(buf, end, fields, headers, chunked, length, events)

    def _start(
        self,
        buf: bytes,
        end: int,
        fields: HeadFields,
        headers: Headers,
        chunked: bool,
        length: bytes | None,
        events: list[Event],
    ) -> int:
        """Start the request of a checked head that ends at ``buf[end]``. Consume its
        Content-Length body when all of it follows in ``buf``; return the position after
        what was consumed. The state is IDLE on entry."""
        method, target, host, plain, http10, close, keep_alive, expect = fields
        content_length: int | None = None
        if length is not None:
            content_length = int(length)
            if content_length > self._max_body:
                raise RequestBodyTooLargeError(
                    f"request body exceeds {self._max_body} bytes", status=413
                )

        sid = self._next_stream_id
        self._next_stream_id = sid + 1
        ex = Exchange(sid)
        if not plain:  # only what differs from a plain exchange is set
            if method == b"HEAD":
                ex.head_request = True
            if http10:
                ex.http10 = True
                if close or not keep_alive:
                    ex.close_requested = True
                else:
                    ex.keep_alive_10 = True
            else:
                if close:
                    ex.close_requested = True
                if expect and (chunked or content_length):
                    ex.expect_continue = True
        if self._draining:
            ex.close_after = True
        self._add_exchange(ex)

        if content_length:
            events.append(
                RequestHeaders(
                    sid, method, target, host, headers, False, ex.expect_continue, content_length
                )
            )
            stop = end + content_length
            if stop > len(buf):  # the rest of the body comes in later reads
                self._cur = ex
                self._body_left = content_length
                self._rstate = _BODY_CL
                self.receiving = "body"
                return end
            ex.body_started = True
            events.append(RequestData(sid, buf[end:stop], True))
            end = stop
        elif chunked:
            events.append(
                RequestHeaders(sid, method, target, host, headers, False, ex.expect_continue, None)
            )
            self._cur = ex
            self._body_total = 0
            self._chunked_consumed = 0
            self._rstate = _BODY_CHUNKED
            self.receiving = "body"
            self._start_chunked()
            return end
        else:
            events.append(
                RequestHeaders(sid, method, target, host, headers, True, False, content_length)
            )
        ex.request_done = True
        if ex.close_requested:
            self._rstate = _INPUT_CLOSED
        return end

    def _request_done(self, ex: Exchange) -> None:
        ex.request_done = True
        self._cur = None
        self.receiving = "idle"
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
        self.receiving = "idle"
        if self._rstate != _DEAD:
            self._rstate = _INPUT_CLOSED

    def _between_requests(self) -> bool:
        return self._rstate != _HEAD and self._cur is None
