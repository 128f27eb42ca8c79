"""HTTP/2 wire helpers for the upstream connection: request header lists, error code names,
and the GOAWAY splitter.

GoawaySplitter lifts GOAWAY frames out of the byte stream a server sends, before h2 sees them.
Why: once h2 receives GOAWAY its connection state machine closes, and every later frame — even
DATA for a stream the server promised to finish (id <= last_stream_id) — raises ProtocolError.
RFC 9113 §6.8 says those streams complete normally, so the connection handles GOAWAY itself and
feeds h2 everything else.

How this works: the splitter walks frame headers only (9 bytes: length, type, flags, stream id),
skipping payloads without copying. Bytes of a partial frame header are held back until the type
is known. A GOAWAY frame is cut out and decoded; all other bytes pass through unchanged and in
order. When no GOAWAY is present the input is returned as is.
"""

from __future__ import annotations

from h2.errors import ErrorCodes

from proxy.headers import HOP_BY_HOP, Headers

_GOAWAY = 0x7
# GOAWAY frames are held back whole; one larger than this is left to h2, which rejects it.
_MAX_GOAWAY_BYTES = 16384 + 9


def request_headers(
    method: bytes, scheme: bytes, authority: bytes, path: bytes, headers: Headers
) -> Headers | None:
    """The HEADERS list of a request: pseudo-headers first, names lower-cased, connection-
    specific headers dropped. None when a name or value holds CR, LF or NUL (an h2-to-h1 hop
    further on could split the request there)."""
    out: Headers = [
        (b":method", method),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", path),
    ]
    for name, value in headers:
        name = name.lower()
        if name not in HOP_BY_HOP and name != b"host":
            out.append((name, value))
    blob = b"".join([name + value for name, value in out])
    if 13 in blob or 10 in blob or 0 in blob:  # ints: no TypeError detour in __contains__
        return None
    return out


def error_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error {code}"


class GoawaySplitter:
    __slots__ = ("_held", "_left")

    def __init__(self) -> None:
        self._held = b""  # a partial frame header, or a partial GOAWAY frame
        self._left = 0  # payload bytes of a passed-through frame not yet seen

    def feed(self, data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
        """Returns (bytes for h2, [(last_stream_id, error_code) per GOAWAY frame])."""
        goaways: list[tuple[int, int]] = []
        left = self._left
        if self._held:
            data = self._held + data
            self._held = b""
        n = len(data)
        if left >= n:
            self._left = left - n
            return data, goaways
        pos = left
        keep: list[bytes] = []
        start = 0  # beginning of the current run of pass-through bytes
        while True:
            if pos + 9 > n:
                self._held = data[pos:]
                self._left = 0
                end = pos
                break
            length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            frame_end = pos + 9 + length
            if data[pos + 3] == _GOAWAY and 8 <= length <= _MAX_GOAWAY_BYTES - 9:
                if frame_end > n:
                    self._held = data[pos:]
                    self._left = 0
                    end = pos
                    break
                p = pos + 9
                last = int.from_bytes(data[p : p + 4], "big") & 0x7FFFFFFF
                goaways.append((last, int.from_bytes(data[p + 4 : p + 8], "big")))
                keep.append(data[start:pos])
                start = frame_end
            if frame_end >= n:
                self._left = frame_end - n
                end = n
                break
            pos = frame_end
        if not keep:
            return (data if end == n else data[:end]), goaways
        keep.append(data[start:end])
        return b"".join(keep), goaways
