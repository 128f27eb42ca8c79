"""Transformers that adjust request parameters: token limits, sampling, extra params,
stream options, cache markers. Each is stateless and touches requests only."""

from __future__ import annotations

import copy
import math
from typing import Any

from proxy.dialects.transformers.api import BaseTransformer, JSONObject, TransformContext
from proxy.dialects.transformers.common import (
    BOTH_DIALECTS,
    OPENAI_ONLY,
    drop_keys,
    is_number,
    positive_int,
    without_key,
)
from proxy.filters.api import Dialect

# Where a key named cache_control is a property name of a JSON schema, not a cache marker.
SCHEMA_KEYS = frozenset({"input_schema", "parameters", "schema"})
_TOKEN_LIMIT_KEYS = ("max_tokens", "max_completion_tokens")


class MaxTokenTransformer(BaseTransformer):
    """``["maxtoken", {"max_tokens": N}]``: no request asks for more than N output tokens.

    ``max_tokens`` (and ``max_completion_tokens``) above N become N; smaller values stay. A
    request without a limit gets N when the provider requires one (Anthropic dialect); an
    OpenAI-dialect request without one is left to the provider's default."""

    name = "maxtoken"
    dialects = BOTH_DIALECTS

    def __init__(self, *, max_tokens: int) -> None:
        self.max_tokens = positive_int("max_tokens", max_tokens)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        changes: dict[str, Any] = {}
        for key in _TOKEN_LIMIT_KEYS:
            value = body.get(key)
            if is_number(value) and value > self.max_tokens:
                changes[key] = self.max_tokens
        if ctx.dialect is Dialect.ANTHROPIC and "max_tokens" not in body:
            changes["max_tokens"] = self.max_tokens
        return {**body, **changes} if changes else body


class MaxCompletionTokensTransformer(BaseTransformer):
    """``maxcompletiontokens``: ``max_tokens`` is sent as ``max_completion_tokens``, which
    o-series and gpt-5 style models require (they reject ``max_tokens``). When both are
    present the smaller wins."""

    name = "maxcompletiontokens"
    dialects = OPENAI_ONLY

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        if "max_tokens" not in body:
            return body
        out = drop_keys(body, ("max_tokens",))
        legacy, current = body["max_tokens"], body.get("max_completion_tokens")
        if current is None or (is_number(legacy) and is_number(current) and legacy < current):
            out["max_completion_tokens"] = legacy
        return out


SAMPLING_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "seed",
    }
)


class SamplingTransformer(BaseTransformer):
    """``["sampling", {"temperature": 0.6, "top_p": null}]``: each option sets (overrides)
    that sampling parameter; ``null`` removes it from the request (reasoning models that
    reject ``temperature``). Accepted names: see `SAMPLING_PARAMS`."""

    name = "sampling"
    dialects = BOTH_DIALECTS

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - SAMPLING_PARAMS)
        if unknown:
            raise ValueError(
                f"unknown option {unknown[0]!r} (options: {', '.join(sorted(SAMPLING_PARAMS))})"
            )
        for key, value in params.items():
            if value is not None and not is_number(value):
                raise ValueError(f"option {key!r} must be a number or null (got {value!r})")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"option {key!r} must be finite (got {value!r})")
        self.set = {key: value for key, value in params.items() if value is not None}
        self.remove = tuple(key for key, value in params.items() if value is None)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        out = drop_keys(body, self.remove)
        return {**out, **self.set} if self.set else out


class CustomParamsTransformer(BaseTransformer):
    """``["customparams", {...}]``: the options are merged into every request. Mappings merge
    key by key (``{"extra_body": {"a": 1}}`` keeps the request's other ``extra_body`` keys),
    anything else replaces, and ``null`` removes the key."""

    name = "customparams"
    dialects = BOTH_DIALECTS

    def __init__(self, **params: Any) -> None:
        self.params = params

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        return merge_params(body, self.params) if self.params else body


class StreamOptionsTransformer(BaseTransformer):
    """``streamoptions``: a streaming request asks for usage (``stream_options.include_usage``);
    without it OpenAI-compatible servers report no tokens at all. A non-streaming request
    loses ``stream_options``, which OpenAI rejects there."""

    name = "streamoptions"
    dialects = OPENAI_ONLY

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        if body.get("stream") is not True:
            return drop_keys(body, ("stream_options",))
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        if options.get("include_usage") is True:
            return body
        return {**body, "stream_options": {**options, "include_usage": True}}


class CleanCacheTransformer(BaseTransformer):
    """``cleancache``: every ``cache_control`` key is removed, at any depth (system blocks,
    message content, tools), for providers that reject Anthropic's cache markers. Tool
    parameter schemas are left alone: there ``cache_control`` would be a property name."""

    name = "cleancache"
    dialects = BOTH_DIALECTS

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        return strip_cache_control(body)


def strip_cache_control(body: JSONObject) -> JSONObject:
    out: JSONObject = without_key(body, "cache_control", skip=SCHEMA_KEYS)
    return out


def merge_params(base: JSONObject, top: JSONObject) -> JSONObject:
    """`base` with `top` merged in: mappings key by key, ``None`` removes, else replaces."""
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_params(out[key], value)
        else:
            # A copy: the option belongs to the config and must not be shared with a request.
            out[key] = copy.deepcopy(value) if isinstance(value, dict | list) else value
    return out
