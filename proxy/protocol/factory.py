"""Builds the downstream codec for a connection once its protocol is known."""

from __future__ import annotations

from typing import Literal

from proxy.protocol.codec import ServerCodec
from proxy.protocol.limits import CodecLimits


def make_server_codec(
    protocol: Literal["h2", "http/1.1"],
    http1_impl: Literal["auto", "httptools", "h11"],
    limits: CodecLimits,
) -> ServerCodec:
    """``http1_impl`` "auto" takes httptools (llhttp) when it imports, h11 otherwise."""
    if protocol == "h2":
        from proxy.protocol.http2 import H2ServerCodec

        return H2ServerCodec(limits)
    if protocol != "http/1.1":
        raise ValueError(f"unknown protocol {protocol!r}")
    if http1_impl == "h11":
        from proxy.protocol.http1_h11 import H11ServerCodec

        return H11ServerCodec(limits)
    if http1_impl not in ("auto", "httptools"):
        raise ValueError(f"unknown HTTP/1.1 implementation {http1_impl!r}")
    try:
        from proxy.protocol.http1_httptools import HttptoolsServerCodec
    except ImportError:
        if http1_impl == "httptools":
            raise
        from proxy.protocol.http1_h11 import H11ServerCodec

        return H11ServerCodec(limits)
    return HttptoolsServerCodec(limits)
