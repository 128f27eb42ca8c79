"""Flood and abuse accounting for one downstream HTTP/2 connection.

How this works: `H2AbuseGuard.scan` reads the inbound byte stream *before* h2 does, looking
only at the 9-byte frame headers (length, type, flags, stream id) and skipping payloads, so it
costs a few integer operations per frame and allocates nothing but the rare split header. It
enforces what h2 does not bound, or bounds only after buffering:

- the connection preface must be exact (C11);
- a frame longer than our SETTINGS_MAX_FRAME_SIZE is refused when its header arrives (h2
  would first buffer up to 16 MiB of it);
- a header block (HEADERS + CONTINUATION) may total at most ``max_header_bytes`` (plus
  padding slack) in at most ``h2_max_continuation_frames`` CONTINUATION frames (CVE-2024-27919
  class); h2 alone would hold up to 64 frames of 16 KiB;
- SETTINGS frames may carry at most 32 entries (as nghttp2): h2 keeps a deque for every
  unknown setting id it ever saw;
- PING, SETTINGS, PRIORITY, RST_STREAM, GOAWAY, unknown frame types, empty DATA without
  END_STREAM and WINDOW_UPDATE on stream 0 share a token bucket of
  ``h2_max_control_frames_per_s`` (capacity one second's worth);
- WINDOW_UPDATE on a stream is allowed in proportion to the DATA frames we sent and the
  streams opened (a client has no other reason to send them).

The codec reports stream lifecycle to the guard for the Rapid Reset (CVE-2023-44487) and
MadeYouReset (CVE-2025-8671) budget: every stream opened, and every reset, received or sent
because of the client, of a stream younger than ``h2_premature_reset_lifetime_s``. Once more
than ``h2_premature_reset_min_streams`` streams were opened, premature resets may not exceed
``h2_premature_reset_ratio`` of them. Tolerated misbehaviour (malformed requests, streams h2
reset by itself) counts as glitches, at most ``h2_max_glitches`` per connection.

Every violation raises `H2AbuseError`, carrying the GOAWAY error code the codec must send.
"""

from __future__ import annotations

from proxy.errors import DownstreamProtocolError
from proxy.protocol.limits import CodecLimits

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR = 0x1
ENHANCE_YOUR_CALM = 0xB
FRAME_SIZE_ERROR = 0x6

_DATA, _HEADERS, _SETTINGS, _WINDOW_UPDATE, _CONTINUATION = 0x0, 0x1, 0x4, 0x8, 0x9
# PRIORITY, RST_STREAM, PING, GOAWAY: each costs us work and carries no request.
_CONTROL_TYPES = frozenset({0x2, 0x3, 0x6, 0x7})
_KNOWN_TYPES = 0x9  # types above this are extensions: h2 ignores them, we still count them
_END_STREAM, _END_HEADERS = 0x1, 0x4
_MAX_SETTINGS_ENTRIES = 32
# HEADERS may carry up to 255 bytes of padding and 5 of priority around the HPACK block.
_HEADER_BLOCK_SLACK = 512
_STREAM_WINDOW_UPDATES_FREE = 100
_WINDOW_UPDATES_PER_DATA_FRAME = 2


class H2AbuseError(DownstreamProtocolError):
    """The client crossed a flood or abuse limit, or broke framing the guard checks (preface,
    frame size): GOAWAY with ``error_code``, then close."""

    def __init__(self, message: str, error_code: int = ENHANCE_YOUR_CALM) -> None:
        super().__init__(message)
        self.error_code = error_code


