"""The filter chain's contract, Envoy's semantics in a Python shape.

How this works: a stream runs its decoder filters in order on the request and its encoder
filters in reverse order on the response. Hooks are synchronous and return a status, so the
per-chunk path creates no coroutine.

- ``decode_headers`` returning STOP pauses header iteration at that filter; request data still
  reaches the filters up to and including it. A filter that wants the whole body returns
  STOP_AND_BUFFER from ``decode_data`` (the manager keeps the bytes, within the body limit)
  and CONTINUE on the last chunk, or calls ``continue_decoding()`` later (after async work).
  On continue, the remaining filters get the headers, then the buffered body in one chunk.
- A filter may answer by itself with ``send_local_reply``; iteration stops there.
- Filters rewrite a chunk in flight with ``replace_decoding_data`` / ``replace_encoding_data``.
- ``on_destroy`` runs once when the stream ends for any reason; cancel what the filter started.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Protocol

from proxy.headers import Headers

if TYPE_CHECKING:
    from proxy.errors import ProxyError
    from proxy.http.info import StreamInfo


class HeadersStatus(enum.Enum):
    CONTINUE = 0
    STOP = 1


class DataStatus(enum.Enum):
    CONTINUE = 0
    STOP_AND_BUFFER = 1  # the manager buffers this chunk; iteration waits for a continue
    STOP_NO_BUFFER = 2  # the filter kept (or dropped) the chunk itself


class Dialect(enum.Enum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"

    # Identity hash: Enum's own is a Python function over the name (see Outcome).
    __hash__ = object.__hash__


class RequestView(Protocol):
    """What filters may read about the request."""

    method: bytes
    path: bytes  # request target: path plus query
    route_path: str  # normalised path used for routing, without query
    authority: bytes
    headers: Headers
    dialect: Dialect  # the client's dialect, decided by the route
    body_json: Any  # the parsed JSON body once the body filter ran, else None


class FilterCallbacks(Protocol):
    """What a filter may do to its stream."""

    @property
    def request(self) -> RequestView: ...

    @property
    def info(self) -> StreamInfo: ...

    def continue_decoding(self) -> None: ...

    def replace_decoding_data(self, data: bytes) -> None: ...

    def replace_encoding_data(self, data: bytes) -> None: ...

    def send_local_reply(
        self, status: int, message: str, *, kind: str | None = None, headers: Headers | None = None
    ) -> None:
        """Answer in the client's dialect (Anthropic or OpenAI error shape)."""
        ...

    def send_response(self, status: int, headers: Headers, body: bytes) -> None:
        """A complete response made by the proxy itself."""
        ...

    def send_error(self, error: ProxyError) -> None:
        """A typed error: local reply before the response started, in-band error after."""
        ...

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> None:
        """Start the response (used by the terminal filter)."""
        ...

    def encode_data(self, data: bytes, end_stream: bool) -> bool:
        """Send response body bytes through the encoder filters. The result is
        `downstream_writable` afterwards."""
        ...

    @property
    def downstream_writable(self) -> bool:
        """False while the client reads more slowly than we write: pause the upstream."""
        ...

    def set_watermark_listener(self, listener: WatermarkListener | None) -> None: ...


class WatermarkListener(Protocol):
    def on_downstream_writable(self) -> None: ...


class DecoderFilter(Protocol):
    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None: ...

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus: ...

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus: ...

    def on_destroy(self) -> None: ...


class EncoderFilter(Protocol):
    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None: ...

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus: ...

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus: ...

    def on_destroy(self) -> None: ...
