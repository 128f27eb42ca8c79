"""One request/response exchange as the router holds it (the `Exchange` of api.py).

How this works: an exchange starts QUEUED (request body is buffered in it) or is bound at once
to a carrier — an HTTP/1.1 connection or one stream of an HTTP/2 connection — which writes the
head plus whatever body was buffered. From then on the exchange just forwards send_data, pause,
resume and cancel to its carrier. Carriers deliver the response through ``handler`` and finish
the exchange with `finish` or `fail`, which guarantee that nothing reaches the handler after an
end, an error or a cancel.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from proxy.errors import UpstreamError
from proxy.headers import Headers
from proxy.upstream.api import Origin, ResponseHandler

if TYPE_CHECKING:
    from proxy.upstream.pool import OriginPool

QUEUED = 0
ACTIVE = 1
DONE = 2  # the response ended or failed; the carrier may still finish sending the request
CANCELLED = 3


class Carrier(Protocol):
    """What an exchange is bound to: an HTTP/1.1 connection or an HTTP/2 connection."""

    def send_data(self, ex: PooledExchange, data: bytes, end_stream: bool) -> None: ...

    def write_blocked(self, ex: PooledExchange) -> bool: ...

    def pause(self, ex: PooledExchange) -> None: ...

    def resume(self, ex: PooledExchange) -> None: ...

    def cancel(self, ex: PooledExchange) -> None: ...


class PooledExchange:
    __slots__ = (
        "body",
        "body_end",
        "carrier",
        "gatherable",
        "handler",
        "headers",
        "loop",
        "method",
        "origin",
        "path",
        "paused",
        "pool",
        "state",
        "stream_id",
        "urgent",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: OriginPool | None,
        origin: Origin,
        method: bytes,
        path: bytes,
        headers: Headers,
        handler: ResponseHandler,
        end_stream: bool,
        body: bytes = b"",
        urgent: bool = False,
    ) -> None:
        self.loop = loop
        self.pool = pool
        self.origin = origin
        self.method = method
        self.path = path
        self.headers = headers
        self.handler = handler
        self.body: list[bytes] = [body] if body else []  # bounded by the caller's body limit
        self.body_end = end_stream
        self.state = QUEUED
        self.carrier: Carrier | None = None
        self.stream_id = 0
        self.paused = False
        self.urgent = urgent  # HTTP/1.1: written when bound, not with the iteration's batch
        self.gatherable = False  # reads may be batched under overload (allow_gathering)

    # -- Exchange -------------------------------------------------------------------------
    def send_data(self, data: bytes, end_stream: bool) -> None:
        if self.state >= CANCELLED or self.body_end:
            return
        carrier = self.carrier
        if carrier is None:
            if data:
                self.body.append(data)
            self.body_end = end_stream
        else:
            carrier.send_data(self, data, end_stream)

    @property
    def write_blocked(self) -> bool:
        carrier = self.carrier
        return carrier is not None and carrier.write_blocked(self)

    def pause_reading(self) -> None:
        if not self.paused:
            self.paused = True
            if self.carrier is not None:
                self.carrier.pause(self)

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            if self.carrier is not None:
                self.carrier.resume(self)

    def allow_gathering(self) -> None:
        self.gatherable = True

    def cancel(self) -> None:
        state = self.state
        if state == CANCELLED:
            return
        self.state = CANCELLED
        if state == QUEUED:
            if self.pool is not None:
                self.pool.remove_waiter(self)
        elif self.carrier is not None:
            self.carrier.cancel(self)

    # -- for carriers and the pool ------------------------------------------------------
    def take_body(self) -> list[bytes]:
        body = self.body
        self.body = []
        return body

    def finish(self) -> None:
        if self.state < DONE:
            self.state = DONE
            self.handler.on_upstream_end()

    def fail(self, error: UpstreamError) -> None:
        if self.state < DONE:
            self.state = DONE
            self.handler.on_upstream_error(error)

    def fail_soon(self, error: UpstreamError) -> None:
        """Fail from a later loop iteration: used where the caller may be inside request()."""
        self.loop.call_soon(self.fail, error)

    def __repr__(self) -> str:
        return f"<PooledExchange {self.method!r} {self.origin.host} state={self.state}>"
