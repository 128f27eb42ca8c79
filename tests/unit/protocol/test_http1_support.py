"""Helpers shared by the HTTP/1.1 codec tests: the `codec_cls` fixture runs every test against
both implementations, which must behave identically."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from proxy.errors import DownstreamProtocolError
from proxy.events import Event, RequestData
from proxy.protocol.http1 import H11ServerCodec, HttptoolsServerCodec
from proxy.protocol.http1_common import Http1ServerCodecBase
from proxy.protocol.limits import CodecLimits

CODECS: list[type[Http1ServerCodecBase]] = [HttptoolsServerCodec, H11ServerCodec]


@pytest.fixture(params=CODECS, ids=["httptools", "h11"])
def codec_cls(request: pytest.FixtureRequest) -> type[Http1ServerCodecBase]:
    cls: type[Http1ServerCodecBase] = request.param
    return cls


def make(cls: type[Http1ServerCodecBase], **limits: int) -> Http1ServerCodecBase:
    return cls(CodecLimits(**limits))


def merge(events: Iterable[Event]) -> list[Event]:
    """Join consecutive RequestData of one stream: how reads split a body is not observable."""
    out: list[Event] = []
    for ev in events:
        prev = out[-1] if out else None
        if (
            isinstance(ev, RequestData)
            and isinstance(prev, RequestData)
            and prev.stream_id == ev.stream_id
            and not prev.end_stream
        ):
            out[-1] = RequestData(ev.stream_id, prev.data + ev.data, ev.end_stream)
        else:
            out.append(ev)
    return out


def feed(
    codec: Http1ServerCodecBase, data: bytes, sizes: Iterable[int] | None = None
) -> tuple[list[Event], DownstreamProtocolError | None]:
    """Feed ``data`` in pieces (whole when ``sizes`` is None, else pieces of those sizes, the
    last size repeating). Return the events received before any error, and the error."""
    events: list[Event] = []
    pieces: list[bytes]
    if sizes is None:
        pieces = [data]
    else:
        pieces = []
        size_list = list(sizes)
        i = 0
        k = 0
        while i < len(data):
            n = size_list[min(k, len(size_list) - 1)]
            pieces.append(data[i : i + n])
            i += n
            k += 1
    for piece in pieces:
        try:
            events += codec.receive(piece, 0.0)
        except DownstreamProtocolError as exc:
            return events, exc
    return events, None


def request(
    method: bytes = b"GET",
    path: bytes = b"/",
    headers: Iterable[tuple[bytes, bytes]] = ((b"Host", b"example.com"),),
    body: bytes = b"",
    version: bytes = b"HTTP/1.1",
) -> bytes:
    lines = [b"%s %s %s" % (method, path, version)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    return (
        b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
        + b"0\r\n"
        + trailers
        + (b"\r\n")
    )
