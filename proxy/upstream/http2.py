"""An upstream HTTP/2 connection: many exchanges as streams of one h2 client connection.

How this works: ``connection_made`` sends the preface; the connection is ready once the
server's first SETTINGS arrives (so we know its stream limit before opening streams). The pool
binds exchanges while ``has_capacity``: each gets a stream, its HEADERS and whatever body was
buffered, sent within the peer's flow-control windows (the rest waits in the stream's pending
list and ``write_blocked`` is True until WINDOW_UPDATE drains it). Received DATA goes straight
to the handler and is acknowledged (reopening the window) right after — unless the exchange is
paused, in which case the bytes are remembered and acknowledged on resume, so a slow client
stops the server within one window. Our connection window is large enough that a paused stream
never starves its siblings. A GOAWAY (handled by `GoawaySplitter`, not h2) fails the streams
the server will not process with request_bytes_sent=False, lets the others finish and closes the
connection once they have.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from proxy.errors import UpstreamError, UpstreamProtocolError, UpstreamResetError
from proxy.headers import Headers
from proxy.upstream.api import UpstreamSettings
from proxy.upstream.exchange import ACTIVE, DONE, PooledExchange
from proxy.upstream.h2_frames import GoawaySplitter, error_name, request_headers

if TYPE_CHECKING:
    from proxy.upstream.pool import OriginPool

STREAM_WINDOW_BYTES = 512 * 1024  # what one stream may have in flight towards us
_MAX_WINDOW = 2**31 - 1
_LAST_STREAM_ID = 2**31 - 1


class _Stream:
    __slots__ = ("ex", "pending", "request_done", "response_started", "withheld")

    def __init__(self, ex: PooledExchange) -> None:
        self.ex = ex
        self.pending: list[bytes] = []  # request body the windows did not admit yet
        self.request_done = False
        self.response_started = False
        self.withheld = 0  # received bytes not acknowledged because the exchange is paused


class Http2Connection(asyncio.Protocol):
    is_h2 = True

    def __init__(self, pool: OriginPool, settings: UpstreamSettings) -> None:
        self._pool = pool
        self._settings = settings
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config)
        self._splitter = GoawaySplitter()
        self._streams: dict[int, _Stream] = {}
        self._limit = settings.h2_max_streams_per_connection
        self._scheme = pool.origin.scheme.encode()
        self.authority = pool.origin.authority
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] | None = None  # set by the connector
        self._got_settings = False
        self._preface_checked = False
        self._draining = False  # GOAWAY received (or sent): no new streams
        self._closed = False
        self._write_paused = False
        self.exchanges = 0
        self.last_used = 0.0

    # -- pool side ------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return not self._closed and not self._draining and self.transport is not None

    @property
    def idle(self) -> bool:
        return not self._streams

    @property
    def settings_received(self) -> bool:
        return self._got_settings

    @property
    def active(self) -> int:
        return len(self._streams)

    def has_capacity(self) -> bool:
        return not self._draining and not self._closed and len(self._streams) < self._limit

    def bind(self, ex: PooledExchange) -> bool:
        h2c = self._h2
        headers = request_headers(ex.method, self._scheme, self.authority, ex.path, ex.headers)
        if headers is None:
            ex.state = ACTIVE  # not queued, not carried: a cancel before the call is a no-op
            ex.fail_soon(UpstreamProtocolError("request header contains CR, LF or NUL"))
            return True
        body = ex.take_body()
        end = ex.body_end and not body
        try:
            sid = h2c.get_next_available_stream_id()
            h2c.send_headers(sid, headers, end_stream=end)
        except h2.exceptions.NoAvailableStreamIDError:
            self._start_draining()
            ex.body = body
            return False
        except h2.exceptions.ProtocolError as exc:
            ex.state = ACTIVE
            ex.fail_soon(UpstreamProtocolError(f"invalid request for HTTP/2: {exc}"))
            self._flush()
            return True
        st = _Stream(ex)
        self._streams[sid] = st
        ex.stream_id = sid
        ex.carrier = self
        ex.state = ACTIVE
        self.exchanges += 1
        if end:
            st.request_done = True
        elif body:
            st.pending = body
            self._send_pending(sid, st, ex.body_end)
        if sid >= _LAST_STREAM_ID - 2:
            self._start_draining()
        self._flush()
        return True

    def close(self) -> None:
        """Close now and leave the pool. Streams, if any, must already be settled."""
        if not self._closed:
            self._closed = True
            self._streams.clear()
            if self.transport is not None:
                self.transport.abort()
            self._pool.on_closed(self)

    def shutdown(self, error: UpstreamError) -> None:
        """Close now, failing every open stream with ``error``."""
        streams = list(self._streams.values())
        self.close()
        for st in streams:
            st.ex.fail(error)

    def _start_draining(self) -> None:
        if not self._draining:
            self._draining = True
            self._pool.on_draining(self)
        if not self._streams and not self._closed:
            self._closed = True
            if self.transport is not None:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self._h2.close_connection()  # GOAWAY(NO_ERROR), flushed before the close
                    self._flush()
                self.transport.close()
            self._pool.on_closed(self)

    # -- Carrier (exchange side) ------------------------------------------------------------
    def send_data(self, ex: PooledExchange, data: bytes, end_stream: bool) -> None:
        st = self._streams.get(ex.stream_id)
        if st is None or st.ex is not ex or st.request_done:
            return
        if data:
            st.pending.append(data)
        if end_stream:
            ex.body_end = True
        self._send_pending(ex.stream_id, st, end_stream)
        self._flush()

    def write_blocked(self, ex: PooledExchange) -> bool:
        st = self._streams.get(ex.stream_id)
        return st is not None and (bool(st.pending) or self._write_paused)

    def pause(self, ex: PooledExchange) -> None:
        pass  # DataReceived looks at ex.paused before acknowledging

    def resume(self, ex: PooledExchange) -> None:
        st = self._streams.get(ex.stream_id)
        if st is not None and st.withheld:
            self._acknowledge(ex.stream_id, st.withheld)
            st.withheld = 0
            self._flush()

    def cancel(self, ex: PooledExchange) -> None:
        sid = ex.stream_id
        st = self._streams.get(sid)
        if st is None or st.ex is not ex:
            return
        self._drop(sid, st, ErrorCodes.CANCEL)
        self._flush()
        self._after_stream()

    # -- stream bookkeeping -----------------------------------------------------------------
    def _send_pending(self, sid: int, st: _Stream, end_stream: bool) -> None:
        """Send buffered body within the windows; END_STREAM once all of it went out."""
        h2c = self._h2
        pending = st.pending
        try:
            while pending:
                room = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                if room <= 0:
                    return
                chunk = pending[0]
                if len(chunk) <= room:
                    del pending[0]
                    last = end_stream and not pending
                    h2c.send_data(sid, chunk, end_stream=last)
                    st.request_done = last
                else:
                    pending[0] = chunk[room:]
                    h2c.send_data(sid, chunk[:room])
            if end_stream and not st.request_done:
                st.request_done = True
                h2c.end_stream(sid)
        except h2.exceptions.StreamClosedError:
            pending.clear()  # the server reset or finished the stream meanwhile
            st.request_done = True

    def _drop(self, sid: int, st: _Stream, reset_code: ErrorCodes | None) -> None:
        del self._streams[sid]
        st.ex.carrier = None
        if reset_code is not None:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # closed on h2's side
                self._h2.reset_stream(sid, reset_code)
        if st.withheld:
            self._acknowledge(sid, st.withheld)  # give the connection window back

    def _after_stream(self) -> None:
        """A stream went away: close a draining connection, else offer the room to the pool."""
        if self._draining:
            self._start_draining()
            return
        if not self._streams:
            self.last_used = self._pool.clock()
        self._pool.release(self)

    def _acknowledge(self, sid: int, nbytes: int) -> None:
        try:  # noqa: SIM105 - per DATA frame: a bare try costs nothing, suppress() does
            self._h2.acknowledge_received_data(nbytes, sid)
        except h2.exceptions.ProtocolError:
            pass

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        h2c = self._h2
        codes = h2.settings.SettingCodes
        h2c.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                codes.ENABLE_PUSH: 0,
                codes.MAX_CONCURRENT_STREAMS: 0,  # no server-initiated streams
                codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW_BYTES,
                codes.MAX_HEADER_LIST_SIZE: self._settings.max_response_header_bytes,
            },
        )
        h2c.initiate_connection()
        conn_window = min(_MAX_WINDOW, STREAM_WINDOW_BYTES * max(1, self._limit))
        h2c.increment_flow_control_window(conn_window - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if not self._preface_checked and len(data) >= 4:
            # A server's first frame is SETTINGS. h2 would wait for the whole bogus "frame"
            # (an HTTP/1.1 status line reads as a 4 MB one) before complaining.
            self._preface_checked = True
            if data[3] != 0x4:
                error = UpstreamProtocolError("upstream did not answer in HTTP/2")
                self._connection_error(error)
                return
        payload, goaways = self._splitter.feed(data)
        try:
            events = self._h2.receive_data(payload) if payload else []
        except h2.exceptions.ProtocolError as exc:
            self._flush()  # h2 queued a GOAWAY of its own
            msg = (
                "too large" if isinstance(exc, h2.exceptions.DenialOfServiceError) else "malformed"
            )
            self._connection_error(UpstreamProtocolError(f"upstream sent {msg} HTTP/2 frames"))
            return
        for event in events:
            self._on_event(event)
        for last_stream_id, error_code in goaways:
            self._on_goaway(last_stream_id, error_code)
        self._flush()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            sid = event.stream_id
            st = self._streams.get(sid)
            if st is None:
                self._acknowledge(sid, event.flow_controlled_length)
                return
            ex = st.ex
            if event.data:
                ex.handler.on_upstream_data(event.data)
            if ex.paused and self._streams.get(sid) is st:
                st.withheld += event.flow_controlled_length
            else:  # also when the handler cancelled: the connection window must reopen
                self._acknowledge(sid, event.flow_controlled_length)
        elif isinstance(event, h2.events.ResponseReceived):
            self._on_response(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._on_stream_ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._on_stream_reset(event.stream_id, event.error_code)
        elif isinstance(event, h2.events.WindowUpdated):
            self._on_window(event.stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._on_settings()

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        st = self._streams.get(event.stream_id)
        if st is None:
            return
        status = 0
        headers: Headers = []
        size = 0
        for name, value in event.headers:
            size += len(name) + len(value) + 32
            if name == b":status":
                status = int(value)
            elif name[:1] != b":":
                headers.append((name, value))
        if size > self._settings.max_response_header_bytes:
            self._stream_error(
                event.stream_id,
                st,
                UpstreamProtocolError(
                    f"upstream response headers exceed "
                    f"{self._settings.max_response_header_bytes} bytes",
                    request_bytes_sent=True,
                ),
            )
            return
        st.response_started = True
        st.ex.handler.on_upstream_headers(status, headers)

    def _on_stream_ended(self, sid: int) -> None:
        st = self._streams.get(sid)
        if st is None:
            return
        ex = st.ex
        if not st.response_started:
            self._stream_error(sid, st, UpstreamProtocolError("upstream ended a stream early"))
            return
        if st.request_done:
            self._drop(sid, st, None)
        else:
            # The server answered before the request body was complete: stop sending it.
            self._drop(sid, st, ErrorCodes.NO_ERROR)
        ex.finish()
        self._after_stream()

    def _on_stream_reset(self, sid: int, error_code: int) -> None:
        st = self._streams.get(sid)
        if st is None:
            return
        self._drop(sid, st, None)
        refused = error_code == ErrorCodes.REFUSED_STREAM
        st.ex.fail(
            UpstreamResetError(
                f"upstream {self._pool.origin.host} reset the stream ({error_name(error_code)})",
                request_bytes_sent=not refused,
            )
        )
        self._after_stream()

    def _stream_error(self, sid: int, st: _Stream, error: UpstreamError) -> None:
        self._drop(sid, st, ErrorCodes.PROTOCOL_ERROR)
        st.ex.fail(error)
        self._after_stream()

    def _on_window(self, sid: int) -> None:
        targets = list(self._streams.items()) if sid == 0 else [(sid, self._streams.get(sid))]
        for stream_id, st in targets:
            if st is None or not st.pending:
                continue
            self._send_pending(stream_id, st, st.ex.body_end)
            if not st.pending and not self._write_paused and st.ex.state < DONE:
                st.ex.handler.on_upstream_writable()

    def _on_settings(self) -> None:
        remote = self._h2.remote_settings.max_concurrent_streams
        self._limit = max(0, min(self._settings.h2_max_streams_per_connection, remote))
        if not self._got_settings:
            self._got_settings = True
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        elif not self._draining:
            self._pool.release(self)  # the limit may have grown

    def _on_goaway(self, last_stream_id: int, error_code: int) -> None:
        self._draining = True
        self._pool.on_draining(self)
        unprocessed = [(sid, st) for sid, st in self._streams.items() if sid > last_stream_id]
        for sid, st in unprocessed:
            self._drop(sid, st, None)
            st.ex.fail(
                UpstreamResetError(
                    f"upstream {self._pool.origin.host} went away before processing the request "
                    f"({error_name(error_code)})",
                    request_bytes_sent=False,
                )
            )
        if not self._streams:
            self._start_draining()

    def _connection_error(self, error: UpstreamError) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(error)
        self.shutdown(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = UpstreamResetError(
            f"upstream {self._pool.origin.host} closed the HTTP/2 connection",
            request_bytes_sent=True,
        )
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(error)
        if not self._closed or self._streams:
            self.shutdown(error)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for st in list(self._streams.values()):
            if not st.pending and not st.request_done and st.ex.state < DONE:
                st.ex.handler.on_upstream_writable()
