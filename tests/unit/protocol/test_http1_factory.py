"""make_server_codec picks the HTTP/1.1 implementation."""

from __future__ import annotations

import pytest

from proxy.protocol.factory import make_server_codec
from proxy.protocol.http1 import H11ServerCodec, HttptoolsServerCodec
from proxy.protocol.limits import CodecLimits


def test_auto_prefers_httptools() -> None:
    codec = make_server_codec("http/1.1", "auto", CodecLimits())
    assert isinstance(codec, HttptoolsServerCodec)
    assert codec.alpn == "http/1.1"


def test_explicit_choices() -> None:
    assert isinstance(
        make_server_codec("http/1.1", "httptools", CodecLimits()), HttptoolsServerCodec
    )
    assert isinstance(make_server_codec("http/1.1", "h11", CodecLimits()), H11ServerCodec)


def test_limits_reach_the_codec() -> None:
    codec = make_server_codec("http/1.1", "h11", CodecLimits(max_body_bytes=5))
    with pytest.raises(Exception, match="exceeds 5 bytes"):
        codec.receive(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n", 0.0)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError):
        make_server_codec("http/1.1", "picohttp", CodecLimits())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_server_codec("spdy", "auto", CodecLimits())  # type: ignore[arg-type]
