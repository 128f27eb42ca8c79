"""Cleartext protocol sniffing."""

from __future__ import annotations

from proxy.protocol.detect import H2_PREFACE, detect_protocol


def test_full_preface_is_h2() -> None:
    assert detect_protocol(H2_PREFACE) == "h2"
    assert detect_protocol(H2_PREFACE + b"\x00\x00\x12\x04") == "h2"


def test_every_proper_prefix_needs_more() -> None:
    for i in range(len(H2_PREFACE)):
        assert detect_protocol(H2_PREFACE[:i]) is None


def test_anything_else_is_http1() -> None:
    assert detect_protocol(b"G") == "http/1.1"
    assert detect_protocol(b"GET / HTTP/1.1\r\n") == "http/1.1"
    assert detect_protocol(b"PRI * HTTP/1.1\r\n") == "http/1.1"
    assert detect_protocol(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n") == "http/1.1"
