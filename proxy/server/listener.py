"""Listening sockets and the TLS context for the data port."""

from __future__ import annotations

import socket
import ssl

from proxy.errors import ConfigError

LISTEN_BACKLOG = 2048


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket. With ``reuse_port`` several workers share the port and the
    kernel spreads new connections across them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"listen: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


# TLS 1.2 suites: forward-secret key exchange with an AEAD cipher only (no CBC, no static
# RSA). TLS 1.3 suites are all AEAD and are set apart by OpenSSL.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!aDSS"


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    # Compression (CRIME) and client-started renegotiation (a CPU lever) are off.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"listen.tls: cannot load certificate or key: {exc}") from exc
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx
