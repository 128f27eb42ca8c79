"""HTTP/1.1 server codec over llhttp (httptools): the fast path and the default.

How this works: the shared core (http1_common) frames the stream; llhttp parses and validates
each complete head the core hands over (a head the core matched to its template never gets
here), and decodes chunked bodies through a second parser primed with a synthetic chunked
head. No header bytes are ever buffered inside httptools.

The head parser is reused while llhttp sits at a message boundary, that is after it reported
a message complete: a head without a body (llhttp never sees bodies; the core slices
Content-Length ones itself). A head with a body or an upgrade leaves it mid-message, and the
next head gets a fresh parser. Should a reused parser still disagree about the previous
message (it read ``Connection: close`` where the core did not, say), its error is retried on
a fresh parser, so reuse never changes a verdict. The chunk decoder is reused the same way,
once its message is complete.

The core must learn where a chunked body ends, and llhttp does not say where in a buffer it
stopped, so the decoder is fed slices that end at each CRLFCRLF: a chunked message can only
end on one, so when llhttp reports the message complete it ended exactly at the end of the
slice.

The parsers run with every llhttp leniency off (the httptools default), so llhttp itself
rejects bare CR or LF, obs-fold, control characters, bad chunk sizes, extensions and
CRLFs, conflicting Content-Length or Transfer-Encoding. Upgrade requests are parsed as
ordinary requests: llhttp stops after such a head with HttpParserUpgrade, which we ignore
(that parser is not reused).
"""

from __future__ import annotations

from typing import Final

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from proxy.events import Event
from proxy.headers import Headers
from proxy.protocol.http1_common import Http1ServerCodecBase
from proxy.protocol.http1_head import FRAMING_HEADERS, bad_request, underscore_error
from proxy.protocol.limits import CodecLimits

_CHUNKED_PRIMER: Final = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
_OWS: Final = (32, 9)


class _HeadSink:
    """httptools callbacks for one request head; does all per-header work in one pass."""

    __slots__ = ("at_boundary", "complete", "framing", "headers", "underscore")

    def __init__(self) -> None:
        self.headers: Headers = []
        self.framing: Headers = []
        self.complete = False
        self.underscore = False
        self.at_boundary = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # llhttp drops leading whitespace of a value but keeps trailing whitespace.
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")
        pair = (name, value)
        self.headers.append(pair)
        if name in FRAMING_HEADERS:
            self.framing.append(pair)
        elif 95 in name:  # "_"; an int needle is a plain memchr
            self.underscore = True

    def on_headers_complete(self) -> None:
        self.complete = True

    def on_message_complete(self) -> None:
        # Only for a message without a body: llhttp is never fed one.
        self.at_boundary = True


class _ChunkSink:
    """httptools callbacks for a chunked body. No on_header: trailers are never buffered.
    It keeps the decoded pieces rather than a reference to the codec, which would make the
    codec, this sink and the decoder a cycle that only the cyclic collector could free (one
    per closed connection, kept until a full collection walked past them all)."""

    __slots__ = ("done", "pieces")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.done = False

    def on_body(self, data: bytes) -> None:
        self.pieces.append(data)

    def on_message_complete(self) -> None:
        self.done = True


class HttptoolsServerCodec(Http1ServerCodecBase):
    def __init__(self, limits: CodecLimits) -> None:
        super().__init__(limits)
        self._head_sink = _HeadSink()
        self._parser: HttpRequestParser | None = None  # set while at a message boundary
        self._chunk_sink = _ChunkSink()
        self._decoder: HttpRequestParser | None = None  # reused for the next chunked body
        self._tail = b""  # last bytes fed to the decoder, to spot a CRLFCRLF split by reads

    def _parse_head(self, head: bytes) -> tuple[Headers, Headers]:
        sink = self._head_sink
        parser = self._parser
        self._parser = None
        while True:
            fresh = parser is None
            if parser is None:
                parser = HttpRequestParser(sink)
            headers: Headers = []
            framing: Headers = []
            sink.headers = headers
            sink.framing = framing
            sink.complete = False
            sink.underscore = False
            sink.at_boundary = False
            try:
                parser.feed_data(head)
            except HttpParserUpgrade:
                sink.at_boundary = False  # the upgrade itself is never performed
            except HttpParserError as exc:
                if fresh:
                    raise bad_request(f"malformed request head: {exc}") from None
                parser = None  # a reused parser may disagree about the last message: retry
                continue
            if sink.complete:
                break
            if fresh:
                raise bad_request("malformed request head")
            parser = None
        if sink.underscore:
            raise underscore_error()
        if sink.at_boundary:
            self._parser = parser
        return headers, framing

    def _start_chunked(self) -> None:
        sink = self._chunk_sink
        self._tail = b""
        decoder = self._decoder
        if decoder is not None and sink.done:  # at a message boundary: reuse it
            sink.done = False
            try:
                decoder.feed_data(_CHUNKED_PRIMER)
                return
            except HttpParserError:
                pass  # say a trailer read as "Connection: close": start afresh
        sink.done = False
        decoder = HttpRequestParser(sink)
        decoder.feed_data(_CHUNKED_PRIMER)
        self._decoder = decoder

    def _receive_chunked(self, data: bytes, pos: int, events: list[Event]) -> int:
        n = len(data)
        tail = self._tail
        end = -1
        if tail:
            probe = tail + data[pos : pos + 3]
            i = probe.find(b"\r\n\r\n")
            if i >= 0:
                end = pos + i + 4 - len(tail)
        if end < 0:
            i = data.find(b"\r\n\r\n", pos)
            end = n if i < 0 else i + 4
        sink = self._chunk_sink
        decoder = self._decoder
        assert decoder is not None
        pieces = sink.pieces
        try:
            decoder.feed_data(memoryview(data)[pos:end])
        except HttpParserError as exc:
            pieces.clear()
            raise bad_request(f"malformed chunked body: {exc}") from None
        if pieces:
            for piece in pieces:
                self._body_bytes(piece, events)
            pieces.clear()
        self._check_body_total()
        if sink.done:
            self._chunked_done(events)  # the decoder is at a message boundary: kept
        elif end - pos >= 3:
            self._tail = data[end - 3 : end]
        else:
            self._tail = (tail + data[pos:end])[-3:]
        return end
