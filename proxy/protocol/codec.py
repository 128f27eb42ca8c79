"""The interface every downstream codec implements (HTTP/1.1 via httptools or h11, HTTP/2 via h2).

How this works: a codec is sans-I/O. The connection feeds it the bytes a transport received
and gets back `proxy.events` events; it tells the codec what to send and then drains
`data_to_send()` into the transport. A codec never touches a socket, a task or the clock
except through the ``now`` values it is given.

Stream ids: HTTP/2 uses its own; HTTP/1.1 numbers requests on a connection 1, 2, 3 ... and
answers them strictly in order (the connection holds pipelined requests until their turn).

Errors: framing errors raise `proxy.errors.DownstreamProtocolError` (or a subclass carrying
413/431/...). After such an error the connection calls ``send_error_response`` (HTTP/1.1 writes
a complete response with ``Connection: close`` when no response had started; HTTP/2 has already
queued its GOAWAY or RST_STREAM), flushes `data_to_send()`, and closes.
"""

from __future__ import annotations

from typing import Protocol

from proxy.events import Event
from proxy.headers import Headers


class ServerCodec(Protocol):
    alpn: str  # "http/1.1" or "h2"

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Parse received bytes. Raises DownstreamProtocolError on bad framing."""
        ...

    def send_continue(self, stream_id: int) -> None:
        """Send ``100 Continue`` (HTTP/1.1 only; a no-op for HTTP/2)."""
        ...

    def send_headers(self, stream_id: int, status: int, headers: Headers, end_stream: bool) -> None:
        """Response headers. Hop-by-hop headers must already be removed.

        HTTP/1.1 picks the framing: Content-Length when present, else chunked (or
        close-delimited for HTTP/1.0 clients).
        """
        ...

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue response body bytes. Always accepted; HTTP/2 holds what does not fit the
        peer's windows (see ``pending_bytes``) and emits StreamDrained once it went out."""
        ...

    def pending_bytes(self, stream_id: int) -> int:
        """Bytes accepted by send_data but held back by flow control (always 0 for HTTP/1.1)."""
        ...

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        """The proxy consumed ``nbytes`` of this stream's request body: reopen the window."""
        ...

    def reset_stream(self, stream_id: int) -> None:
        """Abort one stream (HTTP/2 RST_STREAM; HTTP/1.1 cannot, the connection closes)."""
        ...

    def start_drain(self) -> None:
        """Shutting down: HTTP/2 sends GOAWAY, HTTP/1.1 adds Connection: close from now on."""
        ...

    def send_error_response(self, status: int, headers: Headers, body: bytes) -> bool:
        """After a DownstreamProtocolError: queue a whole response marked Connection: close if
        the protocol still allows one. Returns False when nothing could be queued."""
        ...

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport now; empty when there is nothing."""
        ...

    @property
    def keep_alive(self) -> bool:
        """False once the connection must close after what is queued has been written."""
        ...

    @property
    def idle(self) -> bool:
        """No request is in progress (used to arm the keep-alive timer and finish drains)."""
        ...
