"""A scripted HTTP/1.1 server on loopback, for tests of anything that talks to an upstream.

Usage::

    async with ScriptedHttp1Server(respond(200, body=b"hi")) as server:
        origin = server.origin()            # proxy.upstream.api.Origin for 127.0.0.1:<port>
        ...
        assert server.connections_accepted == 1
        assert server.requests[0].path == b"/v1/messages"

How it works: asyncio streams, one coroutine per accepted connection. The server parses each
request itself (content-length or chunked body, bounded by ``max_request_bytes``), records it
in ``requests`` (and on its `ServerConnection`, growing ``body_received`` as chunks arrive),
then awaits the *responder* — ``async (request, conn) -> None`` — which writes whatever the
test wants through ``conn``: a normal response, chunked SSE with gates or delays, garbage, a
huge header, a reset after N bytes, or nothing at all. Ready-made responders are below
(`respond`, `sse`, `stream_body`, `close_delimited`, `stall`, `garbage`, `huge_header`,
`reset_after`). Server-wide knobs: ``max_requests_per_connection`` (close after N requests)
and ``idle_close_after_s`` (close a connection idle that long). ``abort_connections()`` resets
every open connection with a TCP RST; ``stop()`` ends everything. TLS: pass ``ssl=`` a server
context (see tests.support.tls).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from proxy.upstream.api import Origin, UpstreamProtocol

Header = tuple[bytes, bytes]


@dataclass
class ReceivedRequest:
    method: bytes
    path: bytes
    headers: list[Header]  # names lower-cased, order kept
    body: bytes
    connection_index: int  # which accepted connection carried it (0-based)

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class ServerConnection:
    """One accepted connection, as a responder writes to it."""

    def __init__(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.requests_handled = 0
        self.bytes_written = 0
        self.body_received = bytearray()  # the current request's body so far
        self.closed = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def send_response(
        self, status: int = 200, headers: Sequence[Header] = (), body: bytes = b""
    ) -> None:
        names = {k.lower() for k, _ in headers}
        extra = [] if b"content-length" in names else [(b"content-length", b"%d" % len(body))]
        self.write(_head(status, [*headers, *extra]) + body)
        await self.drain()

    async def send_head(
        self, status: int = 200, headers: Sequence[Header] = (), chunked: bool = True
    ) -> None:
        extra = [(b"transfer-encoding", b"chunked")] if chunked else []
        self.write(_head(status, [*headers, *extra]))
        await self.drain()

    async def send_chunk(self, data: bytes) -> None:
        if data:
            self.write(b"%x\r\n%b\r\n" % (len(data), data))
            await self.drain()

    async def end_chunked(self) -> None:
        self.write(b"0\r\n\r\n")
        await self.drain()

    def close(self) -> None:
        self.writer.close()

    def abort(self, rst: bool = True) -> None:
        """Drop the connection at once; with ``rst`` the peer sees a TCP reset, not a FIN."""
        transport = self.writer.transport
        if rst:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def wait_peer_closed(self) -> None:
        """Read and discard until the client closes (a stalled server still notices that)."""
        while await self.reader.read(65536):
            pass

    @property
    def is_closing(self) -> bool:
        return self.writer.transport.is_closing()


Responder = Callable[[ReceivedRequest, ServerConnection], Awaitable[None]]


def _head(status: int, headers: Sequence[Header]) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Status"))]
    lines += [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


_REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request", 500: b"Internal Server Error"}


class BadRequest(Exception):
    pass


@dataclass
class ScriptedHttp1Server:
    responder: Responder | None = None  # None: 200 "ok"
    ssl: ssl_module.SSLContext | None = None
    max_requests_per_connection: int | None = None
    idle_close_after_s: float | None = None
    max_request_bytes: int = 1 << 20
    host: str = "127.0.0.1"

    port: int = field(default=0, init=False)
    connections_accepted: int = field(default=0, init=False)
    requests: list[ReceivedRequest] = field(default_factory=list, init=False)
    connections: list[ServerConnection] = field(default_factory=list, init=False)
    errors: list[BaseException] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> ScriptedHttp1Server:
        self._server = await asyncio.start_server(
            self._serve, self.host, 0, ssl=self.ssl, limit=self.max_request_bytes
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            conn.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ScriptedHttp1Server:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def origin(self, protocol: UpstreamProtocol = "auto", **kwargs: str | None) -> Origin:
        scheme = "https" if self.ssl is not None else "http"
        return Origin(scheme, self.host, self.port, protocol, **kwargs)  # type: ignore[arg-type]

    # -- observation and control ------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return sum(1 for c in self.connections if not c.closed.is_set())

    def abort_connections(self, rst: bool = True) -> None:
        """Reset every open connection (the sockets close on the next loop iteration)."""
        for conn in self.connections:
            if not conn.closed.is_set():
                conn.abort(rst)

    # -- per connection ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = ServerConnection(self.connections_accepted, reader, writer)
        self.connections_accepted += 1
        self.connections.append(conn)
        try:
            await self._serve_requests(conn)
        except (ConnectionError, asyncio.IncompleteReadError, ssl_module.SSLError):
            pass
        except BadRequest:
            with contextlib.suppress(ConnectionError):
                writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a responder bug: keep it for the test to see
            self.errors.append(exc)
        finally:
            conn.closed.set()
            if conn.is_closing:
                writer.transport.abort()
            else:
                writer.close()
            self._tasks.discard(task)

    async def _serve_requests(self, conn: ServerConnection) -> None:
        while not conn.is_closing:
            if self.idle_close_after_s is not None:
                try:
                    head = await asyncio.wait_for(
                        conn.reader.readuntil(b"\r\n\r\n"), self.idle_close_after_s
                    )
                except TimeoutError:
                    return
            else:
                head = await conn.reader.readuntil(b"\r\n\r\n")
            request = await self._read_request(conn, head)
            self.requests.append(request)
            await (self.responder or respond())(request, conn)
            conn.requests_handled += 1
            if (
                self.max_requests_per_connection is not None
                and conn.requests_handled >= self.max_requests_per_connection
            ):
                await conn.drain()
                return

    async def _read_request(self, conn: ServerConnection, head: bytes) -> ReceivedRequest:
        lines = head[:-4].split(b"\r\n")
        try:
            method, path, _version = lines[0].split(b" ")
        except ValueError:
            raise BadRequest from None
        headers: list[Header] = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise BadRequest
            headers.append((name.strip().lower(), value.strip()))
        conn.body_received = bytearray()
        request = ReceivedRequest(method, path, headers, b"", conn.index)
        length = request.header(b"content-length")
        if request.header(b"transfer-encoding") == b"chunked":
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await conn.reader.readuntil(b"\r\n")
                    break
                conn.body_received += await conn.reader.readexactly(size)
                await conn.reader.readexactly(2)
                if len(conn.body_received) > self.max_request_bytes:
                    raise BadRequest
        elif length is not None:
            if int(length) > self.max_request_bytes:
                raise BadRequest
            conn.body_received += await conn.reader.readexactly(int(length))
        request.body = bytes(conn.body_received)
        return request


# -- ready-made responders ----------------------------------------------------------------
def respond(
    status: int = 200,
    headers: Sequence[Header] = (),
    body: bytes = b"ok",
    *,
    close: bool = False,
) -> Responder:
    """A complete response with content-length; ``close`` adds Connection: close and closes."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        extra = [(b"connection", b"close")] if close else []
        await conn.send_response(status, [*headers, *extra], body)
        if close:
            conn.close()

    return responder


