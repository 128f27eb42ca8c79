"""The cache key: what determines an answer, in a canonical form, hashed. Pure.

The key is the SHA-256 of one orjson document (sorted keys, so the order in which a client
writes its fields does not matter) holding, in this order:

1. `KEY_VERSION` (bumped when this layout changes, so old entries are simply never read);
2. the client's dialect and the API path (without the query string);
3. the tenant: the downstream API key's configured name ("" without keys);
4. the routing fingerprint: a hash of the config that decides where a request goes and how it
   is translated (router, providers without their keys and endpoints, custom filters), so a
   route change makes new keys instead of serving another provider's answer;
5. the request headers that change the answer: ``anthropic-version`` and ``anthropic-beta``;
6. the request body without `VOLATILE_FIELDS` and with every ``cache_control`` member removed
   wherever it appears (system blocks, messages, content blocks, tools).

Everything else in the body is part of the key: the model the client asked for, system,
messages, tools, tool_choice, temperature, top_p, top_k, max_tokens, stop sequences,
thinking and reasoning options, response_format, n, seed, and any field this list does not
know about (an unknown field may change the answer, so it splits the key rather than being
ignored).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

KEY_VERSION: Final = 1
# Fields that never change the answer: how it is delivered (stream, stream_options), who the
# end user is (metadata.user_id, user, safety_identifier), provider-side bookkeeping (store,
# prompt_cache_key, service_tier) and client request ids.
VOLATILE_FIELDS: Final = frozenset(
    {
        "stream",
        "stream_options",
        "metadata",
        "user",
        "safety_identifier",
        "store",
        "prompt_cache_key",
        "service_tier",
        "request_id",
    }
)
KEY_HEADERS: Final = (b"anthropic-version", b"anthropic-beta")
_CACHE_CONTROL: Final = b'"cache_control"'


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def canonical_body(body: dict[str, Any]) -> bytes:
    """The body's part of the key: sorted, volatile fields and cache_control markers out."""
    kept = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    out = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)
    if _CACHE_CONTROL not in out:
        return out
    # A marker (or a string holding those bytes): rebuild without markers. Measured faster
    # than cutting the markers out of the serialised bytes.
    return orjson.dumps(_without_cache_control(kept), option=orjson.OPT_SORT_KEYS)


def cache_key(
    *,
    dialect: str,
    path: str,
    tenant: str,
    fingerprint: str,
    headers: list[tuple[bytes, bytes]],
    body: dict[str, Any],
) -> str:
    """The hex SHA-256 key of one request."""
    picked = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers if k in KEY_HEADERS]
    picked.sort()
    head = orjson.dumps([KEY_VERSION, dialect, path, tenant, fingerprint, picked])
    h = hashlib.sha256(head)
    h.update(b"\n")
    h.update(canonical_body(body))
    return h.hexdigest()


def routing_fingerprint(parts: dict[str, Any]) -> str:
    """A short stable hash of the routing config given as plain JSON data."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
