"""Header lists and the helpers every layer shares.

Headers travel as a list of ``(name, value)`` byte pairs with lower-case names, the shape
httptools, h11 and h2 all produce cheaply. Order and duplicates are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

# RFC 9110 hop-by-hop headers, plus those HTTP/2 forbids. Never forwarded in either direction.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
    }
)

# A header value we *generate* must be visible ASCII, space or tab (no CR, LF, NUL).
_SAFE_VALUE = re.compile(rb"^[\x20-\x7e\t]*$")


def get(headers: Headers, name: bytes) -> bytes | None:
    """First value of ``name`` (lower-case), or None."""
    for k, v in headers:
        if k == name:
            return v
    return None


def get_all(headers: Headers, name: bytes) -> list[bytes]:
    return [v for k, v in headers if k == name]


def connection_tokens(headers: Headers) -> set[bytes]:
    """Lower-cased tokens of every Connection header."""
    tokens: set[bytes] = set()
    for k, v in headers:
        if k == b"connection":
            for tok in v.split(b","):
                tok = tok.strip().lower()
                if tok:
                    tokens.add(tok)
    return tokens


def strip_hop_by_hop(headers: Headers, protected: Iterable[bytes] = ()) -> Headers:
    """Drop hop-by-hop headers and those a Connection header names.

    Names in ``protected`` survive even when Connection names them, so a client cannot make
    the proxy drop, say, an auth header by listing it in Connection.
    """
    named = connection_tokens(headers) - set(protected)
    return [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in named]


def is_safe_value(value: bytes) -> bool:
    return _SAFE_VALUE.match(value) is not None
