"""Error bodies in each client's dialect.

Anthropic: ``{"type":"error","error":{"type":T,"message":M}}``.
OpenAI: ``{"error":{"message":M,"type":T,"param":null,"code":C}}``.
The neutral ``kind`` names used inside the proxy are Anthropic's type names; the OpenAI side
maps them (protocol.md §6.1).
"""

from __future__ import annotations

import orjson

from proxy.filters.api import Dialect

_KIND_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Anthropic kind -> (OpenAI type, OpenAI code)
_OPENAI_TYPE: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "permission_error": ("permission_error", None),
    "not_found_error": ("invalid_request_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("server_error", "timeout"),
}


def kind_for_status(status: int) -> str:
    if status in _KIND_BY_STATUS:
        return _KIND_BY_STATUS[status]
    return "invalid_request_error" if status < 500 else "api_error"


def client_status(status: int, dialect: Dialect) -> int:
    """OpenAI clients do not know 529: they get 503 (both retry it)."""
    if status == 529 and dialect is Dialect.OPENAI:
        return 503
    return status


def error_body(dialect: Dialect, kind: str, message: str) -> bytes:
    if dialect is Dialect.ANTHROPIC:
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    etype, code = _OPENAI_TYPE.get(kind, ("server_error", None))
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})


def in_band_error_event(dialect: Dialect, kind: str, message: str) -> bytes:
    """The SSE event that ends a stream which already started (never a fake stop)."""
    body = error_body(dialect, kind, message)
    if dialect is Dialect.ANTHROPIC:
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"
