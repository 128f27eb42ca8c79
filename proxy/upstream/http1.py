"""An upstream HTTP/1.1 connection: the asyncio shell around an `Http1ClientCodec`.

How this works: the pool binds one exchange at a time. ``bind`` encodes the request head and any
buffered body and registers the connection with the worker's `WriteBatch`, which writes it at
the end of the loop iteration together with every other connection's bytes (one wake-up of the
provider's process serves them all; docs/architecture.md has the figures). An urgent request (a
stream, whose first token waits on it) is written at once instead, on a connection that is new
or answered within URGENT_WRITE_MAX_IDLE_S. Later body chunks
join the pending bytes, or are written at once when none are pending. Until the head is
written nothing has reached the server, so a connection found dead before then (its close
arrived, its first write failed at once, it sent bytes before any request) hands the exchange
back to the pool, which tries another connection: only requests none of whose bytes were
written are ever retried that way. Received bytes
go straight into the codec, whose sink callbacks (on_response_*) forward to the exchange's
handler — no task, no coroutine, no buffering of the body. An exchange is complete when both
the request and the response are; the connection then goes back to the pool if the response
allowed keep-alive, and closes otherwise. It goes back only once the read that completed the
response is fully parsed: bytes past the response's end answer no request (a response nobody
asked for closes the connection), so they must never reach the next exchange. Whatever ends
the connection early (EOF, reset, garbage, cancel mid-body) fails the bound exchange and
detaches the connection from the pool right away, so the pool's counters never wait on the
transport's own close callback. While the worker is overloaded, a streamed answer's reads are
batched: after a read that left it unfinished the connection pauses for the read batcher's
window (proxy/upstream/read_batch.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from proxy.errors import UpstreamError, UpstreamProtocolError, UpstreamResetError
from proxy.headers import Headers
from proxy.upstream.api import UpstreamSettings
from proxy.upstream.exchange import ACTIVE, CANCELLED, DONE, QUEUED, PooledExchange
from proxy.upstream.http1_codec import CodecName, Http1ClientCodec, HttptoolsCodec, ResponseSink
from proxy.upstream.http1_h11 import H11Codec

if TYPE_CHECKING:
    from proxy.upstream.pool import OriginPool


URGENT_WRITE_MAX_IDLE_S = 1.0  # idle longer: even an urgent request waits for the batch


def make_codec(name: CodecName, sink: ResponseSink, max_header_bytes: int) -> Http1ClientCodec:
    """``auto`` is httptools: same behaviour as h11 on every test, several times faster."""
    if name == "h11":
        return H11Codec(sink, max_header_bytes)
    return HttptoolsCodec(sink, max_header_bytes)


class Http1Connection(asyncio.Protocol):
    is_h2 = False

    __slots__ = (
        "_closed",
        "_codec",
        "_ex",
        "_head_pending",
        "_held",
        "_out",
        "_pool",
        "_receiving",
        "_release_due",
        "_request_done",
        "_response_done",
        "_reused",
        "_write_paused",
        "authority",
        "last_used",
        "transport",
    )

    def __init__(self, pool: OriginPool, settings: UpstreamSettings) -> None:
        self._pool = pool
        self._codec = make_codec(settings.http1_codec, self, settings.max_response_header_bytes)
        self.authority = pool.origin.authority
        self.transport: asyncio.Transport | None = None
        self._ex: PooledExchange | None = None
        self._request_done = False
        self._response_done = False
        self._write_paused = False
        self._receiving = False  # inside data_received: completion defers the release
        self._release_due = False
        self._closed = False
        self._out: bytes | None = None  # encoded, waiting for the end of the iteration
        self._head_pending = False  # _out holds the request head: nothing written yet
        self._reused = False  # completed an exchange: a later death may be a stale keep-alive
        self._held = False  # reading paused by the read batcher until its window ends
        self.last_used = 0.0

    # -- pool side ------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        transport = self.transport
        return not self._closed and transport is not None and not transport.is_closing()

    @property
    def idle(self) -> bool:
        return self._ex is None

    def bind(self, ex: PooledExchange) -> bool:
        """Start ``ex`` here: its bytes go out at the end of the iteration (`flush_batched`),
        or at once when it is urgent. False when the connection is known dead (the pool then
        tries elsewhere); the connection is closed then."""
        transport = self.transport
        if transport is None or self._closed or transport.is_closing():
            self.close()
            return False
        try:
            # The body stays on the exchange until the write is known to have worked.
            out = self._codec.encode_request(
                ex.method, ex.path, self.authority, ex.headers, ex.body, ex.body_end
            )
        except UpstreamProtocolError as exc:
            # Nothing reached the wire, but the codec may be wedged (h11 is): start afresh.
            ex.state = ACTIVE  # not queued, not carried: cancel() before the call is a no-op
            ex.fail_soon(exc)
            self.close()
            return True
        self._ex = ex
        ex.carrier = self
        ex.state = ACTIVE
        self._request_done = ex.body_end
        self._response_done = False
        if ex.paused:
            transport.pause_reading()
        self._out = out
        self._head_pending = True
        if not ex.urgent or (
            self._reused and self._pool.clock() - self.last_used > URGENT_WRITE_MAX_IDLE_S
        ):
            self._pool.writes.add(self)
            return True
        # A streamed answer's first token waits on this request: under load the rest of the
        # iteration is hundreds of other streams' events, so it leaves now (one more wake-up
        # of the provider per stream, against the hundreds of events the stream brings).
        # Only on a connection that is new or answered within the last second: writing at the
        # end of the iteration also lets a close the server sent an idle connection arrive
        # before any byte goes out (the exchange then goes elsewhere, unsent), and no server
        # closes a connection for idleness within a second of its last answer.
        self._out = None
        self._head_pending = False
        transport.write(out)
        if not transport.is_closing():
            ex.body = []  # written: the pool will not need it again
            return True
        # The write failed at once: nothing reached the server. bind is called by the pool
        # while it hands out work, so the exchange is not handed back from here (as
        # `_requeue` does after the batch): the result says what the pool should do.
        self._unbind(ex)
        if self._reused:
            ex.state = QUEUED
            return False  # the pool tries another connection, as for one known dead
        ex.fail_soon(_new_connection_reset(self._pool.origin.host))
        return True

    def flush_batched(self) -> None:
        """Write the pending bytes (`WriteBatch` calls this at the end of the iteration)."""
        out = self._out
        self._out = None
        transport = self.transport
        if out is None or self._closed or transport is None:
            return
        ex = self._ex
        transport.write(out)
        if not self._head_pending or ex is None:
            return
        self._head_pending = False
        if transport.is_closing():
            # The write failed at once (the peer had reset the idle connection): nothing
            # reached the server, so the exchange may go elsewhere.
            self._requeue(ex)
            return
        ex.body = []  # written: the pool will not need it again

    def _requeue(self, ex: PooledExchange) -> None:
        """The connection is unusable with ``ex`` bound but none of its bytes written. A
        keep-alive connection the server dropped while idle gives the exchange back to the
        pool, which tries another; a fresh one that died at once is the upstream failing, and
        the exchange fails (nothing sent, so the router may retry or fall back)."""
        self._unbind(ex)
        if self._reused:
            ex.state = QUEUED
            self._pool.retry_unsent(ex)
            return
        ex.fail(_new_connection_reset(self._pool.origin.host))

    def _unbind(self, ex: PooledExchange) -> None:
        """Take ``ex``, none of whose bytes were written, off this connection, and close it."""
        self._out = None
        self._head_pending = False
        self._ex = None
        ex.carrier = None
        self.close()

    def close(self) -> None:
        """Close now and leave the pool. The bound exchange, if any, must already be settled."""
        if not self._closed:
            self._closed = True
            if self.transport is not None:
                self.transport.abort()
            self._pool.on_closed(self)

    # -- Carrier (exchange side) ------------------------------------------------------------
    def send_data(self, ex: PooledExchange, data: bytes, end_stream: bool) -> None:
        if ex is not self._ex or self._request_done or self.transport is None:
            return
        codec = self._codec
        try:
            out = codec.encode_data(data) if data else b""
            if end_stream:
                out += codec.encode_end()
        except UpstreamProtocolError as exc:
            self._abandon(exc)
            return
        if out:
            if self._out is not None:  # the head is not written yet: keep the order
                self._out += out
            else:
                self.transport.write(out)
        if end_stream:
            ex.body_end = True
            self._request_done = True
            if self._response_done:
                self._complete()

    def write_blocked(self, ex: PooledExchange) -> bool:
        return self._write_paused and ex is self._ex

    def pause(self, ex: PooledExchange) -> None:
        if ex is self._ex and self.transport is not None:
            self.transport.pause_reading()

    def resume(self, ex: PooledExchange) -> None:
        # While held, the read batcher resumes reading when the window ends.
        if ex is self._ex and self.transport is not None and not self._held:
            self.transport.resume_reading()

    def cancel(self, ex: PooledExchange) -> None:
        if ex is not self._ex:
            return
        # Still bound means mid-exchange: nobody else can pick up its framing, so close.
        self._ex = None
        self.close()

    # -- codec sink -------------------------------------------------------------------------
    def on_response_head(self, status: int, headers: Headers) -> None:
        ex = self._ex
        if ex is None:
            self.close()  # a response nobody asked for: the server lost track of the exchanges
        elif ex.state < DONE:
            ex.handler.on_upstream_headers(status, headers)

    def on_response_data(self, data: bytes) -> None:
        ex = self._ex
        if ex is not None and ex.state < DONE:
            ex.handler.on_upstream_data(data)

    def on_response_end(self) -> None:
        ex = self._ex
        if ex is None:
            self.close()  # the end of a response nobody asked for (or after a cancel)
            return
        self._response_done = True
        if ex.state < DONE:
            ex.state = DONE  # what ex.finish() does, without the call on this hot path
            ex.handler.on_upstream_end()
        if self._request_done:
            self._complete()
        elif ex.state != CANCELLED:
            # The server answered before the request body was complete (an early 4xx): the
            # rest of the body has nowhere to go, so this connection cannot be reused.
            self._ex = None
            self.close()

    def _complete(self) -> None:
        """Both directions are done: reuse or close."""
        ex = self._ex
        self._ex = None
        self._reused = True
        if ex is not None:
            ex.carrier = None
        transport = self.transport
        if self._closed or transport is None:
            return
        # A transport that closed itself since bind is caught by the next bind's check.
        if not self._codec.reusable:
            self.close()
            return
        if (ex is not None and ex.paused) or self._held:
            self._held = False  # the batcher's later release finds nothing to do
            transport.resume_reading()  # idle connections must notice the server's close
        if self._receiving:
            self._release_due = True  # see data_received
        else:
            self._pool.release_http1(self)

    def shutdown(self, error: UpstreamError) -> None:
        """Close now, failing the bound exchange with ``error``."""
        self._abandon(error)

    def _abandon(self, error: UpstreamError) -> None:
        ex = self._ex
        self._ex = None
        self.close()
        if ex is not None:
            ex.fail(error)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ex = self._ex
        if ex is None:
            # Bytes while idle (or after a cancel): nothing can be waiting for them.
            self.close()
            return
        if self._head_pending:
            # Bytes before the request went out answer nothing of ours: the connection is
            # unusable, and the request never reached the server.
            self._requeue(ex)
            return
        self._receiving = True
        try:
            self._codec.receive(data)
        except UpstreamProtocolError as exc:
            self._abandon(exc)
        finally:
            self._receiving = False
        if self._release_due:
            # Only now: bytes of this read past the response's end were read before any
            # further request was written, so they must not reach that request's exchange.
            self._release_due = False
            if not self._closed:
                self._pool.release_http1(self)
        elif self._pool.reads.active:
            self._hold()

    def _hold(self) -> None:
        """Overloaded worker: let the rest of a streamed answer gather for one window."""
        ex = self._ex
        transport = self.transport
        if (
            ex is None
            or not ex.gatherable
            or ex.paused
            or self._held
            or self._closed
            or transport is None
        ):
            return
        self._held = True
        transport.pause_reading()
        self._pool.reads.hold(self)

    def release_hold(self) -> None:
        """The read batcher's window ended."""
        if not self._held:
            return
        self._held = False
        ex = self._ex
        if self._closed or self.transport is None or (ex is not None and ex.paused):
            return  # closed, or paused for the client's back-pressure: that resume will read
        self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        self._on_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_eof()
        self.transport = None
        self._codec.detach()  # nothing reads from it again: let refcounting free us both

    def _on_eof(self) -> None:
        ex = self._ex
        if ex is not None and self._head_pending:
            self._requeue(ex)  # closed before the request was written: nothing was sent
            return
        self._out = None
        if ex is not None and not self._response_done and self._codec.receive_eof():
            return  # a close-delimited body just ended; on_response_end settled everything
        self._ex = None
        if not self._closed:
            self.close()
        if ex is not None and ex.state < DONE:
            ex.fail(
                UpstreamResetError(
                    f"upstream {self._pool.origin.host} closed the connection before the "
                    "response completed",
                    request_bytes_sent=True,
                )
            )

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        ex = self._ex
        if ex is not None and ex.state < DONE and not self._request_done:
            ex.handler.on_upstream_writable()


def _new_connection_reset(host: str) -> UpstreamResetError:
    return UpstreamResetError(
        f"upstream {host} closed a new connection before the request was written",
        request_bytes_sent=False,
    )
