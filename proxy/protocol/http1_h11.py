"""HTTP/1.1 server codec over h11: the pure-Python reference for the llhttp fast path.

How this works: the shared core (http1_common) frames the stream and hands each complete head
it has to check (one that matched its template never gets here) to a fresh
``h11.Connection(h11.SERVER)``, which parses it into a Request; the same connection then
decodes a chunked body. h11 is more lenient than llhttp in places (bare LF line endings,
obs-fold, control characters in values, any chunk extension, trailing spaces after a chunk
size), so raw checks here reject what llhttp rejects, and the chunked body is framed by a small
strict state machine (SIZE line -> DATA -> CRLF -> ... -> TRAILER section) that validates each
raw size line like llhttp does and feeds h11 exactly the bytes of one message, so h11 never
holds bytes of the next request.

Response bytes are written by the shared core, not by h11: h11 refuses HTTP/1.0 keep-alive
and pipelined parsing, which the codec contract requires.
"""

from __future__ import annotations

import re
from typing import Final, Protocol, cast

import h11

from proxy.events import Event
from proxy.headers import Headers
from proxy.protocol.http1_common import Http1ServerCodecBase
from proxy.protocol.http1_head import FRAMING_HEADERS, bad_request, underscore_error
from proxy.protocol.limits import CodecLimits

# Control characters llhttp refuses anywhere in a head (CR and LF are checked by counting),
# and obs-fold (a line starting with whitespace).
_BAD_HEAD_BYTES: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r\n[ \t]")
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# The chunk-size line grammar llhttp (strict) accepts: hex size, then extensions of the form
# ;name[=value] where value is a token, a quoted-string, or a token then a quoted-string.
_CHUNK_LINE: Final = re.compile(
    rb"([0-9A-Fa-f]+)(?:;" + _TCHAR + rb"*(?:=" + _TCHAR + rb"*(?:" + _QUOTED + rb")?)?)*"
)
_MAX_CHUNK_SIZE: Final = 0xFFFFFFFFFFFFFFFF
_FRAMING_TRAILERS: Final = frozenset({b"content-length", b"transfer-encoding"})

_C_SIZE: Final = 0
_C_DATA: Final = 1
_C_CRLF: Final = 2
_C_TRAILER: Final = 3


class _H11Data(Protocol):
    """What an ``h11.Data`` event really carries. h11 annotates ``data`` as bytes but hands out
    bytearray slices of its receive buffer; compiled (mypyc) code checks annotated types when
    it reads an attribute, so the event is read through this view instead."""

    data: bytes | bytearray


def _check_raw_lines(block: bytes | bytearray, what: str) -> None:
    crlf = block.count(b"\r\n")
    if block.count(b"\r") != crlf or block.count(b"\n") != crlf:
        raise bad_request(f"bare CR or LF in {what}")
    if _BAD_HEAD_BYTES.search(block):
        raise bad_request(f"control character or folded line in {what}")


