"""Downstream API keys: who is calling, checked at the request's headers.

How this works: `AuthPolicy` is built once per config load from ``auth:``. It keeps the
SHA-256 digest of every key, never the key. `AuthFilter`, first on the proxy routes and on
``/v1/models``, reads the credentials a client presents — ``x-api-key`` (Anthropic SDKs,
Claude Code with ANTHROPIC_API_KEY) and ``Authorization: Bearer`` (OpenAI SDKs, Claude Code
with ANTHROPIC_AUTH_TOKEN) — hashes each and compares the digest with every configured one
through ``hmac.compare_digest``, always all of them: neither the comparison nor the loop stops
early, so the time taken does not tell which key, or how much of one, matched. Comparing
fixed-length digests also hides the configured keys' lengths.

A match records the key's name on the stream (the access log's ``key`` field; the key itself
is never logged, and the router drops both headers before forwarding). No valid key: 401
``authentication_error`` in the client's dialect when keys are required; otherwise the request
goes on as anonymous (agents always send some key, so an unknown one means anonymous too).
Rejecting here, before the body filter, means an unauthenticated client never makes Junction
buffer or parse a request body.

The per-key model allow-list needs the parsed body and is checked by the limit filter
(proxy/filters/limit.py) with `ApiKey.allows`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from proxy.config.auth import AuthConfig
from proxy.filters.api import DataStatus, DecoderFilter, FilterCallbacks, HeadersStatus
from proxy.headers import Headers

MISSING_KEY_MESSAGE: Final = "missing API key: send it in x-api-key or Authorization: Bearer"
INVALID_KEY_MESSAGE: Final = "invalid API key"
_BEARER = b"bearer "


class AllowRule(NamedTuple):
    """One allow-list entry: ``model`` or ``provider,model``, ``*`` matching any run."""

    provider: re.Pattern[str] | None
    model: re.Pattern[str]


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def allow_rule(entry: str) -> AllowRule:
    provider, comma, model = entry.partition(",")
    if comma:
        return AllowRule(_glob(provider.strip()), _glob(model.strip()))
    return AllowRule(None, _glob(entry.strip()))


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: bytes = field(repr=False)
    allowed: tuple[AllowRule, ...]  # empty: every model

    def allows(self, requested: str, target: tuple[str, str] | None) -> bool:
        """Whether this key may use ``requested`` (the name as the client wrote it), expected
        to be served as ``target`` (provider, model); None when it names no provider.

        A ``model`` entry matches the name as written (an alias, say) or the model it is
        served as; a ``provider,model`` entry matches where it is served."""
        if not self.allowed:
            return True
        for rule in self.allowed:
            if rule.provider is None:
                if rule.model.match(requested) or (
                    target is not None and rule.model.match(target[1])
                ):
                    return True
            elif (
                target is not None
                and rule.provider.match(target[0])
                and rule.model.match(target[1])
            ):
                return True
        return False


class AuthPolicy:
    __slots__ = ("_by_name", "_digests", "_keys", "required")

    def __init__(self, keys: tuple[ApiKey, ...] = (), required: bool = False) -> None:
        self._keys = keys
        self._digests = tuple(k.digest for k in keys)
        self._by_name = {k.name: k for k in keys}
        self.required = required

    @classmethod
    def from_config(cls, cfg: AuthConfig) -> AuthPolicy:
        keys = tuple(
            ApiKey(
                name=entry.name,
                digest=_digest(entry.key.get_secret_value().encode("ascii")),
                allowed=tuple(allow_rule(m) for m in entry.models),
            )
            for entry in cfg.keys
        )
        return cls(keys, cfg.required)

    @property
    def enabled(self) -> bool:
        """Whether requests are checked at all (keys are configured)."""
        return bool(self._keys)

    @property
    def restricts_models(self) -> bool:
        """Whether some key has a model allow-list."""
        return any(k.allowed for k in self._keys)

    def key(self, name: str) -> ApiKey | None:
        return self._by_name.get(name)

    def identify(self, presented: bytes) -> ApiKey | None:
        """The configured key equal to ``presented``, in constant time over all keys."""
        digest = _digest(presented)
        found = -1
        for index, known in enumerate(self._digests):
            # No break: every digest is compared whatever matched before.
            if hmac.compare_digest(digest, known):
                found = index
        return self._keys[found] if found >= 0 else None


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def presented_keys(headers: Headers) -> list[bytes]:
    """The credentials in ``x-api-key`` and ``Authorization: Bearer`` (names lower-case),
    ``x-api-key`` first whatever the header order: when a client sends both and they name two
    different configured keys, the request counts as ``x-api-key``'s (docs/security.md)."""
    found: list[bytes] = []
    bearer: list[bytes] = []
    for name, value in headers:
        if name == b"x-api-key":
            value = value.strip()
            if value:
                found.append(value)
        elif name == b"authorization" and value[:7].lower() == _BEARER:
            token = value[7:].strip()
            if token:
                bearer.append(token)
    found.extend(bearer)
    return found


def auth_filters(policy: AuthPolicy) -> list[DecoderFilter]:
    """The filters a route starts with: `AuthFilter` when keys are configured, else none."""
    return [AuthFilter(policy)] if policy.enabled else []


class AuthFilter:
    __slots__ = ("_cb", "_policy")

    def __init__(self, policy: AuthPolicy) -> None:
        self._policy = policy

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        policy = self._policy
        presented = presented_keys(headers)
        for credential in presented:
            key = policy.identify(credential)
            if key is not None:
                self._cb.info.api_key_name = key.name
                return HeadersStatus.CONTINUE
        if not policy.required:
            return HeadersStatus.CONTINUE  # anonymous: only rate_limits apply
        message = INVALID_KEY_MESSAGE if presented else MISSING_KEY_MESSAGE
        self._cb.send_local_reply(401, message, kind="authentication_error")
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        pass