def echo() -> Responder:
    """200 with the request body as the response body (and x-method / x-path headers)."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.send_response(
            200, [(b"x-method", request.method), (b"x-path", request.path)], request.body
        )

    return responder


def sse(
    events: Sequence[bytes],
    *,
    gates: Sequence[asyncio.Event] | None = None,
    delay_s: float = 0.0,
    status: int = 200,
) -> Responder:
    """A chunked text/event-stream, one chunk per event. Before event i > 0 it waits for
    ``gates[i - 1]`` (when given) or ``delay_s``, so a test can prove chunks are forwarded
    before the next one exists."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.send_head(status, [(b"content-type", b"text/event-stream")])
        for i, event in enumerate(events):
            if i > 0:
                if gates is not None:
                    await gates[i - 1].wait()
                elif delay_s:
                    await asyncio.sleep(delay_s)
            await conn.send_chunk(event)
        await conn.end_chunked()

    return responder


def stream_body(total_bytes: int, chunk_bytes: int = 64 * 1024) -> Responder:
    """``total_bytes`` of body with content-length, written chunk by chunk honouring drain
    (so ``conn.bytes_written`` stops growing while the client does not read)."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        conn.write(_head(200, [(b"content-length", b"%d" % total_bytes)]))
        chunk = b"x" * chunk_bytes
        left = total_bytes
        while left > 0:
            piece = chunk if left >= chunk_bytes else chunk[:left]
            conn.write(piece)
            left -= len(piece)
            await conn.drain()

    return responder


def close_delimited(body: bytes) -> Responder:
    """A body framed by closing the connection (no content-length, no chunking)."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        conn.write(_head(200, [(b"connection", b"close")]) + body)
        await conn.drain()
        conn.close()

    return responder


def stall() -> Responder:
    """Never answer; the connection ends when the client closes it or the server stops."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.wait_peer_closed()
        conn.close()

    return responder


def garbage(data: bytes = b"SPAM SPAM SPAM\r\n\r\n") -> Responder:
    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        conn.write(data)
        await conn.drain()
        await conn.wait_peer_closed()  # keep the connection open: the client must close it
        conn.close()

    return responder


def huge_header(nbytes: int) -> Responder:
    """A response whose single header value is ``nbytes`` long."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.send_response(200, [(b"x-huge", b"a" * nbytes)], b"ok")

    return responder


def reset_after(nbytes: int, declared_bytes: int = 1 << 20) -> Responder:
    """Announce ``declared_bytes`` of body, send ``nbytes`` of it, then reset the connection."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        conn.write(_head(200, [(b"content-length", b"%d" % declared_bytes)]))
        conn.write(b"y" * nbytes)
        await conn.drain()
        await asyncio.sleep(0.05)  # let the bytes reach the client before the RST
        conn.abort(rst=True)

    return responder
