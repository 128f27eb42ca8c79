"""Events the downstream codecs emit, made per request and per chunk.

Slotted but not frozen: a frozen dataclass pays object.__setattr__ per field (about 1 µs per
event here, against 0.2 µs). Treat them as immutable all the same: nothing assigns to them.
Each spells out its ``__init__`` (``init=False``): the one the dataclass decorator generates
is interpreted even when mypyc compiles the module, and costs five times as much; the
decorator still provides ``__eq__`` and ``__repr__``.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.headers import Headers


@dataclass(slots=True, init=False)
class RequestHeaders:
    stream_id: int
    method: bytes
    path: bytes  # the request target as sent: path plus query
    authority: bytes  # Host or :authority, b"" when absent
    headers: Headers  # lower-case names; pseudo-headers removed
    end_stream: bool
    expect_continue: bool = False  # HTTP/1.1 "Expect: 100-continue"; see ServerCodec.send_continue
    content_length: int | None = None

    def __init__(
        self,
        stream_id: int,
        method: bytes,
        path: bytes,
        authority: bytes,
        headers: Headers,
        end_stream: bool,
        expect_continue: bool = False,
        content_length: int | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.path = path
        self.authority = authority
        self.headers = headers
        self.end_stream = end_stream
        self.expect_continue = expect_continue
        self.content_length = content_length


@dataclass(slots=True, init=False)
class RequestData:
    stream_id: int
    data: bytes
    end_stream: bool

    def __init__(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.end_stream = end_stream


@dataclass(slots=True, init=False)
class StreamReset:
    """The client reset one stream (HTTP/2 RST_STREAM, or a stream the codec refused)."""

    stream_id: int
    error_code: int

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


@dataclass(slots=True, init=False)
class StreamDrained:
    """Data the codec was holding for ``stream_id`` (flow control) has been sent: write more.

    ``stream_id`` 0 means every stream may have room again (connection window opened).
    """

    stream_id: int

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


@dataclass(slots=True, init=False)
class ConnectionTerminated:
    """The client sent GOAWAY; streams above ``last_stream_id`` will not be processed."""

    error_code: int
    last_stream_id: int

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id


Event = RequestHeaders | RequestData | StreamReset | StreamDrained | ConnectionTerminated
