"""Where the load generator may send (loopback only) and the request bytes it sends."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

_LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class TargetError(ValueError):
    """The URL is malformed or does not point at this machine's loopback interface."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str  # an IP literal to connect to
    port: int
    path: bytes  # path and query, as sent on the request line
    authority: bytes  # Host header value


def loopback_target(url: str) -> Target:
    """Parse `url` and refuse anything that is not plain HTTP to a loopback address.

    A load generator aimed at a remote host by mistake is a denial-of-service tool, so names
    other than localhost are refused rather than resolved.
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise TargetError(f"only http:// URLs are supported, got {url!r}")
    host = parts.hostname
    if not host:
        raise TargetError(f"no host in {url!r}")
    if host.lower() in _LOCALHOST_NAMES:
        ip = "127.0.0.1"
    else:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise TargetError(f"refusing non-loopback host {host!r}: use 127.0.0.1") from None
        if not addr.is_loopback:
            raise TargetError(f"refusing non-loopback host {host!r}: use 127.0.0.1")
        ip = str(addr)
    try:
        port = parts.port or 80
    except ValueError:
        raise TargetError(f"bad port in {url!r}") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    netloc_host = f"[{ip}]" if ":" in ip else host
    return Target(ip, port, path.encode("ascii"), f"{netloc_host}:{port}".encode("ascii"))


def parse_header(line: str) -> tuple[str, str]:
    """'name: value' as given on the command line."""
    name, sep, value = line.partition(":")
    name = name.strip()
    if not sep or not name or any(c in line for c in "\r\n\0"):
        raise TargetError(f"bad header {line!r}: expected 'name: value'")
    return name, value.strip()


def build_request(
    method: str, target: Target, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    """The whole HTTP/1.1 request, built once and written as-is for every send."""
    if not method.isalpha() or not method.isupper():
        raise TargetError(f"bad method {method!r}")
    lines = [f"{method} ".encode("ascii") + target.path + b" HTTP/1.1"]
    names = {name.lower() for name, _ in headers}
    if "host" not in names:
        lines.append(b"Host: " + target.authority)
    for name, value in headers:
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue  # the generator owns framing and keep-alive
        lines.append(f"{name}: {value}".encode("latin-1"))
    if body or method not in ("GET", "HEAD"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
