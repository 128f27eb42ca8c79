"""The downstream HTTP/2 codec (server side), native: framing, stream states, flow control
and HPACK (`http2_hpack`) written here for speed and compiled by mypyc. `proxy.protocol.http2`
(over h2) is the reference implementation with the same API and events (``server.http2:
native | h2``).

How this works: ``receive`` lets `H2AbuseGuard` scan the new bytes first (preface, frame
sizes, floods, CONTINUATION runs, exactly as for the reference), then walks whole frames with
integer reads on the bytes (a frame cut by the end of a read waits in ``_buf``, at most one
frame of 16 KiB), and handles each in place: no frame objects, only DATA payloads and header
block fragments are sliced out. A header block (HEADERS + CONTINUATION) is decoded by the
`HpackDecoder` when complete, whatever becomes of its stream, so the dynamic table stays in
step. Output frames are appended to one bytearray that ``data_to_send`` hands out.

Streams: a stream the codec accepts is *announced* (RequestHeaders) and lives in ``_streams``
until both directions ended or either side reset it. A stream refused (concurrency, drain),
rejected (malformed, 431, 413) or finished leaves a note in ``_closed`` (how it ended, for
the last ``MAX_CLOSED_STREAMS``): RFC 9113 §5.1 treats frames on a closed stream by how it
closed (ignored after our RST_STREAM; STREAM_CLOSED otherwise). Stream ids above the highest
seen are idle: only HEADERS (a new stream) and PRIORITY may name them.

The same departures from the RFC's minimum as the reference, so both pass one test suite:
Content-Length disagreeing with the DATA received, trailers without END_STREAM, a
WINDOW_UPDATE of 0 and DATA beyond a stream's window are connection errors (the RFC allows
a stream error; a connection error leaves no reset to abuse), and a client's GOAWAY ends
the connection (nothing more is sent, further frames are an error).

Flow control: received DATA is acknowledged only when the proxy calls
``acknowledge_received`` (padding at once), with h2's thresholds for when a WINDOW_UPDATE is
worth sending; our SETTINGS_INITIAL_WINDOW_SIZE applies once the client ACKs it. What the
proxy sends beyond the peer's windows (connection and stream; a SETTINGS change moves the
windows of open streams, possibly below zero) waits in a per-stream queue of memoryviews,
flushed on WINDOW_UPDATE and SETTINGS, with StreamDrained once a stream's queue is at or below
half of ``h2_max_pending_send_bytes``.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Final, Literal

from proxy.errors import DownstreamProtocolError, RequestHeadersTooLargeError
from proxy.events import (
    ConnectionTerminated,
    Event,
    RequestData,
    RequestHeaders,
    StreamDrained,
    StreamReset,
)
from proxy.headers import Headers
from proxy.protocol.http2_guard import H2AbuseError, H2AbuseGuard
from proxy.protocol.http2_headers import (
    LOCAL_REPLY_BODY,
    RESPONSE_CONNECTION_SPECIFIC,
    MalformedRequestError,
    check_trailers,
    parse_request_headers,
)
from proxy.protocol.http2_hpack import (
    DEFAULT_TABLE_SIZE,
    TABLE_SIZE_ZERO,
    HeaderListTooLarge,
    HpackDecoder,
    HpackError,
    encode_field,
    encode_status,
)
from proxy.protocol.limits import CodecLimits

# Frame types (RFC 9113 §6).
_DATA: Final = 0x0
_HEADERS: Final = 0x1
_PRIORITY: Final = 0x2
_RST_STREAM: Final = 0x3
_SETTINGS: Final = 0x4
_PUSH_PROMISE: Final = 0x5
_PING: Final = 0x6
_GOAWAY: Final = 0x7
_WINDOW_UPDATE: Final = 0x8
_CONTINUATION: Final = 0x9
# Flags.
_END_STREAM: Final = 0x1
_ACK: Final = 0x1
_END_HEADERS: Final = 0x4
_PADDED: Final = 0x8
_PRIORITY_FLAG: Final = 0x20
# Error codes (RFC 9113 §7).
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
ENHANCE_YOUR_CALM: Final = 0xB
# Settings.
_HEADER_TABLE_SIZE: Final = 0x1
_ENABLE_PUSH: Final = 0x2
_MAX_CONCURRENT_STREAMS: Final = 0x3
_INITIAL_WINDOW_SIZE: Final = 0x4
_MAX_FRAME_SIZE: Final = 0x5
_MAX_HEADER_LIST_SIZE: Final = 0x6

_PREFACE_LEN: Final = 24
_DEFAULT_WINDOW: Final = 65535
_MAX_WINDOW: Final = 2**31 - 1
_FRAME_SIZE: Final = 16384  # our SETTINGS_MAX_FRAME_SIZE, the protocol's minimum
_MAX_FRAME_SIZE_LIMIT: Final = 2**24 - 1
# Closed streams whose manner of closing is remembered, per connection. Frames a client had
# in flight when our RST_STREAM left are ignored for the next 256 streams closed (RFC 9113
# §5.1 lets that period be limited); after that they are an error.
MAX_CLOSED_STREAMS: Final = 256
_CLOSED_NORMAL: Final = 1
_CLOSED_SENT_RST: Final = 2  # frames that follow are ignored (they may have been in flight)
_CLOSED_RECV_RST: Final = 3

# length << 8 | type, flags, stream id: the 9-byte frame header in one call.
_HEAD: Final = struct.Struct(">IBI")
_PAIR: Final = struct.Struct(">II")
_SETTING: Final = struct.Struct(">HI")


class H2ConnectionError(DownstreamProtocolError):
    """The client broke the protocol: GOAWAY with ``error_code``, then close."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


