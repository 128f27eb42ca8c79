"""The upstream client as the router sees it.

How this works: `UpstreamClient.request` hands a request to the pool of its origin through a
synchronous assignment step (idle connection, new connection, or the bounded wait queue) and
returns an `Exchange` at once. Everything that happens later is reported through the
`ResponseHandler` callbacks, which run on the event loop — never from inside ``request`` itself
— so the per-request path creates no task or coroutine when a pooled connection is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from proxy.errors import UpstreamError
from proxy.headers import Headers

UpstreamProtocol = Literal["auto", "http1", "h2", "h2c"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a provider lives. One connection pool per distinct Origin."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    protocol: UpstreamProtocol = "auto"  # auto: ALPN picks on TLS, HTTP/1.1 on cleartext
    ca_file: str | None = None  # extra CA bundle; the system trust store otherwise
    sni: str | None = None  # defaults to host
    connect_timeout_s: float | None = None  # the provider's own; None: UpstreamSettings'
    max_connections: int | None = None  # likewise (providers[].resources)
    max_pending: int | None = None

    @property
    def authority(self) -> bytes:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == default else f"{host}:{self.port}").encode("ascii")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout_s: float = 10.0
    max_connections_per_origin: int = 256
    max_pending_requests: int = 1024  # requests waiting for a connection; beyond: overflow 503
    idle_timeout_s: float = 60.0  # below typical provider keep-alive (90 s+)
    dns_ttl_s: float = 30.0
    max_response_header_bytes: int = 64 * 1024
    http1_codec: Literal["auto", "httptools", "h11"] = "auto"
    h2_max_streams_per_connection: int = 100  # also capped by the server's SETTINGS
    # While the worker is overloaded, a streamed answer pauses after each read for half a
    # window to a whole one (proxy/upstream/read_batch.py).
    read_batch_window_s: float = 0.04


class ResponseHandler(Protocol):
    """Receives one exchange's response. After on_upstream_end or on_upstream_error nothing
    more is called; after Exchange.cancel() nothing at all is called."""

    def on_upstream_headers(self, status: int, headers: Headers) -> None: ...

    def on_upstream_data(self, data: bytes) -> None: ...

    def on_upstream_end(self) -> None: ...

    def on_upstream_error(self, error: UpstreamError) -> None: ...

    def on_upstream_writable(self) -> None:
        """The request body may be sent again (after Exchange.write_blocked was True)."""
        ...


class Exchange(Protocol):
    def send_data(self, data: bytes, end_stream: bool) -> None:
        """More request body. Buffered until a connection is assigned."""
        ...

    @property
    def write_blocked(self) -> bool:
        """True while the upstream cannot take more request body: stop reading the client."""
        ...

    def pause_reading(self) -> None:
        """The client reads slowly: stop reading this response (HTTP/2: stop opening the
        stream window; HTTP/1.1: pause the transport)."""
        ...

    def resume_reading(self) -> None: ...

    def allow_gathering(self) -> None:
        """The client has this stream's first content: while the worker is overloaded, later
        events may gather for a short window and be read together
        (proxy/upstream/read_batch.py). Never called for a whole (non-streamed) answer."""
        ...

    def cancel(self) -> None:
        """The client went away. HTTP/1.1 closes the connection unless the exchange had
        finished; HTTP/2 sends RST_STREAM(CANCEL). A queued request just leaves the queue."""
        ...


class UpstreamClient(Protocol):
    def request(
        self,
        origin: Origin,
        method: bytes,
        path: bytes,
        headers: Headers,
        handler: ResponseHandler,
        end_stream: bool,
        body: bytes = b"",
        urgent: bool = False,
    ) -> Exchange:
        """Start an exchange. ``headers`` carry no Host/hop-by-hop headers; the client sets
        Host (or :authority) from the origin. ``body`` is the first (with ``end_stream``, the
        only) piece of the request body: it leaves in the same write as the head. ``urgent``:
        an HTTP/1.1 connection writes the request as soon as it has one, not with the
        end-of-iteration batch (a streamed answer, whose first token waits on it). Raises
        UpstreamOverflowError at once when the origin's wait queue is full."""
        ...

    async def close(self) -> None:
        """Close every pooled connection and fail queued requests."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters for /stats and tests: open, idle, active, pending, connects, reuses ..."""
        ...
