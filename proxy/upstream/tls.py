"""Client TLS contexts for upstream origins.

The system trust store (``ssl.create_default_context``) plus an origin's optional extra CA
bundle; ALPN offers follow the origin's protocol. Building a context reads the trust store
(milliseconds), so contexts are cached per (ca_file, protocol) in a bounded map owned by the
client.
"""

from __future__ import annotations

import ssl

from proxy.errors import ConfigError
from proxy.upstream.api import Origin, UpstreamProtocol


def alpn_protocols(protocol: UpstreamProtocol) -> list[str]:
    if protocol in ("h2", "h2c"):
        return ["h2"]
    if protocol == "http1":
        return ["http/1.1"]
    return ["h2", "http/1.1"]


def make_context(ca_file: str | None, protocol: UpstreamProtocol) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"upstream ca_file {ca_file!r} cannot be loaded: {exc}") from None
    context.set_alpn_protocols(alpn_protocols(protocol))
    return context


class TlsContexts:
    def __init__(self, max_entries: int = 64) -> None:
        self._max_entries = max_entries
        self._contexts: dict[tuple[str | None, UpstreamProtocol], ssl.SSLContext] = {}

    def get(self, origin: Origin) -> ssl.SSLContext:
        key = (origin.ca_file, origin.protocol)
        context = self._contexts.get(key)
        if context is None:
            context = make_context(origin.ca_file, origin.protocol)
            if len(self._contexts) >= self._max_entries:
                del self._contexts[next(iter(self._contexts))]
            self._contexts[key] = context
        return context
