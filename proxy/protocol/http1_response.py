"""The response side of the HTTP/1.1 server codecs: ordering, framing, keep-alive.

How this works: each request head creates an `Exchange` at the back of a queue; responses are
written strictly for the exchange at the front. ``send_headers`` picks the body framing once
(Content-Length when the caller gave one or the response is empty, chunked for HTTP/1.1,
close-delimited for HTTP/1.0, none for HEAD, 204 and 304) and whether the connection closes
after this response (``connection: close`` is then written). When the response finishes the
exchange leaves the queue; if it had to close, or draining started, or its request was not
fully read, the output side closes: ``keep_alive`` turns False, later responses are dropped
and the receive side stops reading requests.

Output is a list of byte strings joined once by ``data_to_send``, so a head and a body sent
in the same turn leave as one write.
"""

from __future__ import annotations

from collections import deque
from http import HTTPStatus
from typing import Final

from proxy.headers import Headers

# Response body framing of an exchange.
_OUT_NONE: Final = 0
_OUT_LENGTH: Final = 1
_OUT_CHUNKED: Final = 2
_OUT_CLOSE: Final = 3  # close-delimited, for HTTP/1.0 clients
_OUT_EMPTY: Final = 4  # HEAD requests, 204 and 304: never a body

# Response headers the codec writes itself; a caller's copy is dropped rather than doubled.
_OWN_RESPONSE_HEADERS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"keep-alive"}
)
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"
_CRLF: Final = b"\r\n"
_COLON: Final = b": "
_END_PLAIN: Final = b"\r\n"
_END_CLOSE: Final = b"connection: close\r\n\r\n"
_END_KEEP_ALIVE_10: Final = b"connection: keep-alive\r\n\r\n"


def _build_status_lines() -> tuple[bytes | None, ...]:
    # Indexed by status code: a tuple index is the cheapest lookup there is.
    lines: list[bytes | None] = [None] * 600
    for s in HTTPStatus:
        lines[s.value] = b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode())
    return tuple(lines)


_STATUS_LINES: Final = _build_status_lines()


def status_line(status: int) -> bytes:
    line = _STATUS_LINES[status] if 0 <= status < 600 else None
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class Exchange:
    """One request and its response, from the request head until the response is complete.

    Made with the defaults of an HTTP/1.1 keep-alive exchange; the receive side sets only
    what differs.
    """

    __slots__ = (
        "body_started",
        "close_after",
        "close_requested",
        "continue_sent",
        "expect_continue",
        "head_request",
        "head_sent",
        "http10",
        "keep_alive_10",
        "out_left",
        "out_mode",
        "request_done",
        "stream_id",
    )

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.head_request = False
        self.http10 = False
        self.close_requested = False
        self.keep_alive_10 = False  # an HTTP/1.0 client that asked for keep-alive
        self.expect_continue = False
        self.close_after = False  # the connection closes once this response is complete
        self.body_started = False
        self.request_done = False
        self.continue_sent = False
        self.head_sent = False
        self.out_mode = _OUT_NONE
        self.out_left = 0  # Content-Length bytes of the response still to send


