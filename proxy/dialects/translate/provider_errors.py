"""Read a provider's error response into the proxy's neutral (kind, message).

How it works: parse the body if it is small enough, look for either dialect's error object
(providers behind an "OpenAI-compatible" banner send all sorts: ``{"error": {...}}``,
``{"error": "text"}``, ``{"message": ...}``, ``{"detail": ...}``), then pick the kind from the
most specific signal: the OpenAI ``code``, then the ``type``, then the HTTP status. Kinds are the
Anthropic error type names that proxy/dialects/errors.py renders for either client dialect.

It never raises: a body that is empty, not JSON, HTML or too large yields
``provider returned HTTP <status>`` plus a short excerpt with control characters removed.
"""

from __future__ import annotations

import re

import orjson

from proxy.dialects.errors import kind_for_status
from proxy.filters.api import Dialect

MAX_PARSED_ERROR_BODY_BYTES = 64 * 1024  # larger error bodies are not parsed, only excerpted
MAX_EXCERPT_CHARS = 200  # of an unparseable body
MAX_MESSAGE_CHARS = 1000  # of a message taken from a parsed body

KNOWN_KINDS = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
    }
)

# OpenAI (and compatible servers') error codes that say more than the status does.
_KIND_BY_CODE: dict[str, str] = {
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "billing_hard_limit_reached": "billing_error",
    "invalid_api_key": "authentication_error",
    "invalid_authentication": "authentication_error",
    "model_not_found": "not_found_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
    "request_too_large": "request_too_large",
    "context_length_exceeded": "invalid_request_error",
}

# OpenAI error types, and the names some compatible servers use, that map without the status.
_KIND_BY_TYPE: dict[str, str] = {
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "overloaded_error": "overloaded_error",
    "timeout_error": "timeout_error",
    "billing_error": "billing_error",
    "request_too_large": "request_too_large",
}

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def read_provider_error(dialect: Dialect, status: int, body: bytes) -> tuple[str, str]:
    """(kind, message) for a provider's error response with HTTP ``status`` and ``body``."""
    fallback_kind = kind_for_status(status) if status >= 400 else "api_error"
    parsed: object = None
    if body and len(body) <= MAX_PARSED_ERROR_BODY_BYTES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
    if isinstance(parsed, dict):
        etype, code, message = _fields(parsed)
        if dialect is Dialect.ANTHROPIC and etype in KNOWN_KINDS:
            kind = etype
        else:
            kind = _kind(etype, code, status, fallback_kind)
        if message:
            return kind, _clean(message, MAX_MESSAGE_CHARS)
        return kind, f"provider returned HTTP {status}"
    excerpt = _clean(body[: MAX_EXCERPT_CHARS * 4].decode("utf-8", "replace"), MAX_EXCERPT_CHARS)
    if excerpt:
        return fallback_kind, f"provider returned HTTP {status}: {excerpt}"
    return fallback_kind, f"provider returned HTTP {status}"


def _fields(parsed: dict[str, object]) -> tuple[str | None, str | None, str]:
    """(type, code, message) from either dialect's error body or a look-alike."""
    error = parsed.get("error")
    source = error if isinstance(error, dict) else parsed
    etype, code = source.get("type"), source.get("code")
    if etype == "error" and source is parsed:
        etype = None  # Anthropic's envelope type, not the error's
    message = source.get("message")
    if not isinstance(message, str):
        message = error if isinstance(error, str) else parsed.get("detail")
    return (
        etype if isinstance(etype, str) else None,
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else "",
    )


def _kind(etype: str | None, code: str | None, status: int, fallback: str) -> str:
    kind = _KIND_BY_CODE.get(code or "") or _KIND_BY_TYPE.get(etype or "")
    if kind:
        return kind
    # Generic types (invalid_request_error, server_error, api_error): the status says more,
    # e.g. 503 server_error is an overload and 404 invalid_request_error a missing model.
    return fallback


def _clean(text: str, limit: int) -> str:
    text = text[: limit * 2]  # bound the regex work before collapsing control characters
    return _CONTROL_CHARS.sub(" ", text).strip()[:limit]
