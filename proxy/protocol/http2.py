"""The downstream HTTP/2 codec (server side), on top of h2.

How this works: `H2ServerCodec` wraps one `h2.connection.H2Connection`. ``receive`` first lets
`H2AbuseGuard` scan the frame headers (floods, oversized frames and header blocks are refused
before h2 buffers anything), then feeds h2 and maps its events to `proxy.events`. A stream is
*announced* when its RequestHeaders event is emitted and lives in ``_streams`` until both
directions ended or either side reset it; a stream the codec refuses or rejects is never
announced, and an announced stream the codec aborts gets a StreamReset event.

Deliberate departures from h2's defaults, each because h2 would close the whole connection
where RFC 9113 asks for a stream error, or would buffer before checking:

- inbound header validation is ours (`http2_headers`): malformed requests reset one stream;
- h2 is told the concurrency limit is 2**31-1 while the client is told
  ``h2_max_concurrent_streams``: h2 turns an excess stream into a connection error before
  decoding its HPACK block, we refuse it with REFUSED_STREAM after h2 decoded it;
- the drain GOAWAY is framed here: h2's ``close_connection`` moves its state machine to
  CLOSED, after which the streams still open could not be answered.

Flow control: received DATA is acknowledged only when the proxy calls
``acknowledge_received`` (padding at once); what the proxy sends beyond the peer's windows
waits in a per-stream queue of memoryviews, flushed on WINDOW_UPDATE and SETTINGS, with
StreamDrained once a stream's queue is at or below half of ``h2_max_pending_send_bytes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated as H2ConnectionTerminated,
)
from h2.events import (
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    TrailersReceived,
    WindowUpdated,
)
from h2.events import (
    StreamReset as H2StreamReset,
)
from h2.exceptions import H2Error
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from proxy.errors import DownstreamProtocolError, RequestHeadersTooLargeError
from proxy.events import (
    ConnectionTerminated,
    Event,
    RequestData,
    RequestHeaders,
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
from proxy.protocol.http2_streams import H2StreamState, H2StreamTable
from proxy.protocol.limits import CodecLimits

_DEFAULT_WINDOW = 65535
_H2_UNLIMITED_STREAMS = 2**31 - 1
_KNOWN_SETTINGS = frozenset(int(code) for code in SettingCodes)
_STATUS = {code: str(code).encode() for code in range(100, 600)}


class H2ServerCodec:
    alpn = "h2"

    def __init__(self, limits: CodecLimits) -> None:
        self._limits = limits
        conn = H2Connection(
            config=H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        advertised = {
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.h2_initial_stream_window,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
            SettingCodes.MAX_FRAME_SIZE: 16384,
        }
        conn.local_settings = Settings(client=False, initial_values=advertised)
        conn.initiate_connection()
        internal = dict(advertised)
        internal[SettingCodes.MAX_CONCURRENT_STREAMS] = _H2_UNLIMITED_STREAMS
        internal[SettingCodes.INITIAL_WINDOW_SIZE] = _DEFAULT_WINDOW
        conn.local_settings = Settings(client=False, initial_values=internal)
        # Pending until the client ACKs our SETTINGS (RFC 9113 §6.5.3); h2 then resizes the
        # windows of the streams already open.
        conn.local_settings.initial_window_size = limits.h2_initial_stream_window
        conn.decoder.max_header_list_size = limits.max_header_bytes
        if limits.h2_initial_connection_window > _DEFAULT_WINDOW:
            conn.increment_flow_control_window(
                limits.h2_initial_connection_window - _DEFAULT_WINDOW
            )
        self._conn = conn
        self._guard = H2AbuseGuard(limits, conn.max_inbound_frame_size)
        self._table = H2StreamTable(conn, self._guard, limits.h2_max_pending_send_bytes // 2)
        self._streams = self._table.streams
        self._prefix = b""  # frames we built ourselves, to go out before h2's bytes
        self._batch = 0
        self._failed = False
        self._peer_gone = False
        self._drain_last_id: int | None = None

    # -- receiving -----------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        if self._failed:
            raise DownstreamProtocolError("HTTP/2 connection already failed")
        try:
            self._guard.scan(data, now)
            try:
                h2_events = self._conn.receive_data(data)
            except H2ProtocolError as exc:
                self._failed = True  # h2 queued its GOAWAY already
                # h2's messages may quote client bytes: keep them short and escaped for logs.
                reason = f"{type(exc).__name__}: {str(exc)[:120]!r}"
                raise DownstreamProtocolError(f"HTTP/2 protocol error ({reason})") from exc
            return self._dispatch(h2_events, now)
        except H2AbuseError as abuse:
            self._fail(abuse.error_code)
            raise
        except DownstreamProtocolError:
            raise
        except Exception as bug:
            # A library or codec bug must still end in a GOAWAY and a typed error.
            self._fail(ErrorCodes.INTERNAL_ERROR)
            raise DownstreamProtocolError("internal HTTP/2 codec error") from bug

    def _dispatch(self, h2_events: Iterable[object], now: float) -> list[Event]:
        self._batch += 1
        out: list[Event] = []
        cancelled: set[int] | None = None
        windows_changed = False
        for ev in h2_events:
            kind = type(ev)
            if kind is DataReceived:
                self._on_data(cast(DataReceived, ev), now, out)
            elif kind is RequestReceived:
                self._on_request(cast(RequestReceived, ev), now, out)
            elif kind is StreamEnded:
                self._on_stream_ended(cast(StreamEnded, ev).stream_id, out)
            elif kind is WindowUpdated:
                windows_changed = True
            elif kind is H2StreamReset:
                sid = self._on_reset(cast(H2StreamReset, ev), now, out)
                if sid:
                    cancelled = cancelled or set()
                    cancelled.add(sid)
            elif kind is RemoteSettingsChanged:
                self._on_settings(cast(RemoteSettingsChanged, ev))
                windows_changed = True
            elif kind is TrailersReceived:
                self._on_trailers(cast(TrailersReceived, ev), now, out)
            elif kind is H2ConnectionTerminated:
                self._on_goaway(cast(H2ConnectionTerminated, ev), out)
            # PING (h2 answers it), SETTINGS ACK, PRIORITY, unknown frames: nothing to do.
        if windows_changed and self._table.has_blocked:
            self._table.flush(out)
        if cancelled:
            # Opened and reset within one read: the proxy never needs to hear of it.
            out = [e for e in out if not _concerns(e, cancelled)]
        return out

    def _on_request(self, ev: RequestReceived, now: float, out: list[Event]) -> None:
        sid = ev.stream_id
        ended = ev.stream_ended is not None
        if self._drain_last_id is not None and sid > self._drain_last_id:
            self._reset_h2(sid, ErrorCodes.REFUSED_STREAM)
            return
        guard = self._guard
        guard.stream_opened()
        limits = self._limits
        if len(self._streams) >= limits.h2_max_concurrent_streams:
            self._reset_h2(sid, ErrorCodes.REFUSED_STREAM)
            guard.stream_reset(0.0)
            return
        block = cast(Iterable[tuple[bytes, bytes]], ev.headers)
        try:
            method, path, authority, headers, length = parse_request_headers(
                block, limits.max_header_count
            )
        except RequestHeadersTooLargeError:
            self._local_reply(sid, 431, ended)
            if not ended:
                guard.stream_reset(0.0)
            return
        except MalformedRequestError:
            self._reset_h2(sid, ErrorCodes.PROTOCOL_ERROR)
            guard.glitch()
            guard.stream_reset(0.0)
            return
        if length is not None and length > limits.max_body_bytes:
            self._local_reply(sid, 413, ended)
            if not ended:
                guard.stream_reset(0.0)
            return
        self._streams[sid] = H2StreamState(now, ended, self._batch)
        out.append(RequestHeaders(sid, method, path, authority, headers, ended, False, length))

    def _on_data(self, ev: DataReceived, now: float, out: list[Event]) -> None:
        sid = ev.stream_id
        data = ev.data
        size = len(data)
        st = self._streams.get(sid)
        if st is None:
            # Data h2 still accepted for a stream we refused or finished: return the window.
            if ev.flow_controlled_length:
                self._table.ack(sid, ev.flow_controlled_length)
            return
        if ev.flow_controlled_length > size:
            self._table.ack(sid, ev.flow_controlled_length - size)  # padding: never handed on
        ended = ev.stream_ended is not None
        if size:
            st.unacked += size
            st.body_bytes += size
            if st.body_bytes > self._limits.max_body_bytes:
                self._body_too_large(sid, st, ended, out)
                self._guard.stream_reset(now - st.opened_at)
                return
        elif not ended:
            return
        out.append(RequestData(sid, data, ended))
        if ended:
            self._table.remote_end(sid, st)

    def _on_stream_ended(self, sid: int, out: list[Event]) -> None:
        st = self._streams.get(sid)
        if st is None or st.remote_ended:
            return  # already reported with its HEADERS or DATA
        out.append(RequestData(sid, b"", True))
        self._table.remote_end(sid, st)

    def _on_reset(self, ev: H2StreamReset, now: float, out: list[Event]) -> int:
        """Returns the stream id when it was announced in this same read."""
        sid = ev.stream_id
        st = self._streams.get(sid)
        if st is None:
            return 0
        self._table.remove(sid, st)
        out.append(StreamReset(sid, int(ev.error_code)))
        if not ev.remote_reset:
            self._guard.glitch()  # h2 reset it because of a client error (MadeYouReset)
        self._guard.stream_reset(now - st.opened_at)
        return sid if st.batch == self._batch else 0

    def _on_trailers(self, ev: TrailersReceived, now: float, out: list[Event]) -> None:
        sid = ev.stream_id
        st = self._streams.get(sid)
        if st is None:
            return
        try:
            check_trailers(
                cast(Iterable[tuple[bytes, bytes]], ev.headers), self._limits.max_header_count
            )
        except MalformedRequestError:
            self._abort(sid, st, ErrorCodes.PROTOCOL_ERROR, out)
            self._guard.glitch()
            self._guard.stream_reset(now - st.opened_at)
        # Valid trailers are dropped; the StreamEnded that follows ends the body.

    def _on_settings(self, ev: RemoteSettingsChanged) -> None:
        # h2 keeps a deque per setting id it ever saw; unknown ids would pile up.
        remote = self._conn.remote_settings
        for key in ev.changed_settings:
            if key not in _KNOWN_SETTINGS:
                remote.pop(key, None)

    def _on_goaway(self, ev: H2ConnectionTerminated, out: list[Event]) -> None:
        # h2 is CLOSED now and will send nothing more: drop what waited for windows.
        self._peer_gone = True
        self._table.drop_all_queues()
        out.append(ConnectionTerminated(int(ev.error_code or 0), ev.last_stream_id or 0))

    def _body_too_large(self, sid: int, st: H2StreamState, ended: bool, out: list[Event]) -> None:
        self._table.remove(sid, st)
        if st.response_started:
            self._reset_h2(sid, ErrorCodes.CANCEL)
            code = ErrorCodes.CANCEL
        else:
            self._local_reply(sid, 413, ended)
            code = ErrorCodes.NO_ERROR
        out.append(StreamReset(sid, int(code)))

    def _local_reply(self, sid: int, status: int, request_ended: bool) -> None:
        """Answer a request the proxy never sees, then stop the upload (RFC 9113 §8.1)."""
        conn = self._conn
        body = LOCAL_REPLY_BODY[status]
        try:
            fits = len(body) <= min(
                conn.local_flow_control_window(sid), conn.max_outbound_frame_size
            )
            headers = [(b":status", _STATUS[status]), (b"content-type", b"application/json")]
            if fits:
                headers.append((b"content-length", str(len(body)).encode()))
            conn.send_headers(sid, headers, end_stream=not fits)
            if fits:
                conn.send_data(sid, body, end_stream=True)
            if not request_ended:
                conn.reset_stream(sid, ErrorCodes.NO_ERROR)
        except H2Error:
            return  # the stream closed meanwhile

    # -- sending -------------------------------------------------------------------------

    def send_continue(self, stream_id: int) -> None:
        """HTTP/2 clients do not wait for 100 Continue."""

    def send_headers(self, stream_id: int, status: int, headers: Headers, end_stream: bool) -> None:
        block: Headers = [(b":status", _STATUS.get(status) or str(status).encode())]
        for field in headers:
            name = field[0]
            if name in RESPONSE_CONNECTION_SPECIFIC:
                continue
            block.append(field if name.islower() else (name.lower(), field[1]))
        self._table.send_headers(stream_id, block, end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._table.send_data(stream_id, data, end_stream)

    def pending_bytes(self, stream_id: int) -> int:
        return self._table.pending_bytes(stream_id)

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        self._table.acknowledge(stream_id, nbytes)

    def reset_stream(self, stream_id: int) -> None:
        """The proxy gives up on a stream; not the client's doing, so not counted."""
        st = self._streams.get(stream_id)
        if st is not None:
            self._reset_h2(stream_id, ErrorCodes.CANCEL)
            self._table.remove(stream_id, st)

    def start_drain(self) -> None:
        if self._drain_last_id is not None or self._failed or self._peer_gone:
            return
        last = self._conn.highest_inbound_stream_id
        self._drain_last_id = last
        goaway = GoAwayFrame(0, last_stream_id=last, error_code=ErrorCodes.NO_ERROR)
        self._prefix += self._conn.data_to_send() + goaway.serialize()

    def send_error_response(self, status: int, headers: Headers, body: bytes) -> bool:
        return False  # GOAWAY or RST_STREAM is already queued

    def data_to_send(self) -> bytes:
        data = self._conn.data_to_send()
        if self._prefix:
            data = self._prefix + data
            self._prefix = b""
        return data

    # -- state ---------------------------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        if self._failed or self._peer_gone:
            return False
        return self._drain_last_id is None or bool(self._streams)

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
        """Bytes of an unfinished header block h2 may be holding (bounded by the guard)."""
        return self._guard.buffered_header_block_bytes

    # -- helpers -------------------------------------------------------------------------

    def _abort(self, sid: int, st: H2StreamState, code: ErrorCodes, out: list[Event]) -> None:
        self._reset_h2(sid, code)
        self._table.remove(sid, st)
        out.append(StreamReset(sid, int(code)))

    def _reset_h2(self, sid: int, code: ErrorCodes) -> None:
        try:
            self._conn.reset_stream(sid, code)
        except H2Error:
            return  # already closed on h2's side

    def _fail(self, code: int) -> None:
        if self._failed:
            return
        self._failed = True
        try:
            self._conn.close_connection(error_code=code)
        except H2Error:
            goaway = GoAwayFrame(
                0, last_stream_id=self._conn.highest_inbound_stream_id, error_code=code
            )
            self._prefix += self._conn.data_to_send() + goaway.serialize()


def _concerns(event: Event, stream_ids: set[int]) -> bool:
    return not isinstance(event, ConnectionTerminated) and event.stream_id in stream_ids
