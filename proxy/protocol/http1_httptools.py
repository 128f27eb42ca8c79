"""HTTP/1.1 server codec over llhttp (httptools): the fast path and the default.

How this works: the shared core (http1_common) frames the stream; llhttp parses and validates
each complete head, fed to a fresh parser (cheaper than resetting one, and no header bytes are
ever buffered inside httptools), and decodes chunked bodies through a second parser primed
with a synthetic chunked head. The core must learn where a chunked body ends, and llhttp does
not say where in a buffer it stopped, so the decoder is fed slices that end at each CRLFCRLF:
a chunked message can only end on one, so when llhttp reports the message complete it ended
exactly at the end of the slice.

The parsers run with every llhttp leniency off (the httptools default), so llhttp itself
rejects bare CR or LF, obs-fold, control characters, bad chunk sizes, extensions and
CRLFs, conflicting Content-Length or Transfer-Encoding. Upgrade requests are parsed as
ordinary requests: llhttp stops after such a head with HttpParserUpgrade, which we ignore
because the core never feeds a head parser anything after the head.
"""

from __future__ import annotations

from typing import Final

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from proxy.events import Event
from proxy.headers import Headers
from proxy.protocol.http1_common import (
    FRAMING_HEADERS,
    Http1ServerCodecBase,
    bad_request,
    underscore_error,
)
from proxy.protocol.limits import CodecLimits

_CHUNKED_PRIMER: Final = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
_OWS: Final = (32, 9)


class _HeadSink:
    """httptools callbacks for one request head; does all per-header work in one pass."""

    __slots__ = ("complete", "framing", "headers", "underscore")

    def __init__(self) -> None:
        self.headers: Headers = []
        self.framing: Headers = []
        self.complete = False
        self.underscore = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # llhttp drops leading whitespace of a value but keeps trailing whitespace.
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")
        self.headers.append((name, value))
        if name in FRAMING_HEADERS:
            self.framing.append((name, value))
        elif 95 in name:  # "_"; an int needle is a plain memchr
            self.underscore = True

    def on_headers_complete(self) -> None:
        self.complete = True


class _ChunkSink:
    """httptools callbacks for a chunked body. No on_header: trailers are never buffered."""

    __slots__ = ("codec", "done", "events")

    def __init__(self, codec: HttptoolsServerCodec) -> None:
        self.codec = codec
        self.events: list[Event] = []
        self.done = False

    def on_body(self, data: bytes) -> None:
        self.codec._body_bytes(data, self.events)

    def on_message_complete(self) -> None:
        self.done = True


class HttptoolsServerCodec(Http1ServerCodecBase):
    def __init__(self, limits: CodecLimits) -> None:
        super().__init__(limits)
        self._head_sink = _HeadSink()
        self._chunk_sink = _ChunkSink(self)
        self._decoder: HttpRequestParser | None = None
        self._tail = b""  # last bytes fed to the decoder, to spot a CRLFCRLF split by reads

    def _parse_head(self, head: bytes) -> tuple[Headers, Headers]:
        sink = self._head_sink
        sink.headers = []
        sink.framing = []
        sink.complete = False
        try:
            HttpRequestParser(sink).feed_data(head)
        except HttpParserUpgrade:
            pass  # the head is complete; the upgrade itself is never performed
        except HttpParserError as exc:
            raise bad_request(f"malformed request head: {exc}") from None
        if not sink.complete:
            raise bad_request("malformed request head")
        if sink.underscore:
            sink.underscore = False
            raise underscore_error()
        return sink.headers, sink.framing

    def _start_chunked(self) -> None:
        sink = self._chunk_sink
        sink.done = False
        decoder = HttpRequestParser(sink)
        decoder.feed_data(_CHUNKED_PRIMER)
        self._decoder = decoder
        self._tail = b""

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
        sink.events = events
        decoder = self._decoder
        assert decoder is not None
        try:
            decoder.feed_data(memoryview(data)[pos:end])
        except HttpParserError as exc:
            raise bad_request(f"malformed chunked body: {exc}") from None
        self._check_body_total()
        if sink.done:
            self._decoder = None
            self._chunked_done(events)
        elif end - pos >= 3:
            self._tail = data[end - 3 : end]
        else:
            self._tail = (tail + data[pos:end])[-3:]
        return end
