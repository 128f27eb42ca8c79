"""The provider's connection protocol: HTTP/1.1 with httptools, handing off to HTTP/2.

How this works: each connection starts by sniffing (cleartext, h2c on) the first bytes for the
HTTP/2 preface, or asks ALPN (TLS); HTTP/2 goes to `Http2Session`. HTTP/1.1 bytes feed one
httptools parser; a finished request is recorded, planned and, when its plan has no pause,
written from the parser callback in one `write` (the fast path: no task, no timer). A plan
with pauses runs in a `PlanRunner` and the connection is busy until it ends; requests that
arrive meanwhile (pipelining) wait in a bounded queue and are answered in order, and reading
pauses while that queue is full. The connection doubles as the runner's sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from http import HTTPStatus
from types import MappingProxyType
from typing import cast

import httptools

from proxy.mock_provider.context import ProviderContext
from proxy.mock_provider.http2 import Http2Session
from proxy.mock_provider.plan import Headers, Plan
from proxy.mock_provider.runner import PlanRunner

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
STATUS_LINES = MappingProxyType(
    {
        **{s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus},
        529: b"HTTP/1.1 529 Overloaded\r\n",
    }
)
CLOSE = b"connection: close\r\n"
CHUNKED = b"transfer-encoding: chunked\r\n"
LAST_CHUNK = b"0\r\n\r\n"

# (method, target, headers, body, http_version, keep_alive)
Request = tuple[bytes, bytes, Headers, bytes, str, bool]


def status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status


class _LimitError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class MockConnection(asyncio.Protocol):
    def __init__(self, ctx: ProviderContext, tls: bool) -> None:
        self._ctx = ctx
        self._tls = tls
        self._transport: asyncio.Transport | None = None
        self._id = 0
        self._parser = httptools.HttpRequestParser(self)
        self._sniffing = ctx.options.h2c and not tls
        self._sniffed = b""
        self._h2: Http2Session | None = None
        # the request being parsed
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._body_len = 0
        self._head_len = 0
        # the response being sent
        self._busy = False
        self._runner: PlanRunner | None = None
        self._keep_alive = True
        self._version = "1.1"
        self._chunked = False
        self._expect_continue = False
        self._queue: deque[Request] = deque()
        self._reading_paused = False
        self._write_paused = False
        self._closing = False
        self._idle_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not a check
        self._transport = cast(asyncio.Transport, transport)
        self._id = self._ctx.connection_opened(self)
        if self._tls:
            ssl_object = self._transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._start_h2(b"")
                return
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self._h2 is not None:
            self._h2.receive(data)
            return
        if self._closing:
            return
        if self._sniffing:
            data = self._sniffed + data
            if len(data) < len(PREFACE) and PREFACE.startswith(data):
                self._sniffed = data
                return
            self._sniffing = False
            self._sniffed = b""
            if data.startswith(PREFACE):
                self._start_h2(data)
                return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # an Upgrade request (we do not switch): answer it, then close, since the bytes
            # after it belong to a protocol we do not speak
            self._keep_alive = False
            self._closing = True
            if not self._busy:
                self._close_when_written()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            self._protocol_error(cause.status if isinstance(cause, _LimitError) else 400)
        except httptools.HttpParserError:
            self._protocol_error(400)
        else:
            if self._ctx.options.idle_timeout_s > 0.0 and not self._busy and not self._queue:
                self._arm_idle()

    def eof_received(self) -> bool | None:
        """The client finished sending. A response still owed is sent before closing."""
        if self._busy and self._h2 is None:
            self._keep_alive = False
            self._queue.clear()
            return True  # keep the transport open for writing
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_all()
        self._closing = True
        self._ctx.connection_closed(self)
        # The parser holds this connection as its protocol (a cycle only the cyclic collector
        # frees, whose pauses would show in every benchmark's gaps): one with no callbacks.
        self._parser = httptools.HttpRequestParser(object())

    def pause_writing(self) -> None:
        if self._h2 is not None:
            self._h2.pause_writing()
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._h2 is not None:
            self._h2.resume_writing()
        elif self._runner is not None:
            self._runner.resume()

    def close_now(self) -> None:
        self._cancel_all()
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_len = 0
        self._head_len = 0
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_len += len(url)
        if self._head_len > self._ctx.options.max_header_bytes:
            raise _LimitError(431 if len(self._url) < 8192 else 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        self._head_len += len(name) + len(value) + 4
        if self._head_len > self._ctx.options.max_header_bytes:
            raise _LimitError(431)
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        if self._expect_continue and not self._busy and not self._queue:
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._ctx.options.max_body_bytes:
            raise _LimitError(413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        parser = self._parser
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request: Request = (
            parser.get_method(),
            self._url,
            self._headers,
            body,
            parser.get_http_version(),
            parser.should_keep_alive(),
        )
        if self._busy or self._queue:
            self._queue.append(request)
            if len(self._queue) >= self._ctx.options.max_pipelined and not self._reading_paused:
                assert self._transport is not None
                self._transport.pause_reading()
                self._reading_paused = True
        else:
            self._dispatch(request)

    # answering

    def _dispatch(self, request: Request) -> None:
        method, target, headers, body, version, keep_alive = request
        ctx = self._ctx
        ctx.recorder.record(method, target, headers, body, version, self._id)
        plan = ctx.planner.plan(method, target, headers, body)
        self._keep_alive = keep_alive
        self._version = version
        transport = self._transport
        assert transport is not None
        if plan.immediate:
            transport.write(self._encode_whole(plan, version))
            if not self._keep_alive:
                self._close_when_written()
            return
        self._busy = True
        self._runner = PlanRunner(plan, self, ctx.loop)
        self._runner.start()

    def _encode_whole(self, plan: Plan, version: str) -> bytes:
        parts = [status_line(plan.status)]
        for name, value in plan.headers or ():
            parts += (name, b": ", value, b"\r\n")
        if not plan.streaming:
            if not self._keep_alive:
                parts.append(CLOSE)
            parts.append(b"\r\n")
            parts += plan.chunks
        elif version == "1.1":
            if not self._keep_alive:
                parts.append(CLOSE)
            parts += (CHUNKED, b"\r\n")
            parts += (b"%x\r\n%s\r\n" % (len(c), c) for c in plan.chunks if c)
            parts.append(LAST_CHUNK)
        else:  # HTTP/1.0 cannot take chunks: the end of the body is the end of the connection
            self._keep_alive = False
            parts += (CLOSE, b"\r\n")
            parts += plan.chunks
        return b"".join(parts)

    def _next(self) -> None:
        """The response in flight is complete: close, or answer the next queued request."""
        self._busy = False
        self._runner = None
        if not self._keep_alive or self._closing:
            self._close_when_written()
            return
        while self._queue and not self._busy and not self._closing:
            self._dispatch(self._queue.popleft())
        if self._reading_paused and len(self._queue) < self._ctx.options.max_pipelined:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        if not self._busy:
            self._arm_idle()

    # the runner's sink

    def send_head(self, status: int, headers: Headers, streaming: bool) -> None:
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        self._chunked = streaming and self._version == "1.1"
        if streaming and not self._chunked:
            self._keep_alive = False
        if not self._keep_alive:
            parts.append(CLOSE)
        if self._chunked:
            parts.append(CHUNKED)
        parts.append(b"\r\n")
        assert self._transport is not None
        self._transport.write(b"".join(parts))

    def send_body(self, data: bytes) -> bool:
        if data:
            assert self._transport is not None
            self._transport.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
        return not self._write_paused

    def finish(self) -> None:
        if self._chunked:
            assert self._transport is not None
            self._transport.write(LAST_CHUNK)
        self._next()

    def abort(self) -> None:
        # linger 0 turns the close into a TCP RST, which is what "connection reset" means
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_now()

    def send_garbage(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)
        self._keep_alive = False
        self._next()

    # helpers

    def _start_h2(self, data: bytes) -> None:
        assert self._transport is not None
        self._h2 = Http2Session(self._ctx, self._transport, self._id)
        self._h2.start(data)

    def _protocol_error(self, status: int) -> None:
        self._closing = True
        self._queue.clear()
        if self._runner is not None:  # a response had started: it cannot be finished
            self._runner.cancel()
            self._runner = None
        elif not self._busy:
            body = b'{"error":{"message":"Bad request framing","type":"invalid_request_error"}}'
            head = status_line(status) + b"content-type: application/json\r\n"
            assert self._transport is not None
            self._transport.write(
                head + b"content-length: %d\r\n%s\r\n%s" % (len(body), CLOSE, body)
            )
        self._close_when_written()

    def _close_when_written(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()  # flushes what is buffered first

    def _arm_idle(self) -> None:
        timeout = self._ctx.options.idle_timeout_s
        if timeout > 0.0 and not self._closing and self._idle_timer is None:
            self._idle_timer = self._ctx.loop.call_later(timeout, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if not self._busy and not self._queue:
            self._close_when_written()

    def _cancel_all(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._h2 is not None:
            self._h2.cancel_all()
        self._queue.clear()
