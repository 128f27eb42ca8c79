"""Sans-I/O HTTP/1.1 client codecs: serialise one request, parse its response.

How this works: a connection owns one codec and runs one exchange at a time on it. For each
exchange it calls ``encode_request`` once (the head plus whatever body is already known; the
same as ``encode_head`` followed by ``encode_data`` per chunk and, with ``end_stream``,
``encode_end``), then ``encode_data`` per later body chunk and ``encode_end`` when the request
is complete, writing what they return. Received bytes go to ``receive``, which calls the
`ResponseSink` synchronously: ``on_response_head`` once (1xx interim responses are skipped),
``on_response_data`` per body piece as it arrives and ``on_response_end``. Before
``on_response_end`` the codec sets ``reusable`` (whether the connection may carry another
exchange) and readies itself for the next one, so the sink may start the next exchange from
inside that call. When the peer closes, ``receive_eof`` says whether that EOF completed a
close-delimited body.

Two implementations sit behind that interface: `HttptoolsCodec` (llhttp; the fast path) and
`H11Codec` (http1_h11.py; pure Python, strict). Both raise `UpstreamProtocolError` on bad
bytes, on headers over the size bound, and when the request body disagrees with its declared
length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import httptools

from proxy.errors import UpstreamProtocolError
from proxy.headers import Headers

CodecName = Literal["auto", "httptools", "h11"]

# Methods whose empty body is announced with ``content-length: 0`` (servers may otherwise wait
# for a body or answer 411).
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_NO_BODY_STATUS = frozenset({204, 304})
_HEX_DIGITS = b"0123456789abcdefABCDEF"
# A chunk-size line the fast path reads itself: hex digits only, as many as a 64-bit size has.
_MAX_CHUNK_SIZE_DIGITS = 16


class ResponseSink(Protocol):
    def on_response_head(self, status: int, headers: Headers) -> None: ...

    def on_response_data(self, data: bytes) -> None: ...

    def on_response_end(self) -> None: ...


class DetachedSink:
    """The sink of a codec whose connection is gone: drops whatever still arrives. Swapping
    it in (`Http1ClientCodec.detach`) breaks the connection -> codec -> sink cycle, so
    reference counting frees a closed connection at once instead of the cyclic collector."""

    __slots__ = ()

    def on_response_head(self, status: int, headers: Headers) -> None:
        pass

    def on_response_data(self, data: bytes) -> None:
        pass

    def on_response_end(self) -> None:
        pass


class Http1ClientCodec(Protocol):
    def encode_request(
        self,
        method: bytes,
        path: bytes,
        authority: bytes,
        headers: Headers,
        body: Sequence[bytes],
        end_stream: bool,
    ) -> bytes:
        """The request line and headers, framing chosen from ``headers`` and ``end_stream``,
        then ``body`` framed, then the end of the request when ``end_stream``."""
        ...

    def encode_head(
        self, method: bytes, path: bytes, authority: bytes, headers: Headers, end_stream: bool
    ) -> bytes:
        """``encode_request`` without a body."""
        ...

    def encode_data(self, data: bytes) -> bytes: ...

    def encode_end(self) -> bytes: ...

    def receive(self, data: bytes) -> None: ...

    def receive_eof(self) -> bool:
        """The peer closed. True when that completed the response (close-delimited body)."""
        ...

    @property
    def reusable(self) -> bool:
        """Inside and after on_response_end: the exchange allows another on this connection."""
        ...

    def detach(self) -> None:
        """The connection closed for good: forget the sink (see `DetachedSink`)."""
        ...


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


def too_large(limit: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"upstream response headers exceed {limit} bytes")


def _field_bytes(fields: Headers) -> int:
    """How much a header block weighs against the bound: each field plus ``: `` and CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in fields)


class _HeadResponseDone(Exception):
    """Raised out of llhttp after a HEAD response's headers: it has no body to wait for."""


