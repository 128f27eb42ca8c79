"""Events the downstream codecs emit, made per request and per chunk.

Slotted but not frozen: a frozen dataclass pays object.__setattr__ per field (about 1 µs per
event here, against 0.2 µs). Treat them as immutable all the same: nothing assigns to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.headers import Headers


@dataclass(slots=True)
class RequestHeaders:
    stream_id: int
    method: bytes
    path: bytes  # the request target as sent: path plus query
    authority: bytes  # Host or :authority, b"" when absent
    headers: Headers  # lower-case names; pseudo-headers removed
    end_stream: bool
    expect_continue: bool = False  # HTTP/1.1 "Expect: 100-continue"; see ServerCodec.send_continue
    content_length: int | None = None


@dataclass(slots=True)
class RequestData:
    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(slots=True)
class StreamReset:
    """The client reset one stream (HTTP/2 RST_STREAM, or a stream the codec refused)."""

    stream_id: int
    error_code: int


@dataclass(slots=True)
class StreamDrained:
    """Data the codec was holding for ``stream_id`` (flow control) has been sent: write more.

    ``stream_id`` 0 means every stream may have room again (connection window opened).
    """

    stream_id: int


@dataclass(slots=True)
class ConnectionTerminated:
    """The client sent GOAWAY; streams above ``last_stream_id`` will not be processed."""

    error_code: int
    last_stream_id: int


Event = RequestHeaders | RequestData | StreamReset | StreamDrained | ConnectionTerminated
