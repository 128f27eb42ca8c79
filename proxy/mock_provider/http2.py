"""HTTP/2 for the provider (h2c prior knowledge or TLS with ALPN h2), built on the h2 library.

How this works: the h2 state machine turns received bytes into events. A stream's request is
gathered until END_STREAM (acknowledging DATA at once, since the body is kept anyway and is
bounded), then recorded and planned exactly as on HTTP/1.1; every stream is its own sink for
a `PlanRunner`. Outgoing body bytes wait in a per-stream buffer and leave as the peer's flow
control windows allow; WINDOW_UPDATE drains them and wakes runners that were blocked. After
every call into h2 the bytes it produced are flushed, errors included (so GOAWAY goes out).
This path favours clarity over speed: it exists to exercise the proxy's HTTP/2 client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from proxy.mock_provider.plan import Headers
from proxy.mock_provider.runner import PlanRunner

if TYPE_CHECKING:
    from proxy.mock_provider.context import ProviderContext

MAX_CONCURRENT_STREAMS = 100
MAX_PENDING_SEND_BYTES = 256 * 1024  # per stream: a runner waits while more is held back


class _Stream:
    """One request/response exchange; the runner's sink."""

    __slots__ = (
        "body",
        "body_len",
        "end_requested",
        "headers",
        "pending",
        "runner",
        "session",
        "stream_id",
    )

    def __init__(self, session: Http2Session, stream_id: int, headers: Headers) -> None:
        self.session = session
        self.stream_id = stream_id
        self.headers = headers
        self.body: list[bytes] = []
        self.body_len = 0
        self.pending = b""
        self.end_requested = False
        self.runner: PlanRunner | None = None

    def send_head(self, status: int, headers: Headers, streaming: bool) -> None:
        self.session.send_headers(self.stream_id, status, headers)

    def send_body(self, data: bytes) -> bool:
        self.pending += data
        self.session.pump(self)
        return len(self.pending) < MAX_PENDING_SEND_BYTES and not self.session.write_paused

    def finish(self) -> None:
        self.end_requested = True
        self.session.pump(self)

    def abort(self) -> None:
        self.session.reset(self)

    def send_garbage(self, data: bytes) -> None:
        self.session.garbage(data)


class Http2Session:
    def __init__(
        self, ctx: ProviderContext, transport: asyncio.Transport, connection_id: int
    ) -> None:
        self._ctx = ctx
        self._transport = transport
        self._connection_id = connection_id
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self._conn = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _Stream] = {}
        self._closed = False
        self.write_paused = False

    def start(self, data: bytes) -> None:
        self._conn.initiate_connection()
        self._conn.update_settings(
            {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS}
        )
        self._flush()
        if data:
            self.receive(data)

    def receive(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()  # the GOAWAY h2 queued
            self._close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = [(bytes(k), bytes(v)) for k, v in event.headers or ()]
                assert event.stream_id is not None
                self._streams[event.stream_id] = _Stream(self, event.stream_id, headers)
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self._streams.get(event.stream_id or 0)
                if stream is not None and stream.runner is None:
                    self._dispatch(stream)
            elif isinstance(event, h2.events.StreamReset):
                self._forget(event.stream_id or 0)
            elif isinstance(event, h2.events.WindowUpdated):
                self._on_window(event.stream_id or 0)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._flush()
                self._close()
                return
        self._flush()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._on_window(0)

    def cancel_all(self) -> None:
        self._closed = True
        for stream in self._streams.values():
            if stream.runner is not None:
                stream.runner.cancel()
                stream.runner = None
        self._streams.clear()

    # used by streams

    def send_headers(self, stream_id: int, status: int, headers: Headers) -> None:
        if stream_id not in self._streams:
            return
        self._conn.send_headers(stream_id, [(b":status", b"%d" % status), *headers])
        self._flush()

    def pump(self, stream: _Stream) -> None:
        """Send what the windows allow; end the stream once everything asked for went out."""
        sid = stream.stream_id
        if self._closed or sid not in self._streams:
            return
        conn = self._conn
        try:
            while stream.pending:
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if room <= 0:
                    break
                piece, stream.pending = stream.pending[:room], stream.pending[room:]
                conn.send_data(sid, piece)
            if stream.end_requested and not stream.pending:
                conn.end_stream(sid)
                self._streams.pop(sid, None)
                stream.runner = None  # runner <-> stream: leave nothing for the cyclic GC
        except h2.exceptions.StreamClosedError:
            self._forget(sid)
        self._flush()

    def reset(self, stream: _Stream) -> None:
        if stream.stream_id in self._streams:
            self._conn.reset_stream(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
            self._forget(stream.stream_id)
            self._flush()

    def garbage(self, data: bytes) -> None:
        self._transport.write(data)
        self._close()

    # internals

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id or 0
        self._conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        stream = self._streams.get(sid)
        if stream is None or event.data is None:
            return
        stream.body_len += len(event.data)
        if stream.body_len > self._ctx.options.max_body_bytes:
            self._conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            self._forget(sid)
            return
        stream.body.append(event.data)

    def _dispatch(self, stream: _Stream) -> None:
        method = path = b""
        for name, value in stream.headers:
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
        body = b"".join(stream.body)
        stream.body = []
        ctx = self._ctx
        ctx.recorder.record(method, path, stream.headers, body, "2", self._connection_id)
        plan = ctx.planner.plan(method, path, stream.headers, body)
        stream.runner = PlanRunner(plan, stream, ctx.loop)
        stream.runner.start()

    def _on_window(self, stream_id: int) -> None:
        targets = list(self._streams.values()) if stream_id == 0 else []
        if stream_id and stream_id in self._streams:
            targets.append(self._streams[stream_id])
        for stream in targets:
            if stream.pending or stream.end_requested:
                self.pump(stream)
            if stream.runner is not None and stream.stream_id in self._streams:
                stream.runner.resume()

    def _forget(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and stream.runner is not None:
            stream.runner.cancel()
            stream.runner = None

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        self.cancel_all()
        self._transport.close()
