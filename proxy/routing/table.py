"""The route table: which handler serves a request path. Pure functions, no I/O.

Routes match on the path alone (Claude Code calls ``POST /v1/messages?beta=true``). The path
is normalised first (dot segments resolved, repeated slashes merged, percent-encoded dots and
slashes rejected) so that ``/v1/messages/../admin`` cannot reach what ``/admin`` would.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from proxy.filters.api import Dialect
from proxy.headers import Headers


class RouteKind(enum.Enum):
    PROXY = "proxy"  # forwarded to a provider
    MODELS = "models"  # answered locally from the config
    ROOT = "root"  # HEAD / and GET /: Claude Code's connectivity probe


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    kind: RouteKind
    methods: frozenset[bytes]
    dialect: Dialect | None  # None: decided by the client's headers


_ROUTES: dict[str, Route] = {
    "/v1/messages": Route("messages", RouteKind.PROXY, frozenset({b"POST"}), Dialect.ANTHROPIC),
    "/v1/messages/count_tokens": Route(
        "count_tokens", RouteKind.PROXY, frozenset({b"POST"}), Dialect.ANTHROPIC
    ),
    "/v1/chat/completions": Route(
        "chat_completions", RouteKind.PROXY, frozenset({b"POST"}), Dialect.OPENAI
    ),
    "/v1/models": Route("models", RouteKind.MODELS, frozenset({b"GET", b"HEAD"}), None),
    "/": Route("root", RouteKind.ROOT, frozenset({b"GET", b"HEAD"}), None),
}


class BadPathError(ValueError):
    pass


def normalize_path(target: bytes) -> str:
    """The path part of a request target, normalised. Raises BadPathError."""
    q = target.find(b"?")
    raw = target if q < 0 else target[:q]
    if not raw.startswith(b"/"):
        raise BadPathError("request target must be an absolute path")
    if raw.find(b"%") >= 0:
        low = raw.lower()
        if b"%2e" in low or b"%2f" in low or b"%5c" in low or b"%00" in low:
            raise BadPathError("encoded dots or slashes are not allowed in the path")
    try:
        path = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadPathError("path must be ASCII") from exc
    if "//" not in path and "/." not in path:
        return path
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "/" + "/".join(out)


def match(path: str) -> Route | None:
    return _ROUTES.get(path)


def dialect_from_headers(headers: Headers) -> Dialect:
    """The dialect of a client on a shared or unknown path: Anthropic SDKs always send
    ``anthropic-version``; everything else is treated as an OpenAI client."""
    for k, _ in headers:
        if k == b"anthropic-version":
            return Dialect.ANTHROPIC
    return Dialect.OPENAI