class HttptoolsCodec:
    """llhttp via httptools. The parser lives as long as the connection (llhttp parses one
    response after another), except after HEAD, which llhttp cannot be told about.

    The header bound costs nothing per header: while the bytes received since the response
    began stay within it, so does the head. Only a read that takes the count past the bound
    (a large head, or a first read holding much of the body) weighs the fields one by one.
    Chunked trailers, which arrive after the head, are weighed after each read.

    A streamed answer arrives as one small chunk per read (an SSE event each). Once llhttp has
    finished a chunk (`on_chunk_complete`) and nothing has come since, it is waiting for the
    next chunk-size line, and a read made of whole chunks leaves it in that very state:
    `_whole_chunks` hands such chunks to the sink itself (a plain hex size, its bytes, CRLF)
    and feeds llhttp only what is left from the first thing it does not read itself (the last
    chunk, extensions, a chunk cut by the read, garbage), so llhttp's framing, strictness and
    end-of-message handling stay in charge.
    """

    __slots__ = (
        "_authority",
        "_body_left",
        "_boundary",
        "_chunked",
        "_close_delimited",
        "_exact_head",
        "_headers",
        "_headers_done",
        "_is_head",
        "_keep_alive",
        "_max_header_bytes",
        "_on_end",
        "_on_head",
        "_parser",
        "_raw_bytes",
        "_request_line_tail",
        "_trailer_bytes",
        "_trailers_weighed",
        "on_body",
        "reusable",
    )

    def __init__(self, sink: ResponseSink, max_header_bytes: int) -> None:
        self._on_head = sink.on_response_head
        self._on_end = sink.on_response_end
        # llhttp calls on_body straight into the sink: it never hands over an empty piece.
        self.on_body: Callable[[bytes], None] = sink.on_response_data
        self._max_header_bytes = max_header_bytes
        self._parser = httptools.HttpResponseParser(self)
        self._authority = b""
        self._request_line_tail = b" HTTP/1.1\r\nhost: \r\n"
        self._headers: Headers = []  # the head's fields, then a chunked body's trailers
        self._trailer_bytes = 0
        self._trailers_weighed = 0
        self._raw_bytes = 0  # received since this response began, while its head is incomplete
        self._exact_head = False  # a 1xx ended mid-read: _raw_bytes undercounts the final head
        self._headers_done = False
        self._keep_alive = False
        self._close_delimited = False
        self._is_head = False
        self._chunked = False
        self._body_left = 0
        self._boundary = False  # llhttp has just finished a body chunk: see _whole_chunks
        self.reusable = False

    # -- request direction --------------------------------------------------------------
    def encode_request(
        self,
        method: bytes,
        path: bytes,
        authority: bytes,
        headers: Headers,
        body: Sequence[bytes],
        end_stream: bool,
    ) -> bytes:
        if authority is not self._authority:
            self._set_authority(authority)
        # Laid out so that every CR or LF we add sits at an odd index: the even ones are the
        # method, the path and each name and value, checked in one piece below.
        parts = [method, b" ", path, self._request_line_tail]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        fields = b"".join(parts[::2])
        if 13 in fields or 10 in fields or 0 in fields:  # request splitting: CR, LF, NUL
            raise UpstreamProtocolError("request head contains CR, LF or NUL")
        names = parts[4::4]
        if b"content-length" in names:  # the first one wins, as with request_framing
            value = parts[4 * names.index(b"content-length") + 6]
            try:
                left = int(value)
            except ValueError:
                left = -1
            if left < 0:
                raise UpstreamProtocolError("request content-length is not a number")
            parts.append(b"\r\n")
            self._chunked = False
        elif end_stream and not body:
            parts.append(b"content-length: 0\r\n\r\n" if method in _BODY_METHODS else b"\r\n")
            self._chunked = False
            left = 0
        else:
            parts.append(b"transfer-encoding: chunked\r\n\r\n")
            self._chunked = True
            left = -1
        self._is_head = method == b"HEAD"
        self.reusable = False
        if self._chunked:
            parts += [b"%x\r\n%b\r\n" % (len(chunk), chunk) for chunk in body if chunk]
            if end_stream:
                parts.append(b"0\r\n\r\n")
        else:
            for chunk in body:
                left -= len(chunk)
            if left < 0:
                raise UpstreamProtocolError("request body longer than its content-length")
            if end_stream and left > 0:
                raise UpstreamProtocolError("request body shorter than its content-length")
            parts += body
        self._body_left = left
        return b"".join(parts)

    def _set_authority(self, authority: bytes) -> None:
        if 13 in authority or 10 in authority or 0 in authority:
            raise UpstreamProtocolError("request head contains CR, LF or NUL")
        self._authority = authority
        self._request_line_tail = b" HTTP/1.1\r\nhost: " + authority + b"\r\n"

    def encode_head(
        self, method: bytes, path: bytes, authority: bytes, headers: Headers, end_stream: bool
    ) -> bytes:
        return self.encode_request(method, path, authority, headers, (), end_stream)

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
        if self._boundary:
            data = self._whole_chunks(data)
            if not data:
                return
        if not self._headers_done:
            self._raw_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # llhttp wraps whatever a callback raised; the original is the context.
            cause = exc.__context__
            if isinstance(cause, _HeadResponseDone):
                self._parser = httptools.HttpResponseParser(self)
                self._boundary = False
                return
            if cause is None:  # pragma: no cover - httptools always chains it
                raise UpstreamProtocolError("malformed upstream response") from None
            raise cause from None
        except httptools.HttpParserUpgrade:
            raise UpstreamProtocolError("upstream switched protocols unasked") from None
        except httptools.HttpParserError as exc:
            raise UpstreamProtocolError(f"malformed upstream response: {exc}") from None
        if self._headers_done:
            if self._headers:  # trailers of a chunked body collect here until its end
                self._weigh_trailers()
        elif self._raw_bytes > self._max_header_bytes:
            # llhttp buffers an unfinished header line itself: bound what it may be holding.
            raise too_large(self._max_header_bytes)

    def _whole_chunks(self, data: bytes) -> bytes:
        """Deliver the whole non-empty chunks ``data`` starts with (llhttp is at a chunk
        boundary); return the rest, for llhttp."""
        pos = 0
        end_of_read = len(data)
        while self._boundary:  # the sink may end the exchange from inside on_body
            eol = data.find(b"\r\n", pos, pos + _MAX_CHUNK_SIZE_DIGITS + 2)
            if eol <= pos:
                break
            size_line = data[pos:eol]
            if size_line.strip(_HEX_DIGITS):
                break  # extensions, spaces, anything else: llhttp's to judge
            start = eol + 2
            end = start + int(size_line, 16)
            if end == start or end + 2 > end_of_read or data[end] != 13 or data[end + 1] != 10:
                break  # the last chunk, one cut by the read, or a bad terminator
            pos = end + 2
            self.on_body(data[start:end])
        return data[pos:] if pos else data

    def _weigh_trailers(self) -> None:
        trailers = self._headers
        weighed = self._trailers_weighed
        if len(trailers) > weighed:  # weigh each once, however the trailers were split
            self._trailer_bytes += _field_bytes(trailers[weighed:])
            self._trailers_weighed = len(trailers)
            if self._trailer_bytes > self._max_header_bytes:
                raise too_large(self._max_header_bytes)

    def receive_eof(self) -> bool:
        if self._headers_done and self._close_delimited:
            self._headers_done = False
            self.reusable = False
            self._on_end()
            return True
        return False

    def detach(self) -> None:
        sink = DetachedSink()
        self._on_head = sink.on_response_head
        self._on_end = sink.on_response_end
        self.on_body = sink.on_response_data
        self._boundary = False
        # The parser holds this codec as its protocol: a parser that does not is swapped in.
        self._parser = httptools.HttpResponseParser(sink)

    # -- llhttp callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_chunk_header(self) -> None:
        self._boundary = False

    def on_chunk_complete(self) -> None:
        self._boundary = True

    def on_headers_complete(self) -> None:
        self._boundary = False
        headers = self._headers
        limit = self._max_header_bytes
        # Field by field as ever, but the status line counts as its 15 fixed bytes: the reason
        # phrase is never kept, and one that spans reads trips the check in receive().
        if (self._raw_bytes > limit or self._exact_head) and _field_bytes(headers) + 15 > limit:
            raise too_large(limit)
        parser = self._parser
        status: int = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise UpstreamProtocolError("upstream switched protocols unasked")
            self._headers = []  # interim response: wait for the final one
            self._raw_bytes = 0
            self._exact_head = True
            return
        self._headers_done = True
        self._exact_head = False
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
        self._on_head(status, headers)
        if self._is_head:
            self.on_message_complete()
            raise _HeadResponseDone

    def on_message_complete(self) -> None:
        self._boundary = False
        if self._headers_done:  # not the end of a 1xx interim response
            # Ready for the next response before the sink hears of this one's end: the sink
            # may start the next exchange from inside on_response_end.
            self.reusable = self._keep_alive
            self._headers_done = False
            self._raw_bytes = 0
            if self._headers:  # trailers: not passed on
                self._headers = []
                self._trailer_bytes = self._trailers_weighed = 0
            self._on_end()
