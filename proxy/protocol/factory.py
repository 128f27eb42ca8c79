"""Builds the downstream codec for a connection once its protocol is known."""

from __future__ import annotations

from typing import Literal

from proxy.protocol.codec import ServerCodec
from proxy.protocol.limits import CodecLimits


def make_server_codec(
    protocol: Literal["h2", "http/1.1"],
    http1_impl: Literal["auto", "httptools", "h11"],
    limits: CodecLimits,
    http2_impl: Literal["auto", "native", "h2"] = "auto",
) -> ServerCodec:
    """``http1_impl`` "auto" takes httptools (llhttp) when it imports, h11 otherwise;
    ``http2_impl`` "auto" takes the native codec, "h2" the reference one over h2."""
    if protocol == "h2":
        if http2_impl == "h2":
            from proxy.protocol.http2 import H2ServerCodec

            return H2ServerCodec(limits)
        if http2_impl not in ("auto", "native"):
            raise ValueError(f"unknown HTTP/2 implementation {http2_impl!r}")
        from proxy.protocol.http2_native import NativeH2ServerCodec

        return NativeH2ServerCodec(limits)
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
