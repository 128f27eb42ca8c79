"""DownstreamConnection: the one asyncio.Protocol per client connection.

How this works: bytes from the transport go to a sans-I/O codec (HTTP/1.1 or HTTP/2 — picked
by ALPN on TLS, by sniffing the 24-byte preface on cleartext). The codec's events become
ActiveStreams made by the `StreamFactory`; what the streams write goes back through the codec
and straight into the transport. HTTP/1.1 answers one request at a time: events of pipelined
requests wait in a bounded queue until the stream before them is done.

Timeouts use one loop timer per connection that may fire early: it re-reads the state and
re-arms for what is left, so the per-request path only stamps times. States and their limits:
receiving a request head (request_header_timeout_s → 408), receiving a body
(request_body_timeout_s since the last byte → 408), idle between requests
(keepalive_timeout_s → close). While a response is in progress the upstream side's timers rule.

Backpressure: the transport's pause_writing/resume_writing and the HTTP/2 codec's pending bytes
make ``stream_writable`` false; the stream's terminal filter pauses its upstream until
``on_writable``. Reading from the client pauses while too many pipelined events wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from proxy.dialects.errors import error_body
from proxy.errors import DownstreamProtocolError, ProxyError, RequestTimeoutError
from proxy.events import (
    ConnectionTerminated,
    Event,
    RequestData,
    RequestHeaders,
    StreamDrained,
    StreamReset,
)
from proxy.filters.api import Dialect
from proxy.headers import Headers
from proxy.http.stream import ActiveStream
from proxy.protocol.codec import ServerCodec
from proxy.protocol.detect import detect_protocol
from proxy.protocol.factory import make_server_codec
from proxy.protocol.limits import CodecLimits
from proxy.protocol.write_batch import WriteBatch

MAX_QUEUED_PIPELINE_EVENTS = 64  # events of pipelined requests held while one is answered
# After an HTTP/1.1 framing error: how long the socket keeps reading (and dropping) what the
# client still sends after our error reply and FIN. Closing with unread input makes the kernel
# send a reset, and a reset discards the reply from the client's receive buffer.
LINGER_AFTER_ERROR_S = 1.0


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    limits: CodecLimits
    http1_impl: str  # auto | httptools | h11
    request_header_timeout_s: float
    request_body_timeout_s: float
    keepalive_timeout_s: float
    write_buffer_high_bytes: int
    http2_impl: str = "auto"  # auto | native | h2


class StreamFactory(Protocol):
    def new_stream(
        self, sink: DownstreamConnection, event: RequestHeaders, protocol: str, now: float
    ) -> ActiveStream: ...

    def stream_done(self, stream: ActiveStream) -> None: ...


class ConnectionRegistry(Protocol):
    draining: bool

    def add(self, conn: DownstreamConnection) -> bool:
        """False when the connection limit is reached (the connection is dropped)."""
        ...

    def remove(self, conn: DownstreamConnection) -> None: ...


class DownstreamConnection(asyncio.Protocol):
    def __init__(
        self,
        settings: ConnectionSettings,
        factory: StreamFactory,
        registry: ConnectionRegistry,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float],
        writes: WriteBatch,
    ) -> None:
        self._settings = settings
        self._writes = writes
        self._factory = factory
        self._registry = registry
        self._loop = loop
        self._clock = clock
        self.transport: asyncio.Transport | None = None
        self.codec: ServerCodec | None = None
        self._sniff = b""
        self._protocol = "HTTP/1.1"
        self._h2 = False
        self._streams: dict[int, ActiveStream] = {}
        self._active_h1: ActiveStream | None = None
        self._queued: deque[Event] = deque()
        self._write_paused = False
        self._flush_scheduled = False
        self._head_unsent = 0  # the stream whose response head waits for its first body bytes
        self._read_paused = False
        self._closed = False
        self._draining = False
        self._state = "idle"
        self._state_since = 0.0
        self._last_rx = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.transport = transport
        if not self._registry.add(self):
            self._closed = True
            transport.abort()
            return
        transport.set_write_buffer_limits(high=self._settings.write_buffer_high_bytes)
        now = self._clock()
        self._state_since = self._last_rx = now
        ssl_obj = transport.get_extra_info("ssl_object")
        if ssl_obj is not None:
            alpn = ssl_obj.selected_alpn_protocol()
            self._set_codec("h2" if alpn == "h2" else "http/1.1")
        # A new connection must send a request head within the header timeout.
        self._state = "headers"
        self._arm(now + self._settings.request_header_timeout_s)
        if self._registry.draining:
            self.start_drain()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        now = self._clock()
        self._last_rx = now
        codec = self.codec
        if codec is None:
            data = self._sniff + data
            proto = detect_protocol(data[:24])
            if proto is None:
                self._sniff = data
                if len(data) > 24:
                    self._close()
                return
            self._sniff = b""
            codec = self._set_codec(proto)
        try:
            events = codec.receive(data, now)
        except DownstreamProtocolError as exc:
            self._protocol_error(exc)
            return
        for ev in events:
            self._dispatch(ev)
            if self._closed:
                return
        self._flush()
        self._update_state(now)
        if len(self._queued) > MAX_QUEUED_PIPELINE_EVENTS:
            self._set_reading()

    def eof_received(self) -> bool | None:
        # A client that closes its side has left, whatever the protocol: no LLM client
        # half-closes and then waits for its answer, and a provider call kept running for
        # nobody costs money. Returning False closes the transport; connection_lost then
        # resets every stream, which cancels their upstream exchanges at once.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        streams = list(self._streams.values())
        self._streams.clear()
        self._active_h1 = None
        self._queued.clear()
        for s in streams:
            s.on_reset()
        self._registry.remove(self)

    def pause_writing(self) -> None:
        # A client that does not read its answers may not send more requests (or HTTP/2
        # frames that make us answer) either.
        self._write_paused = True
        self._set_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._set_reading()
        for s in list(self._streams.values()):
            s.on_writable()

    def _set_reading(self) -> None:
        want_pause = self._write_paused or len(self._queued) > MAX_QUEUED_PIPELINE_EVENTS
        if want_pause == self._read_paused or self.transport is None or self._closed:
            return
        self._read_paused = want_pause
        if want_pause:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- codec selection and events ----------------------------------------------------------

    def _set_codec(self, proto: str) -> ServerCodec:
        codec = make_server_codec(
            "h2" if proto == "h2" else "http/1.1",
            self._settings.http1_impl,  # type: ignore[arg-type]
            self._settings.limits,
            self._settings.http2_impl,  # type: ignore[arg-type]
        )
        self.codec = codec
        self._h2 = proto == "h2"
        self._protocol = "HTTP/2" if self._h2 else "HTTP/1.1"
        if self._h2:
            self._flush()  # our SETTINGS go out first
        return codec

    def _dispatch(self, ev: Event) -> None:
        kind = type(ev)
        if kind is RequestData:
            assert isinstance(ev, RequestData)
            stream = self._streams.get(ev.stream_id)
            if stream is not None:
                stream.on_request_data(ev.data, ev.end_stream)
            elif not self._h2 and self._queued and ev.stream_id > self._current_h1_id():
                self._queued.append(ev)
            elif self.codec is not None:
                self.codec.acknowledge_received(ev.stream_id, len(ev.data))
        elif kind is RequestHeaders:
            assert isinstance(ev, RequestHeaders)
            if not self._h2 and (self._active_h1 is not None or self._queued):
                self._queued.append(ev)
                return
            self._start_stream(ev)
        elif kind is StreamReset:
            assert isinstance(ev, StreamReset)
            stream = self._streams.pop(ev.stream_id, None)
            if stream is not None:
                stream.on_reset()
        elif kind is StreamDrained:
            assert isinstance(ev, StreamDrained)
            if ev.stream_id == 0:
                for s in list(self._streams.values()):
                    s.on_writable()
            else:
                stream = self._streams.get(ev.stream_id)
                if stream is not None:
                    stream.on_writable()
        elif kind is ConnectionTerminated and not self._streams:
            self._close()

    def _current_h1_id(self) -> int:
        return self._active_h1.stream_id if self._active_h1 is not None else 0

    def _start_stream(self, ev: RequestHeaders) -> None:
        stream = self._factory.new_stream(self, ev, self._protocol, self._last_rx)
        self._streams[ev.stream_id] = stream
        if not self._h2:
            self._active_h1 = stream
        stream.on_request_headers(ev.end_stream)
        if self._h2 and not ev.end_stream and not stream.destroyed:
            # HTTP/2 has no connection-wide "reading a body" state: each stream's body gets
            # its own deadline, checked on the connection's one timer.
            due = stream.info.start_s + self._settings.request_body_timeout_s
            if self._timer is None or due < self._timer_at:
                self._arm(due)
        if ev.expect_continue and not stream.destroyed and self.codec is not None:
            self.codec.send_continue(ev.stream_id)
            self._flush()

    # -- StreamSink ------------------------------------------------------------------------------

    def write_headers(self, stream_id: int, status: int, headers: Headers, end: bool) -> None:
        codec = self.codec
        if codec is None or self._closed:
            return
        codec.send_headers(stream_id, status, headers, end)
        if end:
            self._flush_soon()
        else:
            # Body bytes follow at once (streams start a response only when they have its
            # first bytes), and the head leaves in the same write: see write_data.
            self._head_unsent = stream_id

    def write_data(self, stream_id: int, data: bytes, end: bool) -> bool:
        codec = self.codec
        if codec is None or self._closed:
            return False
        codec.send_data(stream_id, data, end)
        first = self._head_unsent == stream_id
        if first:
            self._head_unsent = 0
        if first and not end:
            # A stream's head and first content (its first token) are written now, not at
            # the end of the loop iteration with the batch: under load an iteration carries
            # hundreds of other streams' events, and time to first token is what a client of
            # a stream waits on. Later chunks, and whole answers (which end here), join the
            # batch.
            self._flush()
        else:
            self._flush_soon()
        return self.stream_writable(stream_id)

    def stream_writable(self, stream_id: int) -> bool:
        if self._write_paused or self._closed:
            return False
        if self._h2 and self.codec is not None:
            return (
                self.codec.pending_bytes(stream_id)
                <= self._settings.limits.h2_max_pending_send_bytes
            )
        return True

    def abort_stream(self, stream_id: int) -> None:
        if self._h2 and self.codec is not None:
            self._streams.pop(stream_id, None)
            self.codec.reset_stream(stream_id)
            self._flush_soon()
        else:
            # HTTP/1.1 cannot abort one response: a truncated body plus close tells the client.
            self._close()

    def acknowledge(self, stream_id: int, nbytes: int) -> None:
        if self._h2 and self.codec is not None and nbytes:
            self.codec.acknowledge_received(stream_id, nbytes)
            self._flush_soon()

    def on_stream_done(self, stream: ActiveStream) -> None:
        self._streams.pop(stream.stream_id, None)
        self._factory.stream_done(stream)
        if self._closed or self.codec is None:
            return
        codec = self.codec
        if not self._h2:
            if self._active_h1 is stream:
                self._active_h1 = None
            if not codec.keep_alive:
                self._close()
                return
            if self._queued:
                self._loop.call_soon(self._replay_pipeline)
            else:
                self._update_state(self._clock())
        elif self._draining and not self._streams:
            self._close()

    def _replay_pipeline(self) -> None:
        # Start the next queued request, then feed it the data events queued behind it.
        while self._queued and self._active_h1 is None and not self._closed:
            ev = self._queued.popleft()
            if isinstance(ev, RequestHeaders):
                self._start_stream(ev)
            while self._queued and not isinstance(self._queued[0], RequestHeaders):
                data_ev = self._queued.popleft()
                if isinstance(data_ev, RequestData):
                    stream = self._streams.get(data_ev.stream_id)
                    if stream is not None:
                        stream.on_request_data(data_ev.data, data_ev.end_stream)
        self._flush()
        if self._read_paused:
            self._set_reading()
        self._update_state(self._clock())

    # -- drain, errors, close -------------------------------------------------------------------

    def start_drain(self) -> None:
        self._draining = True
        if self.codec is None:
            self._close()
            return
        self.codec.start_drain()
        self._flush()
        if not self._streams and not self._queued:
            self._close()

    def abort_all(self, error: ProxyError) -> None:
        """End every stream now (drain deadline passed): in-band error or reset, then close."""
        for stream in list(self._streams.values()):
            stream.send_error(error)
        self._close()

    def _protocol_error(self, exc: DownstreamProtocolError) -> None:
        codec = self.codec
        if codec is not None:
            # The Anthropic error shape: both SDKs read error.type and error.message from it.
            body = error_body(Dialect.ANTHROPIC, exc.kind, exc.message)
            codec.send_error_response(
                exc.status,
                [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                body,
            )
            self._flush()
        transport = self.transport
        if (
            codec is not None
            and not self._h2
            and not self._streams
            and transport is not None
            and transport.can_write_eof()
        ):
            # Lingering close: FIN once the reply is flushed, then read and discard (the
            # connection counts as closed, so data_received drops everything) until the
            # client closes or the bound passes.
            self._closed = True
            self._cancel_timer()
            transport.write_eof()
            if self._read_paused:
                transport.resume_reading()
            self._timer = self._loop.call_later(LINGER_AFTER_ERROR_S, transport.close)
            return
        self._close()

    def _flush(self) -> None:
        codec = self.codec
        if codec is None or self.transport is None:
            return
        out = codec.data_to_send()
        if out:
            self.transport.write(out)

    def _flush_soon(self) -> None:
        """What this connection writes within one loop iteration (answers of many HTTP/2
        streams, or of pipelined requests, arriving together) leaves in one transport write
        at the end of the iteration, together with every other connection's
        (`proxy.protocol.write_batch`)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._writes.add(self)

    def flush_batched(self) -> None:
        self._flush_scheduled = False
        if not self._closed:
            self._flush()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        if self.transport is not None:
            if self._flush_scheduled:
                self._flush()  # HTTP/2 frames _flush_soon still holds go first
            self.transport.close()  # flushes what is buffered first

    # -- timers -----------------------------------------------------------------------------------

    def _update_state(self, now: float) -> None:
        codec = self.codec
        if codec is None:
            return
        if self._h2:
            state = "active" if self._streams else "idle"
        else:
            receiving = codec.receiving  # type: ignore[attr-defined]
            state = receiving if receiving != "idle" else "active" if self._streams else "idle"
        if state == self._state:
            return
        self._state = state
        self._state_since = now
        limit = self._limit_for(state)
        if limit is not None and (self._timer is None or now + limit < self._timer_at):
            self._arm(now + limit)

    def _limit_for(self, state: str) -> float | None:
        s = self._settings
        if state == "headers":
            return s.request_header_timeout_s
        if state == "body":
            return s.request_body_timeout_s
        if state == "idle":
            return s.keepalive_timeout_s
        return None

    def _arm(self, at: float) -> None:
        self._cancel_timer()
        self._timer_at = at
        self._timer = self._loop.call_later(max(0.0, at - self._clock()), self._on_timer)

    def _check_h2_bodies(self, now: float) -> None:
        """HTTP/2 streams whose request body is not complete within request_body_timeout_s
        of their start get a 408 (that stream only); the timer is re-armed for the next."""
        limit = self._settings.request_body_timeout_s
        nearest = 0.0
        for stream in list(self._streams.values()):
            if stream.request_complete or stream.destroyed:
                continue
            due = stream.info.start_s + limit
            if now >= due:
                stream.send_error(RequestTimeoutError("timed out reading the request body"))
                if not stream.destroyed:
                    self.abort_stream(stream.stream_id)
            elif not nearest or due < nearest:
                nearest = due
        if nearest:
            self._arm(nearest)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        now = self._clock()
        if self._h2 and self._streams:
            self._check_h2_bodies(now)
        state = self._state
        limit = self._limit_for(state)
        if limit is None:
            return  # a response is in progress; the next state change re-arms
        # Both request deadlines run from the start of their phase, not from the last byte: a
        # client trickling one byte at a time (slowloris, R.U.D.Y.) gains nothing.
        since = self._state_since
        if now - since < limit:
            self._arm(since + limit)
            return
        if state == "idle":
            if self._h2:
                self.start_drain()
            else:
                self._close()
            return
        self._protocol_error(
            RequestTimeoutError(
                "timed out reading the request " + ("headers" if state == "headers" else "body")
            )
        )
