"""``junction route --explain REQUEST.json``: the routing decision for one request, in words.

The request file is either a bare request body, or a captured request
(``{"target": "/v1/messages?beta=true", "headers": [[name, value], ...], "body": {...}}``).
The dialect comes from the capture's path, else from ``--dialect``. The decision is made by
the same code the data path runs (proxy/routing/decide.py) against a fresh runtime: no live
statistics, every deployment healthy, a custom router called as it would be.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from proxy.config.model import JunctionConfig
from proxy.errors import ProxyError
from proxy.filters.api import Dialect
from proxy.headers import Headers
from proxy.routing.decide import Decider
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.sessions import SessionUsage

MAX_REQUEST_FILE_BYTES = 64 * 1024 * 1024


class ExplainInputError(ValueError):
    """The request file cannot be read as a request."""


def read_request(raw: bytes, dialect: Dialect | None) -> tuple[dict[str, Any], Headers, Dialect]:
    """The body, headers and client dialect of a request file."""
    if len(raw) > MAX_REQUEST_FILE_BYTES:
        raise ExplainInputError(f"request file larger than {MAX_REQUEST_FILE_BYTES} bytes")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ExplainInputError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ExplainInputError("the request must be a JSON object")
    headers: Headers = []
    body: object = doc
    if isinstance(doc.get("body"), dict | str) and "headers" in doc:
        body = doc["body"]
        if isinstance(body, str):
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ExplainInputError(f"the capture's body is not JSON: {exc}") from None
        for pair in doc.get("headers") or []:
            if isinstance(pair, list) and len(pair) == 2:
                headers.append((str(pair[0]).lower().encode(), str(pair[1]).encode()))
        target = doc.get("target")
        if dialect is None and isinstance(target, str):
            dialect = Dialect.OPENAI if "/chat/completions" in target else Dialect.ANTHROPIC
    if not isinstance(body, dict):
        raise ExplainInputError("the request body must be a JSON object")
    return body, headers, dialect or Dialect.ANTHROPIC


def explain(
    config: JunctionConfig, body: dict[str, Any], headers: Headers, dialect: Dialect
) -> str:
    """The decision as text: facts, scenario, route, choice, fallbacks, rejections."""
    runtime = RuntimeConfig.from_config(config)
    decider = Decider(runtime, SessionUsage(clock=time.monotonic), time.monotonic)
    size = len(orjson.dumps(body))
    facts, rules = decider.prepare(body, headers, dialect, size, exact=True)
    lines = [
        f"request:   {dialect.value} dialect, model {facts.model!r}, ~{facts.tokens} input tokens,"
        f" max_tokens {facts.max_tokens}",
        f"           tools: {', '.join(facts.tools) or 'none'}; images: {_yn(facts.images)};"
        f" thinking: {_yn(facts.thinking)}; session: {facts.session_id or 'none'}",
        f"scenario:  {rules.scenario} ({rules.reason})",
    ]
    custom = decider.ask_custom(facts) if not runtime.custom_async else None
    if runtime.custom is not None:
        if runtime.custom_async:
            lines.append("custom:    router.custom is async: not called here")
        else:
            lines.append(f"custom:    {custom or 'no answer: the rules decide'}")
    try:
        decision = decider.decide(facts, rules, custom, body=body)
    except ProxyError as exc:
        lines.append(f"result:    HTTP {exc.status}: {exc.message}")
        return "\n".join(lines) + "\n"
    route = decision.route
    lines.append(
        f"route:     {route.name} ({route.strategy.value}"
        f"{', session affinity' if route.affinity else ''}): "
        + ", ".join(t.ref for t in route.targets)
    )
    ordered = decision.selection.ordered
    lines.append(f"chosen:    {_cand(ordered[0])}")
    for i, c in enumerate(ordered[1:], 1):
        lines.append(f"fallback {i}: {_cand(c)}")
    for c, reason in decision.selection.rejected:
        lines.append(f"rejected:  {_cand(c)}: {reason}")
    return "\n".join(lines) + "\n"


def _cand(c: Any) -> str:
    return (
        f"{c.ref} via {c.deployment.name} ({c.provider.dialect.value}, {c.deployment.origin.host})"
    )


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"
