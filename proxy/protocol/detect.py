"""Cleartext protocol sniffing: HTTP/2 prior knowledge starts with a fixed 24-byte preface."""

from __future__ import annotations

from typing import Final, Literal

H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def detect_protocol(prefix: bytes) -> Literal["h2", "http/1.1"] | None:
    """ "h2" for the HTTP/2 preface, None while ``prefix`` could still become it, else HTTP/1.1."""
    if len(prefix) >= len(H2_PREFACE):
        return "h2" if prefix.startswith(H2_PREFACE) else "http/1.1"
    return None if H2_PREFACE.startswith(prefix) else "http/1.1"
