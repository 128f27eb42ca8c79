"""TLS on the data port (hardening.md §2 B8 and the TLS row of issue 9): TLS 1.2 is the floor,
TLS 1.2 suites are forward-secret AEAD only, ALPN picks h2 or http/1.1, and a handshake that
never completes (silence or garbage) is cut at `server.tls_handshake_timeout_s` without leaving
a connection behind. Certificates are throwaway ones from trustme."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from proxy.server.listener import server_tls_context
from tests.integration.proxy.harness import Running


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_run(
    junction_factory: Callable[..., Running], ca: trustme.CA, tmp_path: Path
) -> tuple[Running, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem = tmp_path / "cert.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    run = junction_factory(
        listen={
            "host": "127.0.0.1",
            "port": 0,
            "tls": {"cert_file": str(pem), "key_file": str(pem)},
        },
        server={"tls_handshake_timeout_s": 0.5},
    )
    return run, str(ca_file)


def client_ctx(ca_file: str, **opts: object) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    for name, value in opts.items():
        if name == "ciphers":
            ctx.set_ciphers(str(value))
        elif name == "alpn":
            ctx.set_alpn_protocols(list(value))  # type: ignore[call-overload]
        else:
            setattr(ctx, name, value)
    return ctx


def handshake(run: Running, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", run.port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def get_root(s: ssl.SSLSocket) -> bytes:
    s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def refused_by_server(exc: ssl.SSLError) -> bool:
    """The server hung up on the ClientHello or sent an alert: not a client unable to offer
    the version or suites at all (that fails before a byte is sent, with NO_* reasons)."""
    return isinstance(exc, ssl.SSLEOFError) or "ALERT" in str(exc).upper()


def connections(run: Running) -> int:
    return run.lt.call(lambda: len(run.worker.conns.conns))  # type: ignore[no-any-return]


def test_server_context_floor_and_suites(tmp_path: Path, ca: trustme.CA) -> None:
    pem = tmp_path / "c.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ctx = server_tls_context(str(pem), str(pem))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION and ctx.options & ssl.OP_NO_RENEGOTIATION
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    for c in tls12:
        assert c["aead"], c["name"]
        assert c["kea"] in ("kx-ecdhe", "kx-dhe"), c["name"]
        assert c["auth"] in ("auth-rsa", "auth-ecdsa"), c["name"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_are_served(tls_run: tuple[Running, str], version: ssl.TLSVersion) -> None:
    run, ca_file = tls_run
    s = handshake(run, client_ctx(ca_file, minimum_version=version, maximum_version=version))
    assert s.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    assert get_root(s).startswith(b"HTTP/1.1 200")
    s.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_below_12_is_refused(tls_run: tuple[Running, str], version: str) -> None:
    if not getattr(ssl, f"HAS_{version}"):
        pytest.skip(f"this OpenSSL cannot even offer {version}")
    run, ca_file = tls_run
    ctx = client_ctx(ca_file, ciphers="DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with pytest.raises(ssl.SSLError) as err:
        handshake(run, ctx).close()
    assert refused_by_server(err.value), err.value


def test_weak_tls12_suites_are_refused(tls_run: tuple[Running, str]) -> None:
    run, ca_file = tls_run
    weak = "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA:AES128-GCM-SHA256:AES128-SHA"
    ctx = client_ctx(ca_file, ciphers=weak, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError) as err:
        handshake(run, ctx).close()
    assert refused_by_server(err.value), err.value


@pytest.mark.parametrize(
    ("offer", "chosen"),
    [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1"), (None, None)],
    ids=["h2", "http1.1", "no-alpn"],
)
def test_alpn(tls_run: tuple[Running, str], offer: list[str] | None, chosen: str | None) -> None:
    run, ca_file = tls_run
    ctx = client_ctx(ca_file) if offer is None else client_ctx(ca_file, alpn=offer)
    s = handshake(run, ctx)
    assert s.selected_alpn_protocol() == chosen
    if chosen == "h2":
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        assert s.recv(9)[3] == 0x4  # the server's SETTINGS frame
    else:
        assert get_root(s).startswith(b"HTTP/1.1 200")
    s.close()


@pytest.mark.parametrize(
    "garbage",
    [b"", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello"],
    ids=["silence", "plaintext", "truncated-hello"],
)
def test_stalled_or_garbage_handshake_is_closed(
    tls_run: tuple[Running, str], garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    run, _ = tls_run
    caplog.set_level(logging.WARNING)
    raw = socket.create_connection(("127.0.0.1", run.port), timeout=5)
    start = time.monotonic()
    raw.sendall(garbage)
    try:
        while raw.recv(4096):
            pass  # a TLS alert at most; never an HTTP answer
    except ConnectionResetError:
        pass
    took = time.monotonic() - start
    raw.close()
    assert took < 3.0, took  # 0.5 s handshake timeout, with slack for a busy machine
    assert connections(run) == 0
    # Nothing logged as an error, no traceback: a failed handshake is the client's problem.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
