"""A scripted HTTP/2 server on loopback (h2, server side): cleartext prior knowledge or TLS+ALPN.

Usage::

    async def responder(stream: H2ServerStream) -> None:
        await stream.respond(200, [(b"content-type", b"application/json")], b"{}")

    async with ScriptedH2Server(responder) as server:
        origin = server.origin()           # protocol "h2c" (or https + "auto" with ssl=)
        ...
        assert server.connections_accepted == 1

How it works: one asyncio.Protocol per connection around ``h2.connection.H2Connection``. When a
request stream ends (END_STREAM) the responder runs as a task with an `H2ServerStream`:
``send_headers``, ``send_data`` (waits for flow-control window, so ``bytes_sent`` and
``waiting_for_window`` show a blocked sender), ``respond``, ``reset(code)``. Server knobs:
``max_concurrent_streams``, ``initial_window_size`` (our receive window for request bodies —
small values exercise client-side send backpressure). ``goaway(last_stream_id)`` writes a
GOAWAY frame on every connection *without* telling h2 (h2 would refuse to send anything after
it), so streams up to ``last_stream_id`` can still be answered, as RFC 9113 allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from proxy.upstream.api import Origin, UpstreamProtocol

Header = tuple[bytes, bytes]


@dataclass
class H2Request:
    stream_id: int
    method: bytes
    path: bytes
    authority: bytes
    scheme: bytes
    headers: list[Header]  # regular headers only
    body: bytes
    connection_index: int

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class H2ServerStream:
    def __init__(self, conn: _H2ServerProtocol, request: H2Request) -> None:
        self._conn = conn
        self.request = request
        self.stream_id = request.stream_id
        self.bytes_sent = 0
        self.waiting_for_window = False
        self.reset_received = asyncio.Event()  # the client sent RST_STREAM

    def send_headers(self, status: int, headers: Sequence[Header] = (), end: bool = False) -> None:
        self._conn.send_headers(self.stream_id, [(b":status", b"%d" % status), *headers], end)

    async def send_data(self, data: bytes, end: bool = False) -> None:
        view = memoryview(data)
        while view:
            room = self._conn.room(self.stream_id)
            if room <= 0:
                self.waiting_for_window = True
                await self._conn.window_opened(self.stream_id)
                self.waiting_for_window = False
                continue
            piece = bytes(view[:room])
            view = view[room:]
            self.bytes_sent += len(piece)
            self._conn.send_data(self.stream_id, piece, end and not view)
        if end and not data:
            self._conn.send_data(self.stream_id, b"", True)

    async def respond(
        self, status: int = 200, headers: Sequence[Header] = (), body: bytes = b""
    ) -> None:
        self.send_headers(status, [*headers, (b"content-length", b"%d" % len(body))], not body)
        if body:
            await self.send_data(body, end=True)

    def reset(self, code: int = 2) -> None:
        """RST_STREAM with ``code`` (2 = INTERNAL_ERROR, 7 = REFUSED_STREAM, 8 = CANCEL)."""
        self._conn.reset(self.stream_id, code)

    def window(self) -> int:
        """What the client lets us send on this stream right now."""
        return self._conn.room(self.stream_id, frame_cap=False)


Responder = Callable[[H2ServerStream], Awaitable[None]]


async def ok_responder(stream: H2ServerStream) -> None:
    await stream.respond(200, [(b"content-type", b"text/plain")], b"ok " + stream.request.path)


class _H2ServerProtocol(asyncio.Protocol):
    def __init__(self, server: ScriptedH2Server, index: int) -> None:
        self._server = server
        self.index = index
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        self.transport: asyncio.Transport | None = None
        self._bodies: dict[int, bytearray] = {}
        self._heads: dict[int, list[Header]] = {}
        self._window_waiters: dict[int, asyncio.Future[None]] = {}
        self.streams: dict[int, H2ServerStream] = {}
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        codes = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: self._server.max_concurrent_streams,
                codes.INITIAL_WINDOW_SIZE: self._server.initial_window_size,
            },
        )
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        for fut in self._window_waiters.values():
            if not fut.done():
                fut.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._server.errors.append(exc)
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._heads[event.stream_id] = list(event.headers)
                self._bodies[event.stream_id] = bytearray()
            elif isinstance(event, h2.events.DataReceived):
                self._bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._start(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.reset_received.set()
                self._server.resets_received.append(event.stream_id)
                self._wake(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                self._wake(event.stream_id)
        self.flush()

    def _start(self, sid: int) -> None:
        head = self._heads.pop(sid, [])
        pseudo = {k: v for k, v in head if k.startswith(b":")}
        request = H2Request(
            stream_id=sid,
            method=pseudo.get(b":method", b""),
            path=pseudo.get(b":path", b""),
            authority=pseudo.get(b":authority", b""),
            scheme=pseudo.get(b":scheme", b""),
            headers=[(k, v) for k, v in head if not k.startswith(b":")],
            body=bytes(self._bodies.pop(sid, b"")),
            connection_index=self.index,
        )
        self._server.requests.append(request)
        stream = H2ServerStream(self, request)
        self.streams[sid] = stream
        self._server.spawn(self._server.responder(stream))

    def _wake(self, sid: int) -> None:
        targets = list(self._window_waiters) if sid == 0 else [sid]
        for target in targets:
            fut = self._window_waiters.pop(target, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def window_opened(self, sid: int) -> None:
        fut = self._window_waiters.get(sid)
        if fut is None:
            fut = self._window_waiters[sid] = asyncio.get_running_loop().create_future()
        await fut

    def room(self, sid: int, frame_cap: bool = True) -> int:
        try:
            window = self.h2.local_flow_control_window(sid)
        except (h2.exceptions.StreamClosedError, KeyError):
            raise ConnectionResetError("stream closed") from None
        return min(window, self.h2.max_outbound_frame_size) if frame_cap else window

    def send_headers(self, sid: int, headers: list[Header], end: bool) -> None:
        self.h2.send_headers(sid, headers, end_stream=end)
        self.flush()

    def send_data(self, sid: int, data: bytes, end: bool) -> None:
        self.h2.send_data(sid, data, end_stream=end)
        self.flush()

    def reset(self, sid: int, code: int) -> None:
        self.h2.reset_stream(sid, code)
        self.flush()

    def goaway(self, last_stream_id: int, error_code: int) -> None:
        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        frame.error_code = error_code
        self.flush()
        if self.transport is not None:
            self.transport.write(frame.serialize())

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


@dataclass
class ScriptedH2Server:
    responder: Responder = ok_responder
    ssl: ssl_module.SSLContext | None = None  # give it ALPN ["h2"] (tests.support.tls)
    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    host: str = "127.0.0.1"

    port: int = field(default=0, init=False)
    connections_accepted: int = field(default=0, init=False)
    requests: list[H2Request] = field(default_factory=list, init=False)
    resets_received: list[int] = field(default_factory=list, init=False)
    errors: list[BaseException] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.connections: list[_H2ServerProtocol] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> ScriptedH2Server:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._make_protocol, self.host, 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _make_protocol(self) -> _H2ServerProtocol:
        proto = _H2ServerProtocol(self, self.connections_accepted)
        self.connections_accepted += 1
        self.connections.append(proto)
        return proto

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ScriptedH2Server:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def origin(self, protocol: UpstreamProtocol | None = None, **kwargs: str | None) -> Origin:
        if self.ssl is not None:
            return Origin("https", self.host, self.port, protocol or "auto", **kwargs)
        return Origin("http", self.host, self.port, protocol or "h2c", **kwargs)

    def spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                try:
                    await coro
                except h2.exceptions.StreamClosedError:
                    pass
                except Exception as exc:  # a responder bug: keep it for the test to see
                    self.errors.append(exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def goaway(self, last_stream_id: int, error_code: int = 0) -> None:
        """Send GOAWAY(last_stream_id, error_code) on every open connection."""
        for conn in self.connections:
            if not conn.closed.is_set():
                conn.goaway(last_stream_id, error_code)

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self.connections if not c.closed.is_set())