class Http1ResponseSide:
    """Response half of the codec; the receive half supplies the two input hooks."""

    def __init__(self) -> None:
        # Unanswered exchanges, oldest first: the one being answered is an attribute of its
        # own, so that a response's every chunk reads it from here rather than from a
        # deque's separate block of memory (a cache miss per event under load).
        self._oldest: Exchange | None = None
        self._later: deque[Exchange] = deque()
        self._out: list[bytes] = []
        self._out_closed = False
        # False once the connection must close after what is queued. A plain attribute (the
        # ServerCodec property, read after every response) set where output closes.
        self.keep_alive = True
        self._draining = False

    def _stop_input(self) -> None:
        """The connection will close: read no further requests."""
        raise NotImplementedError

    def _between_requests(self) -> bool:
        """No request is partly received."""
        raise NotImplementedError

    def _add_exchange(self, ex: Exchange) -> None:
        if self._oldest is None:
            self._oldest = ex
        else:
            self._later.append(ex)

    def _pop_oldest(self) -> None:
        later = self._later
        self._oldest = later.popleft() if later else None

    def send_continue(self, stream_id: int) -> None:
        ex = self._oldest
        if self._out_closed or ex is None:
            return
        if (
            ex.stream_id == stream_id
            and ex.expect_continue
            and not (ex.continue_sent or ex.body_started or ex.request_done or ex.head_sent)
        ):
            ex.continue_sent = True
            self._out.append(_CONTINUE)

    def send_headers(self, stream_id: int, status: int, headers: Headers, end_stream: bool) -> None:
        if self._out_closed:
            return  # the connection is closing; later responses are dropped
        ex = self._oldest
        if ex is None or ex.stream_id != stream_id:
            raise ValueError(f"stream {stream_id} is not the oldest unanswered request")
        if ex.head_sent:
            raise ValueError(f"response for stream {stream_id} already started")
        if status < 200:
            self._send_informational(ex, status, headers)
            return
        parts = [(_STATUS_LINES[status] if status < 600 else None) or status_line(status)]
        length: bytes | None = None
        own = _OWN_RESPONSE_HEADERS
        for name, value in headers:
            if name in own:
                if name != b"content-length":
                    continue
                length = value
            parts += (name, _COLON, value, _CRLF)
        lines = len(parts) // 4 + 2  # status line, headers, the final blank line
        if ex.head_request or status == 204 or status == 304:
            ex.out_mode = _OUT_EMPTY
        elif length is not None:
            ex.out_mode = _OUT_LENGTH
            ex.out_left = int(length)
        elif end_stream:
            ex.out_mode = _OUT_LENGTH
            parts.append(b"content-length: 0\r\n")
            lines += 1
        elif not ex.http10:
            ex.out_mode = _OUT_CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        else:
            ex.out_mode = _OUT_CLOSE
            ex.close_after = True
        if ex.expect_continue and not (ex.continue_sent or ex.body_started or ex.request_done):
            ex.close_after = True  # the body was never asked for, so it will never be read
        if ex.close_after or ex.close_requested or self._draining:
            ex.close_after = True
            parts.append(_END_CLOSE)
            lines += 1
        elif ex.keep_alive_10:
            parts.append(_END_KEEP_ALIVE_10)
            lines += 1
        else:
            parts.append(_END_PLAIN)
        head = b"".join(parts)
        # We generate exactly ``lines`` CRLFs; any other CR or LF came from a header name or
        # value and would split the response (int needles keep these counts cheap).
        if head.count(10) != lines or head.count(13) != lines:
            raise ValueError("CR or LF in a response header")
        self._out.append(head)
        ex.head_sent = True
        if end_stream:
            self._finish(ex)

    def _send_informational(self, ex: Exchange, status: int, headers: Headers) -> None:
        if status == 101:
            raise ValueError("HTTP/1.1 upgrades are not supported")
        if ex.http10:
            return  # HTTP/1.0 clients do not understand 1xx responses
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, _COLON, value, _CRLF)
        lines = len(parts) // 4 + 2
        parts.append(_CRLF)
        self._write_head(parts, lines)

    def _write_head(self, parts: list[bytes], lines: int) -> None:
        head = b"".join(parts)
        if head.count(10) != lines or head.count(13) != lines:
            raise ValueError("CR or LF in a response header")
        self._out.append(head)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if self._out_closed:
            return
        ex = self._oldest
        if ex is None or ex.stream_id != stream_id:
            raise ValueError(f"stream {stream_id} is not the oldest unanswered request")
        mode = ex.out_mode
        if mode == _OUT_LENGTH:
            if data:
                left = ex.out_left - len(data)
                if left < 0:
                    raise ValueError("response body longer than its Content-Length")
                self._out.append(data)
                ex.out_left = left
            if end_stream:
                # The common end: a whole Content-Length body on a connection kept alive.
                self._pop_oldest()
                if ex.out_left or ex.close_after or self._draining or not ex.request_done:
                    self._close_output()
            return
        if mode == _OUT_CHUNKED:
            out = self._out
            if data:
                out += (b"%x\r\n" % len(data), data, _CRLF)
            if end_stream:
                out.append(_LAST_CHUNK)
        elif mode == _OUT_NONE:
            raise ValueError(f"send_data before send_headers on stream {stream_id}")
        elif mode == _OUT_CLOSE and data:
            self._out.append(data)
        if end_stream:
            self._finish(ex)

    def _finish(self, ex: Exchange) -> None:
        self._pop_oldest()
        if (
            ex.close_after
            or self._draining
            or not ex.request_done
            or (ex.out_mode == _OUT_LENGTH and ex.out_left)
        ):
            self._close_output()

    def _close_output(self) -> None:
        self._out_closed = True
        self.keep_alive = False
        self._stop_input()

    def send_error_response(self, status: int, headers: Headers, body: bytes) -> bool:
        if self._out_closed:
            return False
        oldest = self._oldest
        if oldest is not None and oldest.head_sent:
            self._close_output()  # a response is half written: all we can do is close
            return False
        parts = [status_line(status)]
        for name, value in headers:
            if name not in _OWN_RESPONSE_HEADERS:
                parts += (name, _COLON, value, _CRLF)
        lines = len(parts) // 4 + 4
        parts.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self._write_head(parts, lines)
        if body:
            self._out.append(body)
        self._oldest = None
        self._later.clear()
        self._close_output()
        return True

    def pending_bytes(self, stream_id: int) -> int:
        return 0

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        return None

    def reset_stream(self, stream_id: int) -> None:
        # HTTP/1.1 cannot abort one exchange: the connection closes after what is queued.
        self._close_output()

    def start_drain(self) -> None:
        self._draining = True
        if self.idle:
            self._close_output()

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    @property
    def idle(self) -> bool:
        return self._oldest is None and self._between_requests()
