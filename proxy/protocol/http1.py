"""The downstream HTTP/1.1 server codecs.

Two implementations of `proxy.protocol.codec.ServerCodec` with the same observable behaviour:
`HttptoolsServerCodec` (llhttp, the fast default) and `H11ServerCodec` (pure-Python h11, the
reference). Both also expose ``receiving`` ("idle" | "headers" | "body": which timeout the
connection should arm) and ``pipelined`` (requests received whose response has not completed).
The shared behaviour lives in `proxy.protocol.http1_common` (with `http1_head` and
`http1_response`); `proxy.protocol.factory` picks one.
"""

from __future__ import annotations

from proxy.protocol.http1_common import Http1ServerCodecBase
from proxy.protocol.http1_h11 import H11ServerCodec

__all__ = ["H11ServerCodec", "Http1ServerCodecBase", "HttptoolsServerCodec"]

try:
    from proxy.protocol.http1_httptools import HttptoolsServerCodec
except ImportError:  # pragma: no cover - httptools is a hard dependency, but keep h11 usable
    HttptoolsServerCodec = None  # type: ignore[assignment,misc]