def _window_increment(current: int, maximum: int, processed: int) -> int:
    """How much of a receive window to hand back now, or -1 to keep accumulating: when the
    window is shut and a little was consumed, or when half of it was (h2's rule, so a client
    sending many small frames gets few WINDOW_UPDATEs)."""
    if (current == 0 and processed > min(1024, maximum // 4)) or processed >= maximum // 2:
        return min(processed, maximum - current)
    return -1


class _Stream:
    """An announced stream: what the proxy was told, the windows, what waits to be sent."""

    def __init__(
        self, opened_at: float, remote_ended: bool, batch: int, send_window: int, recv_window: int
    ) -> None:
        self.opened_at = opened_at
        self.batch = batch  # the receive() call that announced it
        self.remote_ended = remote_ended
        self.local_ended = False
        self.response_started = False
        self.end_pending = False  # END_STREAM waits behind queued data
        self.pending: deque[memoryview] | None = None
        self.pending_bytes = 0
        self.body_bytes = 0
        self.expected_length = -1  # Content-Length, -1 when absent
        self.unacked = 0  # body bytes handed to the proxy, not yet acknowledged
        self.send_window = send_window
        self.recv_window = recv_window  # what the client may still send
        self.recv_max = recv_window
        self.recv_processed = 0  # acknowledged, not yet handed back in a WINDOW_UPDATE


class NativeH2ServerCodec:
    alpn = "h2"

    def __init__(self, limits: CodecLimits) -> None:
        self._limits = limits
        self._guard = H2AbuseGuard(limits, _FRAME_SIZE)
        self._decoder = HpackDecoder(limits.max_header_bytes)
        self._low_water = limits.h2_max_pending_send_bytes // 2
        self._out = bytearray()
        self._buf = b""  # a frame cut by the end of a read
        self._preface_left = _PREFACE_LEN
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, _Stream] = {}  # streams with queued data, in service order
        self._closed: dict[int, int] = {}  # stream id -> how it closed, oldest first
        self._highest = 0  # highest stream id the client opened
        # An unfinished header block: its stream (0: none), END_STREAM, fragments so far.
        self._block_sid = 0
        self._block_end_stream = False
        self._block_parts: list[bytes] = []
        # Our receive side.
        self._recv_initial = _DEFAULT_WINDOW  # until the client ACKs our SETTINGS
        self._settings_acked = False
        conn_window = max(_DEFAULT_WINDOW, limits.h2_initial_connection_window)
        self._conn_recv = conn_window
        self._conn_recv_max = conn_window
        self._conn_processed = 0
        # The peer's side.
        self._conn_send = _DEFAULT_WINDOW
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame = _FRAME_SIZE
        self._table_size_update = False
        # Per receive() call (the two flags are reset once the call used them).
        self._batch = 0
        self._cancelled: set[int] | None = None
        self._windows_changed = False
        # Connection state.
        self._failed = False
        self._peer_gone = False
        self._drain_last_id = -1

        settings = (
            (_ENABLE_PUSH, 0),
            (_MAX_CONCURRENT_STREAMS, limits.h2_max_concurrent_streams),
            (_INITIAL_WINDOW_SIZE, limits.h2_initial_stream_window),
            (_MAX_HEADER_LIST_SIZE, limits.max_header_bytes),
            (_MAX_FRAME_SIZE, _FRAME_SIZE),
        )
        out = self._out
        out += _HEAD.pack(6 * len(settings) << 8 | _SETTINGS, 0, 0)
        for ident, value in settings:
            out += _SETTING.pack(ident, value)
        if conn_window > _DEFAULT_WINDOW:
            self._window_update(0, conn_window - _DEFAULT_WINDOW)

    # -- receiving -----------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        if self._failed:
            raise DownstreamProtocolError("HTTP/2 connection already failed")
        try:
            self._guard.scan(data, now)
            return self._receive(data, now)
        # Each handler names its exception differently: mypyc gives one name one type.
        except H2AbuseError as abuse:
            self._fail(abuse.error_code)
            raise
        except H2ConnectionError as broken:
            self._fail(broken.error_code)
            raise
        except DownstreamProtocolError:
            self._fail(PROTOCOL_ERROR)
            raise
        except Exception as bug:
            # A codec bug must still end in a GOAWAY and a typed error.
            self._fail(INTERNAL_ERROR)
            raise DownstreamProtocolError("internal HTTP/2 codec error") from bug

    def _receive(self, data: bytes, now: float) -> list[Event]:
        self._batch += 1
        out: list[Event] = []
        if self._buf:
            data = self._buf + data
            self._buf = b""
        n = len(data)
        i = 0
        if self._preface_left:
            # The guard has checked the preface bytes; they only need skipping here.
            i = min(n, self._preface_left)
            self._preface_left -= i
        while n - i >= 9:
            length = data[i] << 16 | data[i + 1] << 8 | data[i + 2]
            end = i + 9 + length
            if end > n:
                break
            sid = (data[i + 5] & 0x7F) << 24 | data[i + 6] << 16 | data[i + 7] << 8 | data[i + 8]
            self._frame(data[i + 3], data[i + 4], sid, data, i + 9, end, now, out)
            i = end
        if i < n:
            self._buf = data[i:]
        # Both flags are reset here, after use, not at the top: mypyc would take an attribute
        # assigned None above as None for the rest of the function.
        if self._windows_changed:
            self._windows_changed = False
            if self._blocked:
                self._flush(out)
        cancelled = self._cancelled
        if cancelled is not None:
            self._cancelled = None
            # Opened and reset within one read: the proxy never needs to hear of it.
            out = [e for e in out if not _concerns(e, cancelled)]
        return out

    def _frame(
        self,
        ftype: int,
        flags: int,
        sid: int,
        data: bytes,
        start: int,
        end: int,
        now: float,
        out: list[Event],
    ) -> None:
        if self._block_sid:
            if ftype != _CONTINUATION or sid != self._block_sid:
                raise H2ConnectionError("frame inside a header block", PROTOCOL_ERROR)
            self._block_parts.append(data[start:end])
            if flags & _END_HEADERS:
                block = b"".join(self._block_parts)
                self._block_parts = []
                self._block_sid = 0
                self._header_block(sid, block, self._block_end_stream, now, out)
            return
        if self._peer_gone and ftype != _GOAWAY:
            raise H2ConnectionError("frame after GOAWAY", PROTOCOL_ERROR)
        if ftype == _DATA:
            self._on_data(flags, sid, data, start, end, now, out)
        elif ftype == _HEADERS:
            self._on_headers(flags, sid, data, start, end, now, out)
        elif ftype == _WINDOW_UPDATE:
            self._on_window_update(sid, data, start, end, now, out)
        elif ftype == _RST_STREAM:
            self._on_rst_stream(sid, data, start, end, now, out)
        elif ftype == _SETTINGS:
            self._on_settings(flags, sid, data, start, end)
        elif ftype == _PING:
            if sid:
                raise H2ConnectionError("PING on a stream", PROTOCOL_ERROR)
            if end - start != 8:
                raise H2ConnectionError("PING of the wrong size", FRAME_SIZE_ERROR)
            if not flags & _ACK:
                self._out += _HEAD.pack(8 << 8 | _PING, _ACK, 0)
                self._out += data[start:end]
        elif ftype == _PRIORITY:
            if not sid:
                raise H2ConnectionError("PRIORITY on stream 0", PROTOCOL_ERROR)
            if end - start != 5:
                raise H2ConnectionError("PRIORITY of the wrong size", FRAME_SIZE_ERROR)
            if _u31(data, start) == sid:
                raise H2ConnectionError("stream depends on itself", PROTOCOL_ERROR)
            # Accepted and ignored (RFC 9113 §5.3.2).
        elif ftype == _GOAWAY:
            self._on_goaway(sid, data, start, end, out)
        elif ftype == _CONTINUATION:
            raise H2ConnectionError("CONTINUATION without HEADERS", PROTOCOL_ERROR)
        elif ftype == _PUSH_PROMISE:
            raise H2ConnectionError("PUSH_PROMISE from a client", PROTOCOL_ERROR)
        # Unknown frame types are ignored (RFC 9113 §4.1); the guard has counted them.

    # -- DATA ------------------------------------------------------------------------------

    def _on_data(
        self, flags: int, sid: int, data: bytes, start: int, end: int, now: float, out: list[Event]
    ) -> None:
        if not sid:
            raise H2ConnectionError("DATA on stream 0", PROTOCOL_ERROR)
        flen = end - start
        pos = start
        pad = 0
        if flags & _PADDED:
            if not flen:
                raise H2ConnectionError("PADDED DATA without a pad length", FRAME_SIZE_ERROR)
            pad = data[pos]
            pos += 1
            if pad > end - pos:
                raise H2ConnectionError("padding longer than the DATA frame", PROTOCOL_ERROR)
        self._conn_recv -= flen
        if self._conn_recv < 0:
            raise H2ConnectionError("DATA beyond the connection window", FLOW_CONTROL_ERROR)
        st = self._streams.get(sid)
        if st is None:
            self._closed_stream_frame(sid, "DATA")
            # Ignored (closed by our RST_STREAM, or answered with one): the connection
            # window still counted it, so it goes back.
            if flen:
                self._release(sid, None, flen)
            return
        if st.remote_ended:
            if flen:
                self._release(sid, None, flen)
            self._stream_error(sid, st, STREAM_CLOSED, now, out)
            return
        st.recv_window -= flen
        if st.recv_window < 0:
            raise H2ConnectionError("DATA beyond the stream window", FLOW_CONTROL_ERROR)
        size = end - pad - pos
        if flen > size:
            self._release(sid, st, flen - size)  # padding: never handed on
        ended = bool(flags & _END_STREAM)
        payload = b""
        if size:
            payload = data[pos : pos + size]
            st.unacked += size
            st.body_bytes += size
            if 0 <= st.expected_length < st.body_bytes:
                raise H2ConnectionError("more DATA than content-length", PROTOCOL_ERROR)
            if st.body_bytes > self._limits.max_body_bytes:
                self._body_too_large(sid, st, ended, out)
                self._guard.stream_reset(now - st.opened_at)
                return
        elif not ended:
            return
        if ended and st.expected_length >= 0 and st.body_bytes != st.expected_length:
            raise H2ConnectionError("less DATA than content-length", PROTOCOL_ERROR)
        out.append(RequestData(sid, payload, ended))
        if ended:
            self._remote_end(sid, st)

    def _closed_stream_frame(self, sid: int, kind: str) -> None:
        """A DATA or HEADERS frame for a stream not in the table: returns when it is to be
        ignored, sends RST_STREAM(STREAM_CLOSED) when the client had reset the stream, raises
        for idle streams and streams the client had ended."""
        if sid > self._highest or not sid & 1:
            raise H2ConnectionError(f"{kind} on an idle stream", PROTOCOL_ERROR)
        how = self._closed.get(sid, 0)
        if how == _CLOSED_SENT_RST:
            return
        if how == _CLOSED_RECV_RST:
            self._rst(sid, STREAM_CLOSED)
            self._guard.glitch()
            return
        if how == _CLOSED_NORMAL:
            raise H2ConnectionError(f"{kind} on a closed stream", STREAM_CLOSED)
        raise H2ConnectionError(f"{kind} on a closed or skipped stream", PROTOCOL_ERROR)

    # -- HEADERS ---------------------------------------------------------------------------

    def _on_headers(
        self, flags: int, sid: int, data: bytes, start: int, end: int, now: float, out: list[Event]
    ) -> None:
        if not sid & 1:
            raise H2ConnectionError("HEADERS on stream 0 or an even stream", PROTOCOL_ERROR)
        pos = start
        pad = 0
        if flags & _PADDED:
            if pos >= end:
                raise H2ConnectionError("PADDED HEADERS without a pad length", FRAME_SIZE_ERROR)
            pad = data[pos]
            pos += 1
        if flags & _PRIORITY_FLAG:
            if end - pos < 5:
                raise H2ConnectionError("HEADERS too short for its priority", FRAME_SIZE_ERROR)
            if _u31(data, pos) == sid:
                raise H2ConnectionError("stream depends on itself", PROTOCOL_ERROR)
            pos += 5
        if pad > end - pos:
            raise H2ConnectionError("padding longer than the HEADERS frame", PROTOCOL_ERROR)
        fragment = data[pos : end - pad]
        end_stream = bool(flags & _END_STREAM)
        if flags & _END_HEADERS:
            self._header_block(sid, fragment, end_stream, now, out)
        else:
            self._block_sid = sid
            self._block_end_stream = end_stream
            self._block_parts = [fragment]

    def _header_block(
        self, sid: int, block: bytes, end_stream: bool, now: float, out: list[Event]
    ) -> None:
        # Decoded first, whatever becomes of the stream: the dynamic table must stay in step.
        try:
            fields = self._decoder.decode(block)
        except HeaderListTooLarge as too_large:
            raise H2ConnectionError("header list too large", ENHANCE_YOUR_CALM) from too_large
        except HpackError as undecodable:
            raise H2ConnectionError("undecodable header block", COMPRESSION_ERROR) from undecodable
        if sid > self._highest:
            self._highest = sid
            self._on_request(sid, fields, end_stream, now, out)
            return
        st = self._streams.get(sid)
        if st is None:
            self._closed_stream_frame(sid, "HEADERS")
            return
        if st.remote_ended:
            self._stream_error(sid, st, STREAM_CLOSED, now, out)
            return
        if not end_stream:
            raise H2ConnectionError("trailers without END_STREAM", PROTOCOL_ERROR)
        try:
            check_trailers(fields, self._limits.max_header_count)
        except MalformedRequestError:
            self._abort(sid, st, PROTOCOL_ERROR, out)
            self._guard.glitch()
            self._guard.stream_reset(now - st.opened_at)
            return
        # Valid trailers are dropped; they end the body.
        if st.expected_length >= 0 and st.body_bytes != st.expected_length:
            raise H2ConnectionError("less DATA than content-length", PROTOCOL_ERROR)
        out.append(RequestData(sid, b"", True))
        self._remote_end(sid, st)

    def _on_request(
        self, sid: int, fields: list[tuple[bytes, bytes]], ended: bool, now: float, out: list[Event]
    ) -> None:
        declared = _content_length(fields)
        if 0 <= self._drain_last_id < sid:
            self._rst(sid, REFUSED_STREAM)
            self._remember(sid, _CLOSED_SENT_RST)
            return
        guard = self._guard
        guard.stream_opened()
        limits = self._limits
        if len(self._streams) >= limits.h2_max_concurrent_streams:
            self._rst(sid, REFUSED_STREAM)
            self._remember(sid, _CLOSED_SENT_RST)
            guard.stream_reset(0.0)
            return
        try:
            method, path, authority, headers, length = parse_request_headers(
                fields, limits.max_header_count
            )
        except RequestHeadersTooLargeError:
            self._local_reply(sid, 431, ended, self._peer_initial_window)
            if not ended:
                guard.stream_reset(0.0)
            return
        except MalformedRequestError:
            self._rst(sid, PROTOCOL_ERROR)
            self._remember(sid, _CLOSED_SENT_RST)
            guard.glitch()
            guard.stream_reset(0.0)
            return
        if length is not None and length > limits.max_body_bytes:
            self._local_reply(sid, 413, ended, self._peer_initial_window)
            if not ended:
                guard.stream_reset(0.0)
            return
        if ended and declared > 0:
            raise H2ConnectionError("less DATA than content-length", PROTOCOL_ERROR)
        st = _Stream(now, ended, self._batch, self._peer_initial_window, self._recv_initial)
        st.expected_length = declared
        self._streams[sid] = st
        out.append(RequestHeaders(sid, method, path, authority, headers, ended, False, length))

    # -- control frames --------------------------------------------------------------------

    def _on_window_update(
        self, sid: int, data: bytes, start: int, end: int, now: float, out: list[Event]
    ) -> None:
        if end - start != 4:
            raise H2ConnectionError("WINDOW_UPDATE of the wrong size", FRAME_SIZE_ERROR)
        increment = _u31(data, start)
        if not increment:
            # A stream error would do (RFC 9113 §6.9); a connection error leaves no reset to
            # abuse.
            raise H2ConnectionError("WINDOW_UPDATE of 0", PROTOCOL_ERROR)
        if not sid:
            self._conn_send += increment
            if self._conn_send > _MAX_WINDOW:
                raise H2ConnectionError("connection window above 2^31-1", FLOW_CONTROL_ERROR)
            self._windows_changed = True
            return
        st = self._streams.get(sid)
        if st is None:
            if sid > self._highest or not sid & 1:
                raise H2ConnectionError("WINDOW_UPDATE on an idle stream", PROTOCOL_ERROR)
            return  # closed: may have crossed our END_STREAM or RST_STREAM
        st.send_window += increment
        if st.send_window > _MAX_WINDOW:
            self._stream_error(sid, st, FLOW_CONTROL_ERROR, now, out)
            return
        self._windows_changed = True

    def _on_rst_stream(
        self, sid: int, data: bytes, start: int, end: int, now: float, out: list[Event]
    ) -> None:
        if end - start != 4:
            raise H2ConnectionError("RST_STREAM of the wrong size", FRAME_SIZE_ERROR)
        if not sid:
            raise H2ConnectionError("RST_STREAM on stream 0", PROTOCOL_ERROR)
        st = self._streams.get(sid)
        if st is None:
            if sid > self._highest or not sid & 1:
                raise H2ConnectionError("RST_STREAM on an idle stream", PROTOCOL_ERROR)
            return  # already closed
        code = _u32(data, start)
        self._remove(sid, st, _CLOSED_RECV_RST)
        out.append(StreamReset(sid, code))
        self._guard.stream_reset(now - st.opened_at)
        self._cancel_if_new(sid, st)

    def _on_settings(self, flags: int, sid: int, data: bytes, start: int, end: int) -> None:
        if sid:
            raise H2ConnectionError("SETTINGS on a stream", PROTOCOL_ERROR)
        if flags & _ACK:
            if end != start:
                raise H2ConnectionError("SETTINGS ACK with a payload", FRAME_SIZE_ERROR)
            if not self._settings_acked:
                self._settings_acked = True
                self._apply_recv_window(self._limits.h2_initial_stream_window)
            return
        if (end - start) % 6:
            raise H2ConnectionError("SETTINGS of the wrong size", FRAME_SIZE_ERROR)
        # Processed in order (RFC 9113 §6.5.3); unknown settings are ignored.
        for pos in range(start, end, 6):
            ident = data[pos] << 8 | data[pos + 1]
            value = _u32(data, pos + 2)
            if ident == _INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise H2ConnectionError("INITIAL_WINDOW_SIZE above 2^31-1", FLOW_CONTROL_ERROR)
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                if delta:
                    for st in self._streams.values():
                        st.send_window += delta
                        if st.send_window > _MAX_WINDOW:
                            raise H2ConnectionError(
                                "stream window above 2^31-1", FLOW_CONTROL_ERROR
                            )
                    self._windows_changed = True
            elif ident == _MAX_FRAME_SIZE:
                if value < _FRAME_SIZE or value > _MAX_FRAME_SIZE_LIMIT:
                    raise H2ConnectionError("MAX_FRAME_SIZE out of range", PROTOCOL_ERROR)
                self._peer_max_frame = value
                self._windows_changed = True
            elif ident == _ENABLE_PUSH:
                if value > 1:
                    raise H2ConnectionError("ENABLE_PUSH not 0 or 1", PROTOCOL_ERROR)
            elif ident == _HEADER_TABLE_SIZE and value < DEFAULT_TABLE_SIZE:
                self._table_size_update = True
        self._out += _HEAD.pack(_SETTINGS, _ACK, 0)

    def _apply_recv_window(self, initial: int) -> None:
        """Our SETTINGS_INITIAL_WINDOW_SIZE took effect: open streams' windows move with it."""
        delta = initial - self._recv_initial
        self._recv_initial = initial
        if delta:
            for st in self._streams.values():
                st.recv_window += delta
                st.recv_max += delta

    def _on_goaway(self, sid: int, data: bytes, start: int, end: int, out: list[Event]) -> None:
        if sid:
            raise H2ConnectionError("GOAWAY on a stream", PROTOCOL_ERROR)
        if end - start < 8:
            raise H2ConnectionError("GOAWAY too short", FRAME_SIZE_ERROR)
        if self._peer_gone:
            return
        # The client is leaving: nothing more is sent, and what waited for windows goes.
        self._peer_gone = True
        for st in self._blocked.values():
            st.pending = None
            st.pending_bytes = 0
        self._blocked.clear()
        out.append(ConnectionTerminated(_u32(data, start + 4), _u31(data, start)))

    # -- stream ends -----------------------------------------------------------------------

    def _remote_end(self, sid: int, st: _Stream) -> None:
        st.remote_ended = True
        if st.local_ended:
            self._remove(sid, st, _CLOSED_NORMAL)

    def _local_end(self, sid: int, st: _Stream) -> None:
        st.local_ended = True
        if st.remote_ended:
            self._remove(sid, st, _CLOSED_NORMAL)

    def _remove(self, sid: int, st: _Stream, how: int) -> None:
        """Forget the stream, returning its unacknowledged window and dropping its queue."""
        self._streams.pop(sid, None)
        if st.unacked:
            self._release(sid, None, st.unacked)
            st.unacked = 0
        if st.pending is not None:
            st.pending = None
            st.pending_bytes = 0
            self._blocked.pop(sid, None)
        self._remember(sid, how)

    def _remember(self, sid: int, how: int) -> None:
        closed = self._closed
        closed[sid] = how
        if len(closed) > MAX_CLOSED_STREAMS:
            del closed[next(iter(closed))]

    def _stream_error(self, sid: int, st: _Stream, code: int, now: float, out: list[Event]) -> None:
        """The client broke the rules on one stream: reset it, counted as its doing."""
        self._rst(sid, code)
        self._remove(sid, st, _CLOSED_SENT_RST)
        out.append(StreamReset(sid, code))
        self._guard.glitch()
        self._guard.stream_reset(now - st.opened_at)
        self._cancel_if_new(sid, st)

    def _cancel_if_new(self, sid: int, st: _Stream) -> None:
        if st.batch == self._batch:
            if self._cancelled is None:
                self._cancelled = set()
            self._cancelled.add(sid)

    def _abort(self, sid: int, st: _Stream, code: int, out: list[Event]) -> None:
        self._rst(sid, code)
        self._remove(sid, st, _CLOSED_SENT_RST)
        out.append(StreamReset(sid, code))

    def _body_too_large(self, sid: int, st: _Stream, ended: bool, out: list[Event]) -> None:
        self._remove(sid, st, _CLOSED_SENT_RST)
        if st.response_started:
            self._rst(sid, CANCEL)
            code = CANCEL
        else:
            self._local_reply(sid, 413, ended, st.send_window)
            code = NO_ERROR
        out.append(StreamReset(sid, code))

    def _local_reply(self, sid: int, status: int, request_ended: bool, window: int) -> None:
        """Answer a request the proxy never sees, then stop the upload (RFC 9113 §8.1)."""
        body = LOCAL_REPLY_BODY[status]
        size = len(body)
        fits = size <= min(window, self._conn_send, self._peer_max_frame)
        block = bytearray()
        if self._table_size_update:
            self._table_size_update = False
            block.append(TABLE_SIZE_ZERO)
        encode_status(block, status)
        encode_field(block, b"content-type", b"application/json")
        if fits:
            encode_field(block, b"content-length", b"%d" % size)
        self._write_headers(sid, block, not fits)
        if fits:
            self._out += _HEAD.pack(size << 8 | _DATA, _END_STREAM, sid)
            self._out += body
            self._conn_send -= size
        if request_ended:
            self._remember(sid, _CLOSED_NORMAL)
        else:
            self._rst(sid, NO_ERROR)
            self._remember(sid, _CLOSED_SENT_RST)

    # -- receive windows -------------------------------------------------------------------

    def _release(self, sid: int, st: _Stream | None, nbytes: int) -> None:
        """``nbytes`` the client sent were consumed: hand them back to the connection window
        and, for a stream still receiving, to its window, when h2's rule says it is time."""
        processed = self._conn_processed + nbytes
        increment = _window_increment(self._conn_recv, self._conn_recv_max, processed)
        if increment < 0:
            self._conn_processed = processed
        else:
            self._conn_processed = 0
            if increment:
                self._conn_recv += increment
                self._window_update(0, increment)
        if st is None or st.remote_ended:
            return
        processed = st.recv_processed + nbytes
        increment = _window_increment(st.recv_window, st.recv_max, processed)
        if increment < 0:
            st.recv_processed = processed
        else:
            st.recv_processed = 0
            if increment:
                st.recv_window += increment
                self._window_update(sid, increment)

    # -- sending ---------------------------------------------------------------------------

    def send_continue(self, stream_id: int) -> None:
        """HTTP/2 clients do not wait for 100 Continue."""

    def send_headers(self, stream_id: int, status: int, headers: Headers, end_stream: bool) -> None:
        st = self._streams.get(stream_id)
        if st is None or st.response_started:
            return  # reset meanwhile: the proxy learns it from the StreamReset event
        if self._failed or self._peer_gone:
            self._remove(stream_id, st, _CLOSED_NORMAL)
            return
        out = self._out
        at = len(out)
        out += b"\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # the frame header, written below
        if self._table_size_update:
            self._table_size_update = False
            out.append(TABLE_SIZE_ZERO)
        encode_status(out, status)
        for field in headers:
            name = field[0]
            if name in RESPONSE_CONNECTION_SPECIFIC:
                continue
            encode_field(out, name if name.islower() else name.lower(), field[1])
        size = len(out) - at - 9
        flags = _END_STREAM if end_stream else 0
        if size <= self._peer_max_frame:
            out[at : at + 9] = _HEAD.pack(size << 8 | _HEADERS, flags | _END_HEADERS, stream_id)
        else:
            block = bytes(out[at + 9 :])
            del out[at:]
            self._write_headers(stream_id, block, end_stream)
        st.response_started = True
        if end_stream:
            self._local_end(stream_id, st)

    def _write_headers(self, sid: int, block: bytes | bytearray, end_stream: bool) -> None:
        """HEADERS, plus CONTINUATION frames when the block exceeds the peer's frame size."""
        out = self._out
        size = len(block)
        max_frame = self._peer_max_frame
        flags = _END_STREAM if end_stream else 0
        if size <= max_frame:
            out += _HEAD.pack(size << 8 | _HEADERS, flags | _END_HEADERS, sid)
            out += block
            return
        view = memoryview(block)
        out += _HEAD.pack(max_frame << 8 | _HEADERS, flags, sid)
        out += view[:max_frame]
        pos = max_frame
        while pos < size:
            chunk = min(max_frame, size - pos)
            last = pos + chunk >= size
            out += _HEAD.pack(chunk << 8 | _CONTINUATION, _END_HEADERS if last else 0, sid)
            out += view[pos : pos + chunk]
            pos += chunk

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        st = self._streams.get(stream_id)
        if st is None or st.local_ended or st.end_pending or not st.response_started:
            return  # reset meanwhile, or a proxy bug that would put DATA before HEADERS
        if self._failed or self._peer_gone:
            self._remove(stream_id, st, _CLOSED_NORMAL)
            return
        size = len(data)
        pending = st.pending
        if pending:
            if size:
                pending.append(memoryview(data))
                st.pending_bytes += size
            st.end_pending = end_stream
            return
        if size <= self._peer_max_frame and size <= st.send_window and size <= self._conn_send:
            if size or end_stream:
                out = self._out
                out += _HEAD.pack(size << 8 | _DATA, _END_STREAM if end_stream else 0, stream_id)
                out += data
                st.send_window -= size
                self._conn_send -= size
                self._guard.data_frames_sent(1)
                if end_stream:
                    self._local_end(stream_id, st)
            return
        st.pending = deque((memoryview(data),))
        st.pending_bytes = size
        st.end_pending = end_stream
        self._blocked[stream_id] = st
        self._send_queued(stream_id, st)

    def _flush(self, out: list[Event]) -> None:
        """Windows opened: send what now fits, telling the proxy which streams have room.
        A stream still blocked moves to the back, so none hogs the connection window."""
        blocked = self._blocked
        for sid, st in list(blocked.items()):
            if self._conn_send <= 0:
                break
            before = st.pending_bytes
            self._send_queued(sid, st)
            if st.pending_bytes == before:
                continue
            if st.pending_bytes <= self._low_water:
                out.append(StreamDrained(sid))
            if sid in blocked:
                del blocked[sid]
                blocked[sid] = st

    def _send_queued(self, sid: int, st: _Stream) -> None:
        pending = st.pending
        if pending is None:
            return
        out = self._out
        max_frame = self._peer_max_frame
        frames = 0
        while pending:
            window = min(st.send_window, self._conn_send)
            if window <= 0:
                break
            head = pending[0]
            size = min(window, max_frame, len(head))
            if size == len(head):
                pending.popleft()
                chunk = head
            else:
                pending[0] = head[size:]
                chunk = head[:size]
            st.pending_bytes -= size
            end = st.end_pending and not pending
            out += _HEAD.pack(size << 8 | _DATA, _END_STREAM if end else 0, sid)
            out += chunk
            st.send_window -= size
            self._conn_send -= size
            frames += 1
        if frames:
            self._guard.data_frames_sent(frames)
        if not pending:
            st.pending = None
            self._blocked.pop(sid, None)
            if st.end_pending:
                self._local_end(sid, st)

    def pending_bytes(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.pending_bytes if st is not None else 0

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        st = self._streams.get(stream_id)
        if st is None or nbytes <= 0:
            return  # a removed stream returned its window already
        nbytes = min(nbytes, st.unacked)
        if nbytes:
            st.unacked -= nbytes
            self._release(stream_id, st, nbytes)

    def reset_stream(self, stream_id: int) -> None:
        """The proxy gives up on a stream; not the client's doing, so not counted."""
        st = self._streams.get(stream_id)
        if st is not None:
            if not (self._failed or self._peer_gone):
                self._rst(stream_id, CANCEL)
            self._remove(stream_id, st, _CLOSED_SENT_RST)

    def start_drain(self) -> None:
        if self._drain_last_id >= 0 or self._failed or self._peer_gone:
            return
        self._drain_last_id = self._highest
        self._goaway(self._highest, NO_ERROR)

    def send_error_response(self, status: int, headers: Headers, body: bytes) -> bool:
        return False  # GOAWAY or RST_STREAM is already queued

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    # -- frames out ------------------------------------------------------------------------

    def _rst(self, sid: int, code: int) -> None:
        self._out += _HEAD.pack(4 << 8 | _RST_STREAM, 0, sid)
        self._out += code.to_bytes(4, "big")

    def _window_update(self, sid: int, increment: int) -> None:
        self._out += _HEAD.pack(4 << 8 | _WINDOW_UPDATE, 0, sid)
        self._out += increment.to_bytes(4, "big")

    def _goaway(self, last: int, code: int) -> None:
        self._out += _HEAD.pack(8 << 8 | _GOAWAY, 0, 0)
        self._out += _PAIR.pack(last, code)

    def _fail(self, code: int) -> None:
        if self._failed:
            return
        self._failed = True
        self._goaway(self._highest, code)

    # -- state ---------------------------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        if self._failed or self._peer_gone:
            return False
        return self._drain_last_id < 0 or bool(self._streams)

    @property
    def idle(self) -> bool:
        return not self._streams

    @property
    def receiving(self) -> Literal["idle", "headers", "body"]:
        # Header timeouts are per stream in HTTP/2, handled by the stream idle timer.
        return "body" if self._streams else "idle"

    @property
    def pipelined(self) -> int:
        return len(self._streams)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def buffered_header_block_bytes(self) -> int:
        """Bytes of an unfinished header block held here (bounded by the guard)."""
        return self._guard.buffered_header_block_bytes


def _u31(data: bytes, at: int) -> int:
    return (data[at] & 0x7F) << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]


def _u32(data: bytes, at: int) -> int:
    return data[at] << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]


def _content_length(fields: list[tuple[bytes, bytes]]) -> int:
    """The request's Content-Length, -1 when absent. A value that is not a number, or values
    that disagree, make the request unusable: a connection error, as in the reference."""
    found = -1
    for field in fields:
        if field[0] == b"content-length":
            value = field[1]
            if not value.isdigit() or len(value) > 18:
                raise H2ConnectionError("invalid content-length", PROTOCOL_ERROR)
            length = int(value)
            if found >= 0 and length != found:
                raise H2ConnectionError("conflicting content-length values", PROTOCOL_ERROR)
            found = length
    return found


def _concerns(event: Event, stream_ids: set[int]) -> bool:
    return not isinstance(event, ConnectionTerminated) and event.stream_id in stream_ids