class H11ServerCodec(Http1ServerCodecBase):
    def __init__(self, limits: CodecLimits) -> None:
        super().__init__(limits)
        self._h11: h11.Connection | None = None
        self._cstate = _C_SIZE
        self._chunk_left = 0
        self._crlf_seen = 0
        self._line = bytearray()  # a partial size line or trailer section
        self._ended = False

    def _parse_head(self, head: bytes) -> tuple[Headers, Headers]:
        _check_raw_lines(head, "request head")
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
        try:
            conn.receive_data(head)
            event = conn.next_event()
        except h11.ProtocolError as exc:
            raise bad_request(f"malformed request head: {exc}") from None
        if not isinstance(event, h11.Request):
            raise bad_request("malformed request head")
        self._h11 = conn
        # h11 normalises some headers (merges equal Content-Length values, lower-cases
        # Transfer-Encoding); the raw lines it just validated give what llhttp reports.
        headers: Headers = []
        framing: Headers = []
        start = head.find(b"\r\n") + 2
        if start < len(head) - 2:
            for line in head[start:-4].split(b"\r\n"):
                raw_name, _, raw_value = line.partition(b":")
                name = raw_name.lower()
                value = raw_value.strip(b" \t")
                headers.append((name, value))
                if name in FRAMING_HEADERS:
                    framing.append((name, value))
                elif 95 in name:  # "_"
                    raise underscore_error()
        return headers, framing

    def _start_chunked(self) -> None:
        self._cstate = _C_SIZE
        self._line.clear()
        self._ended = False

    def _feed(self, data: bytes | bytearray, events: list[Event]) -> None:
        conn = self._h11
        assert conn is not None
        try:
            conn.receive_data(bytes(data))
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Data):
                    self._body_bytes(bytes(cast(_H11Data, event).data), events)
                elif isinstance(event, h11.EndOfMessage):
                    self._ended = True
                else:
                    break
        except h11.ProtocolError as exc:
            raise bad_request(f"malformed chunked body: {exc}") from None
        self._check_body_total()

    def _receive_chunked(self, data: bytes, pos: int, events: list[Event]) -> int:
        n = len(data)
        line = self._line
        while pos < n:
            cs = self._cstate
            if cs == _C_DATA:
                take = min(self._chunk_left, n - pos)
                self._feed(data[pos : pos + take], events)
                pos += take
                self._chunk_left -= take
                if not self._chunk_left:
                    self._cstate = _C_CRLF
                    self._crlf_seen = 0
            elif cs == _C_CRLF:
                if data[pos] != b"\r\n"[self._crlf_seen]:
                    raise bad_request("chunk data not followed by CRLF")
                pos += 1
                self._crlf_seen += 1
                if self._crlf_seen == 2:
                    self._feed(b"\r\n", events)
                    self._cstate = _C_SIZE
            elif cs == _C_SIZE:
                i = data.find(b"\n", pos)
                if i < 0:
                    line += data[pos:]
                    return n
                line += data[pos : i + 1]
                pos = i + 1
                size = self._size_line(bytes(line))
                line.clear()
                self._feed(b"%x\r\n" % size, events)
                if size:
                    self._cstate = _C_DATA
                    self._chunk_left = size
                else:
                    self._cstate = _C_TRAILER
            else:
                return self._receive_trailer(data, pos, events)
        return pos

    def _size_line(self, line: bytes) -> int:
        if not line.endswith(b"\r\n"):
            raise bad_request("bare LF in chunk size line")
        body = line[:-2]
        match = _CHUNK_LINE.fullmatch(body)
        if match is None or body.endswith(b";"):
            raise bad_request("malformed chunk size line")
        size = int(match[1], 16)
        if size > _MAX_CHUNK_SIZE:
            raise bad_request("chunk size overflow")
        return size

    def _receive_trailer(self, data: bytes, pos: int, events: list[Event]) -> int:
        line = self._line
        seen = len(line)
        line += data[pos:]
        if line.startswith(b"\r\n"):
            end = 2
        else:
            i = line.find(b"\r\n\r\n")
            if i < 0:
                if line.count(b"\n") != line.count(b"\r\n"):
                    raise bad_request("bare LF in chunked trailer")
                return len(data)
            end = i + 4
        section = bytes(line[:end])
        line.clear()
        _check_raw_lines(section, "chunked trailer")
        for field in section.split(b"\r\n"):
            # Framing fields may not be trailers (RFC 9110 section 6.5.1); llhttp refuses
            # them too, and both codecs must give one verdict.
            if field.partition(b":")[0].strip().lower() in _FRAMING_TRAILERS:
                raise bad_request("framing header in chunked trailer")
        self._feed(section, events)
        if not self._ended:
            raise bad_request("malformed chunked trailer")
        self._h11 = None
        self._chunked_done(events)
        return pos + end - seen
