"""Checks of an HTTP/1.1 request head that both server codecs share, and the head template.

The library of each codec parses the header lines; what the lines mean for framing (request
line, Host, Content-Length, Transfer-Encoding, Connection, Expect) is decided here, with one
set of rules, so both codecs give the same verdicts.

`HeadTemplate` keeps the last head that passed every check. A keep-alive client repeats its
head byte for byte, the body length aside; the receive core matches the next head against the
template and skips parsing it when only the Content-Length digits differ.
"""

from __future__ import annotations

import re
from typing import Final

from proxy.errors import DownstreamProtocolError
from proxy.headers import Headers

_HTTP11: Final = b"HTTP/1.1"
_HTTP10: Final = b"HTTP/1.0"
_VERSION_SHAPE: Final = re.compile(rb"HTTP/[0-9]\.[0-9]")
# Methods an LLM API gateway serves. CONNECT and TRACE belong to forward proxies and debugging.
_METHODS: Final = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
FRAMING_HEADERS: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
)
MAX_TEMPLATE_HEAD_BYTES: Final = 8192  # a longer head is not kept as a template

# What a checked head tells: method, target, host, plain, http10, close, keep_alive, expect.
HeadFields = tuple[bytes, bytes, bytes, bool, bool, bool, bool, bool]
# What its framing headers tell: host, close, keep_alive, expect, chunked, Content-Length digits.
Framing = tuple[bytes, bool, bool, bool, bool, bytes | None]


def bad_request(message: str, status: int = 400) -> DownstreamProtocolError:
    return DownstreamProtocolError(message, status=status)


def underscore_error() -> DownstreamProtocolError:
    # Some upstreams treat "_" and "-" alike, so x_api_key could smuggle a second x-api-key.
    return bad_request("underscore in header name")


def check_request_line(line: bytes) -> tuple[bytes, bytes, bool]:
    """Method, target and whether the version is HTTP/1.0; raise on anything else."""
    try:
        method, target, version = line.split(b" ")
    except ValueError:
        raise bad_request("malformed request line") from None
    if version == _HTTP11:
        http10 = False
    elif version == _HTTP10:
        http10 = True
    elif _VERSION_SHAPE.fullmatch(version):
        raise bad_request("unsupported HTTP version", 505)
    else:
        raise bad_request("malformed HTTP version")
    if method not in _METHODS:
        if method.isalpha() and method.isupper():
            raise bad_request("method not implemented", 501)
        raise bad_request("malformed method")
    if not target.startswith(b"/") and not (target == b"*" and method == b"OPTIONS"):
        # absolute-form and authority-form are for forward proxies; we are not one
        raise bad_request("request target must be origin-form")
    return method, target, http10


def check_framing(framing: Headers, http10: bool) -> Framing:
    """Interpret the framing headers, in the order they came; raise on what is refused."""
    host: bytes | None = None
    length: bytes | None = None
    chunked = False
    close = False
    keep_alive = False
    expect = False
    for name, value in framing:
        if name == b"host":
            if host is not None:
                raise bad_request("duplicate Host header")
            host = value
        elif name == b"content-length":
            if length is not None:
                raise bad_request("duplicate Content-Length header")
            if not value.isdigit() or len(value) > 19:  # 19 digits fit in 63 bits
                raise bad_request("invalid Content-Length")
            length = value
        elif name == b"transfer-encoding":
            if chunked or value.lower() != b"chunked":
                raise bad_request("unsupported Transfer-Encoding")
            chunked = True
        elif name == b"connection":
            for token in value.lower().split(b","):
                token = token.strip(b" \t")
                if token == b"close":
                    close = True
                elif token == b"keep-alive":
                    keep_alive = True
        else:  # expect
            expect = value.lower() == b"100-continue"
    if host is None:
        if not http10:
            raise bad_request("missing Host header")
        host = b""
    if chunked:
        if length is not None:
            raise bad_request("both Content-Length and Transfer-Encoding")
        if http10:
            raise bad_request("Transfer-Encoding in an HTTP/1.0 request")
    return host, close, keep_alive, expect, chunked, length


class HeadTemplate:
    """The last head that passed every check, split around its Content-Length digits.

    A head equal to ``before + digits + after`` (to ``before`` alone when there was no
    Content-Length) differs from the checked one in ASCII digits only. Digits cannot end a
    line or change how any line parses, so the new head gets the checked head's results and
    its own length, which gets the checks of any Content-Length value. Chunked heads are
    never kept.
    """

    __slots__ = (
        "after",
        "after_size",
        "before",
        "fields",
        "headers",
        "length_index",
        "size",
    )

    def __init__(
        self, before: bytes, after: bytes, headers: Headers, length_index: int, fields: HeadFields
    ) -> None:
        self.before = before
        self.size = len(before)
        self.after = after
        self.after_size = len(after)
        self.headers = headers  # a private copy: an event's list goes to code that may edit it
        self.length_index = length_index  # of the Content-Length pair in headers, or -1
        self.fields = fields

    @classmethod
    def of(
        cls, head: bytes, headers: Headers, fields: HeadFields, length: bytes | None
    ) -> HeadTemplate | None:
        if len(head) > MAX_TEMPLATE_HEAD_BYTES:
            return None
        if length is None:
            return cls(head, b"", list(headers), -1, fields)
        # The one Content-Length line (a second is an error): its value follows the colon and
        # any whitespace. Values hold no CR or LF, so CRLF + name can only start a line.
        line = head.lower().find(b"\r\ncontent-length:")
        if line < 0:  # pragma: no cover - the head had a Content-Length header
            return None
        start = line + 17
        while head[start] in (32, 9):
            start += 1
        end = start + len(length)
        if head[start:end] != length:  # pragma: no cover - both libraries report it as sent
            return None
        index = headers.index((b"content-length", length))
        return cls(head[:start], head[end:], list(headers), index, fields)