class H2AbuseGuard:
    __slots__ = (
        "_block_bytes",
        "_continuations",
        "_control_per_s",
        "_glitches",
        "_in_block",
        "_last_refill",
        "_limits",
        "_max_block_bytes",
        "_max_frame_size",
        "_partial",
        "_preface",
        "_premature",
        "_skip",
        "_streams_opened",
        "_tokens",
        "_window_update_allowance",
    )

    def __init__(self, limits: CodecLimits, max_frame_size: int) -> None:
        self._limits = limits
        self._max_frame_size = max_frame_size
        self._max_block_bytes = limits.max_header_bytes + _HEADER_BLOCK_SLACK
        self._preface = PREFACE  # what is still expected of it
        self._skip = 0  # payload bytes of the current frame still to step over
        self._partial = b""  # a frame header split across reads (< 9 bytes)
        self._in_block = False
        self._block_bytes = 0
        self._continuations = 0
        self._control_per_s = float(limits.h2_max_control_frames_per_s)
        self._tokens = self._control_per_s
        self._last_refill: float | None = None
        self._window_update_allowance = _STREAM_WINDOW_UPDATES_FREE
        self._streams_opened = 0
        self._premature = 0
        self._glitches = 0

    @property
    def buffered_header_block_bytes(self) -> int:
        """Header-block bytes h2 may be holding for an unfinished HEADERS/CONTINUATION run."""
        return self._block_bytes if self._in_block else 0

    def scan(self, data: bytes, now: float) -> None:
        """Account for every frame header in ``data``; raise H2AbuseError on a violation."""
        n = len(data)
        i = 0
        if self._preface:
            # Checked here because h2 raises on a bad preface without queueing a GOAWAY.
            i = min(n, len(self._preface))
            if data[:i] != self._preface[:i]:
                raise H2AbuseError("invalid HTTP/2 connection preface", PROTOCOL_ERROR)
            self._preface = self._preface[i:]
        control = 0
        while True:
            skip = self._skip
            if skip:
                if n - i <= skip:
                    self._skip = skip - (n - i)
                    break
                i += skip
                self._skip = 0
            if i >= n:
                break
            if self._partial or n - i < 9:
                need = 9 - len(self._partial)
                self._partial += data[i : i + need]
                i += need
                if len(self._partial) < 9:
                    break
                hdr = self._partial
                self._partial = b""
                at = 0
            else:
                hdr = data
                at = i
                i += 9
            length = hdr[at] << 16 | hdr[at + 1] << 8 | hdr[at + 2]
            ftype = hdr[at + 3]
            flags = hdr[at + 4]
            self._skip = length
            if length > self._max_frame_size:
                raise H2AbuseError(f"frame of {length} bytes", FRAME_SIZE_ERROR)
            if self._in_block:
                if ftype == _CONTINUATION:
                    self._continuations += 1
                    self._block_bytes += length
                    if self._continuations > self._limits.h2_max_continuation_frames:
                        raise H2AbuseError("too many CONTINUATION frames")
                    if self._block_bytes > self._max_block_bytes:
                        raise H2AbuseError("header block too large")
                    if flags & _END_HEADERS:
                        self._in_block = False
                    continue
                # Anything else inside a header block is a protocol error h2 reports.
                self._in_block = False
            if ftype == _DATA:
                if length == 0 and not flags & _END_STREAM:
                    control += 1
            elif ftype == _HEADERS:
                if length > self._max_block_bytes:
                    raise H2AbuseError("header block too large")
                if not flags & _END_HEADERS:
                    self._in_block = True
                    self._block_bytes = length
                    self._continuations = 0
            elif ftype == _WINDOW_UPDATE:
                if hdr[at + 5] & 0x7F or hdr[at + 6] or hdr[at + 7] or hdr[at + 8]:
                    self._window_update_allowance -= 1
                    if self._window_update_allowance < 0:
                        raise H2AbuseError("WINDOW_UPDATE flood")
                else:
                    control += 1
            elif ftype == _SETTINGS:
                control += 1
                if length > 6 * _MAX_SETTINGS_ENTRIES:
                    raise H2AbuseError("SETTINGS frame with too many entries")
            elif ftype in _CONTROL_TYPES or ftype > _KNOWN_TYPES:
                control += 1
        if control:
            self._spend_control_tokens(control, now)

    def _spend_control_tokens(self, count: int, now: float) -> None:
        rate = self._control_per_s
        last = self._last_refill
        if last is not None and now > last:
            self._tokens = min(rate, self._tokens + (now - last) * rate)
        self._last_refill = now
        self._tokens -= count
        if self._tokens < 0:
            raise H2AbuseError("control frame flood")

    def data_frames_sent(self, count: int) -> None:
        self._window_update_allowance += count * _WINDOW_UPDATES_PER_DATA_FRAME

    def stream_opened(self) -> None:
        self._streams_opened += 1
        self._window_update_allowance += 1

    def stream_reset(self, age_s: float) -> None:
        """A stream was reset by the client, or by us because of the client."""
        limits = self._limits
        if age_s >= limits.h2_premature_reset_lifetime_s:
            return
        self._premature += 1
        opened = self._streams_opened
        if (
            opened > limits.h2_premature_reset_min_streams
            and self._premature > limits.h2_premature_reset_ratio * opened
        ):
            raise H2AbuseError(f"{self._premature} of {opened} streams reset prematurely")

    def glitch(self) -> None:
        self._glitches += 1
        if self._glitches > self._limits.h2_max_glitches:
            raise H2AbuseError("too many protocol glitches")
