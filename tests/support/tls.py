"""Certificates for loopback TLS tests, made by trustme.

``make_tls_ca(directory)`` returns a `TlsCA`: a throwaway CA whose PEM file (``ca_file``) a
client trusts, and ``server_context(alpn)`` for servers on 127.0.0.1 / localhost / ::1.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsCA:
    ca: trustme.CA
    cert: trustme.LeafCert
    ca_file: str  # PEM bundle holding the CA certificate

    def server_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


def make_tls_ca(directory: Path) -> TlsCA:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca_file = directory / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsCA(ca=ca, cert=cert, ca_file=str(ca_file))
