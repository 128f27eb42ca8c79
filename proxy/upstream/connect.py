"""Opening one upstream connection: DNS, TCP, TLS + ALPN, and the HTTP/2 preface.

How this works: `Connector.connect` runs inside the pool's connect task under one deadline
(``connect_timeout_s`` covers DNS, TCP, the TLS handshake and, for HTTP/2, the server's first
SETTINGS). The protocol object handed to ``create_connection`` is a `_Handshake` that picks
the real connection class in ``connection_made`` — after the TLS handshake, when ALPN has
chosen — and swaps it in with ``transport.set_protocol``. Every failure leaves as an
`UpstreamConnectError` or `UpstreamTimeoutError` whose message names the host and the reason,
never a traceback.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, cast

from proxy.errors import ConfigError, UpstreamConnectError, UpstreamError, UpstreamTimeoutError
from proxy.upstream.api import Origin, UpstreamSettings
from proxy.upstream.dns import DnsCache
from proxy.upstream.http1 import Http1Connection
from proxy.upstream.http2 import Http2Connection
from proxy.upstream.tls import TlsContexts

if TYPE_CHECKING:
    from proxy.upstream.pool import OriginPool

Connection = Http1Connection | Http2Connection
_Mode = Literal["h1", "h2", "alpn", "alpn-h2"]


def connect_mode(origin: Origin) -> _Mode:
    """How the wire protocol is chosen for ``origin``."""
    if origin.scheme == "http":
        return "h2" if origin.protocol in ("h2", "h2c") else "h1"
    if origin.protocol == "http1":
        return "h1"
    if origin.protocol == "auto":
        return "alpn"
    return "alpn-h2"


class _Handshake(asyncio.Protocol):
    """Stands in until the transport is up, then hands it to the right connection class."""

    def __init__(self, pool: OriginPool, settings: UpstreamSettings, mode: _Mode) -> None:
        self._pool = pool
        self._settings = settings
        self._mode = mode
        self.conn: Connection | None = None
        self.alpn: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        mode = self._mode
        use_h2 = mode == "h2"
        if mode in ("alpn", "alpn-h2"):
            ssl_object = transport.get_extra_info("ssl_object")
            self.alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            use_h2 = self.alpn == "h2"
            if mode == "alpn-h2" and not use_h2:
                cast(asyncio.Transport, transport).abort()
                return
        conn: Connection
        if use_h2:
            conn = Http2Connection(self._pool, self._settings)
        else:
            conn = Http1Connection(self._pool, self._settings)
        self.conn = conn
        transport.set_protocol(conn)
        conn.connection_made(transport)


class Connector:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settings: UpstreamSettings,
        clock: Callable[[], float],
    ) -> None:
        self._loop = loop
        self._settings = settings
        self.dns = DnsCache(loop, settings.dns_ttl_s, clock)
        self._tls = TlsContexts()

    async def connect(self, pool: OriginPool) -> Connection:
        origin = pool.origin
        timeout_s = origin.connect_timeout_s or self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await self._open(pool)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"connect to {origin.host}:{origin.port} timed out after {timeout_s:g} s"
            ) from None

    async def _open(self, pool: OriginPool) -> Connection:
        origin = pool.origin
        host = origin.host
        addresses = await self.dns.resolve(host, origin.port)
        context: ssl.SSLContext | None = None
        server_hostname: str | None = None
        if origin.scheme == "https":
            try:
                context = self._tls.get(origin)
            except ConfigError as exc:
                raise UpstreamConnectError(f"TLS setup for {host} failed: {exc}") from None
            server_hostname = origin.sni or host
        mode = connect_mode(origin)
        last_error: UpstreamError | None = None
        for _family, ip, port in addresses:
            handshake = _Handshake(pool, self._settings, mode)
            try:
                transport, _ = await self._loop.create_connection(
                    lambda hs=handshake: hs,
                    host=ip,
                    port=port,
                    ssl=context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=(
                        origin.connect_timeout_s or self._settings.connect_timeout_s
                    )
                    if context
                    else None,
                )
            except ssl.SSLError as exc:
                raise _tls_error(host, exc) from None
            except OSError as exc:
                last_error = _socket_error(origin, exc)
                continue
            return await self._finish(handshake, transport, host)
        assert last_error is not None
        raise last_error

    async def _finish(
        self, handshake: _Handshake, transport: asyncio.BaseTransport, host: str
    ) -> Connection:
        conn = handshake.conn
        if conn is None:
            raise UpstreamConnectError(
                f"{host} did not offer HTTP/2 (ALPN chose {handshake.alpn or 'nothing'})"
            )
        if isinstance(conn, Http2Connection) and not conn.settings_received:
            ready = self._loop.create_future()
            conn.ready = ready
            try:
                await ready
            except BaseException:
                ready.cancel()
                cast(asyncio.Transport, transport).abort()
                conn.close()
                raise
        if not conn.usable:
            raise UpstreamConnectError(f"{host} closed the connection during setup")
        return conn


def _tls_error(host: str, exc: ssl.SSLError) -> UpstreamConnectError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = f"certificate verify failed: {exc.verify_message}"
    else:
        detail = exc.reason or type(exc).__name__
    return UpstreamConnectError(f"TLS handshake with {host} failed: {detail}")


def _socket_error(origin: Origin, exc: OSError) -> UpstreamConnectError:
    where = f"{origin.host}:{origin.port}"
    if isinstance(exc, ConnectionRefusedError):
        return UpstreamConnectError(f"connection to {where} refused")
    reason = exc.strerror or type(exc).__name__
    return UpstreamConnectError(f"connect to {where} failed: {reason}")
