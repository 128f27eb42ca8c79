"""The transformer contract.

A transformer rewrites what goes to one provider and what comes back, always in the
*provider's* dialect: requests after translation from the client's dialect, responses before
translation back. A chain runs requests in configured order and responses in reverse order.

Stream hooks receive one parsed stream object at a time (an OpenAI chunk, or an Anthropic
event's data with its ``type``) and return zero or more objects, so a transformer can hold
pieces back (e.g. to repair tool arguments) and release them later, at the latest in
``stream_end``. Hooks are synchronous and must not do I/O.

One transformer instance serves every request of its provider: per-request state goes in
``ctx.state``. Request hooks must not change the body they receive (with fallbacks the same
client body goes to several providers); they return a changed copy. Response and stream
objects are the chain's own, so hooks may change those in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.filters.api import Dialect

JSONObject = dict[str, Any]


@dataclass(slots=True)
class TransformContext:
    """What a transformer may know about the exchange. One per request (hooks may keep state
    in ``state``, keyed by their own name, which lives as long as the request)."""

    provider: str
    dialect: Dialect  # the provider's dialect: the shape of every object the hooks see
    model: str  # the model sent to the provider
    client_dialect: Dialect
    stream: bool
    state: dict[str, Any] = field(default_factory=dict)


class Transformer(Protocol):
    name: str

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject: ...

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject: ...

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]: ...

    def stream_end(self, ctx: TransformContext) -> list[JSONObject]: ...


class BaseTransformer:
    """Identity hooks, so a transformer overrides only what it changes."""

    name = "base"
    # The provider dialects this transformer understands; config rejects it on another one.
    dialects: frozenset[Dialect] = frozenset(Dialect)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        return body

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        return [obj]

    def stream_end(self, ctx: TransformContext) -> list[JSONObject]:
        return []
