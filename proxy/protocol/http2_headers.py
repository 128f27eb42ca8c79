"""Validation of HTTP/2 request header blocks, in one pass.

h2's own inbound validation is switched off in `proxy.protocol.http2`: it treats every
malformed request as a *connection* error (GOAWAY), which lets one bad request kill every
other stream on the connection, and its chain of generators costs ~24 µs a request. RFC 9113
§8.1.1 makes a malformed request a *stream* error, so the codec validates here and resets only
the offending stream. The rules are h2's (RFC 9113 §8.2, §8.3) made stricter where a request
is later forwarded over HTTP/1.1: header names must be lower-case RFC 9110 tokens without
underscores, values must hold no control characters, and the pseudo-headers that end up in a
request line (:method, :path, :authority) may hold no byte that could split it.

Content-Length syntax and its agreement with the DATA received stay with h2, which checks
both before any byte reaches us (a disagreement is a connection error there).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from proxy.errors import DownstreamProtocolError, RequestHeadersTooLargeError
from proxy.headers import Headers

# RFC 9110 token characters, lower-case only, without "_" (the HTTP/1.1 codec rejects
# underscores too: some upstreams treat "_" and "-" as the same character). Names are checked
# joined by "," (not a token character), one regex call per block instead of one per field.
_TOKEN = rb"[!#$%&'*+\-.^`|~0-9a-z]+"
_NAMES = re.compile(_TOKEN + rb"(?:," + _TOKEN + rb")*")
# Any control character but HTAB is refused in a value (RFC 9113 forbids NUL, CR and LF;
# the rest would be refused by the HTTP/1.1 upstream anyway). Checked on all values joined,
# with bytes.translate: three times faster than a regex character class.
_BAD_VALUE_BYTES = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# origin-form: visible ASCII only, so a :path can never split an HTTP/1.1 request line.
_PATH = re.compile(rb"/[\x21-\x7e]*")
# host [":" port] with IPv6 brackets and percent-encoding; no userinfo ("@"), no whitespace.
_AUTHORITY = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]+")

_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
# Regular names that need a closer look; everything else only goes through the joined checks.
# The empty name is here so that the main loop refuses it at no cost.
_SPECIAL = _CONNECTION_SPECIFIC | {b"host", b"content-length", b"cookie", b"te", b""}
_SCHEMES = frozenset({b"http", b"https"})

# Response side, shared by both HTTP/2 codecs. Defensive: the proxy strips hop-by-hop headers,
# but HTTP/2 forbids these outright (TE included, which a request may carry as "trailers").
RESPONSE_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)
# The codecs' own answers to requests the proxy never sees. One body that both dialects' SDKs
# understand: Anthropic reads error.type, OpenAI error.message.
LOCAL_REPLY_BODY = {
    413: b'{"type":"error","error":{"type":"request_too_large",'
    b'"message":"Request body exceeds the configured limit"}}',
    431: b'{"type":"error","error":{"type":"invalid_request_error",'
    b'"message":"Request headers exceed the configured limit"}}',
}
_WHITESPACE = frozenset({0x20, 0x09})


class MalformedRequestError(DownstreamProtocolError):
    """The header block breaks RFC 9113 §8: reset the stream with PROTOCOL_ERROR."""


def _check_fields(fields: Headers) -> None:
    """Names and values of regular fields, all at once (leading and trailing whitespace of
    values is checked by the callers' loops)."""
    if not fields:
        return
    if _NAMES.fullmatch(b",".join([f[0] for f in fields])) is None:
        raise MalformedRequestError("invalid header name")
    values = b"".join([f[1] for f in fields])
    if len(values.translate(None, _BAD_VALUE_BYTES)) != len(values):
        raise MalformedRequestError("control character in a header value")


def _padded(value: bytes) -> bool:
    return bool(value) and (value[0] in _WHITESPACE or value[-1] in _WHITESPACE)


def parse_request_headers(
    block: Iterable[tuple[bytes, bytes]], max_count: int
) -> tuple[bytes, bytes, bytes, Headers, int | None]:
    """Return (method, path, authority, regular headers, content-length) of a request.

    Raises MalformedRequestError (reset with PROTOCOL_ERROR) or RequestHeadersTooLargeError
    (more than ``max_count`` regular headers: answer 431).
    """
    method = path = scheme = authority = host = None
    headers: Headers = []
    cookie_at = -1
    content_length: int | None = None
    for field in block:
        name = field[0]
        if name[:1] == b":":
            if headers:
                raise MalformedRequestError("pseudo-header after a regular header")
            value = field[1]
            if name == b":method":
                if method is not None:
                    raise MalformedRequestError("duplicate :method")
                method = value
            elif name == b":path":
                if path is not None:
                    raise MalformedRequestError("duplicate :path")
                path = value
            elif name == b":scheme":
                if scheme is not None:
                    raise MalformedRequestError("duplicate :scheme")
                scheme = value
            elif name == b":authority":
                if authority is not None:
                    raise MalformedRequestError("duplicate :authority")
                authority = value
            else:
                raise MalformedRequestError(f"pseudo-header {name[:32]!r} not allowed")
            continue
        value = field[1]
        if value and (value[0] in _WHITESPACE or value[-1] in _WHITESPACE):
            raise MalformedRequestError(f"whitespace around the value of {name[:64]!r}")
        if name in _SPECIAL:
            if not name:
                raise MalformedRequestError("empty header name")
            if name in _CONNECTION_SPECIFIC:
                raise MalformedRequestError(f"connection-specific header {name!r}")
            if name == b"host":
                if host is not None:
                    raise MalformedRequestError("duplicate host")
                host = value
            elif name == b"content-length":
                # h2 has already checked the syntax and that repeated values agree.
                content_length = int(value)
            elif name == b"te":
                if value.lower() != b"trailers":
                    raise MalformedRequestError("te other than trailers")
            elif cookie_at >= 0:
                # RFC 9113 §8.2.3: cookie crumbs split over several fields are joined
                # before the request can travel as HTTP/1.1.
                headers[cookie_at] = (b"cookie", headers[cookie_at][1] + b"; " + value)
                continue
            else:
                cookie_at = len(headers)
        headers.append(field)
    if len(headers) > max_count:
        raise RequestHeadersTooLargeError(f"more than {max_count} request headers")
    _check_fields(headers)

    if method is None or scheme is None or path is None:
        # This also refuses CONNECT, which carries neither :scheme nor :path: the gateway
        # serves no tunnels.
        raise MalformedRequestError("missing :method, :scheme or :path")
    if _METHOD.fullmatch(method) is None:
        raise MalformedRequestError("invalid :method")
    if scheme not in _SCHEMES:
        raise MalformedRequestError("invalid :scheme")
    if _PATH.fullmatch(path) is None and not (path == b"*" and method == b"OPTIONS"):
        raise MalformedRequestError("invalid :path")
    if authority is not None:
        if _AUTHORITY.fullmatch(authority) is None:
            raise MalformedRequestError("invalid :authority")
        if host is not None and host != authority:
            raise MalformedRequestError(":authority and host disagree")
    elif host is not None:
        if _AUTHORITY.fullmatch(host) is None:
            raise MalformedRequestError("invalid host")
        authority = host
    return method, path, authority or b"", headers, content_length


def check_trailers(block: Iterable[tuple[bytes, bytes]], max_count: int) -> None:
    """Trailers are dropped, but a malformed trailer block still resets the stream."""
    fields = list(block)
    if len(fields) > max_count:
        raise MalformedRequestError(f"more than {max_count} trailers")
    for f in fields:
        name = f[0]
        if name[:1] == b":":
            raise MalformedRequestError("pseudo-header in trailers")
        if name in _CONNECTION_SPECIFIC or name == b"te":
            raise MalformedRequestError(f"connection-specific trailer {name!r}")
        if _padded(f[1]):
            raise MalformedRequestError("whitespace around a trailer value")
    _check_fields(fields)
