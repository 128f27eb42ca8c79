"""Provider-specific transformers for OpenAI-compatible upstreams: DeepSeek, OpenRouter, Groq,
and ``reasoning`` (how a provider wants to be asked to think, and where it puts the thoughts).

The translators read reasoning text from ``message.reasoning_content`` / ``delta.
reasoning_content`` (the DeepSeek field). Providers that say ``reasoning`` instead (OpenRouter,
vLLM's newer builds) are mapped onto it here.
"""

from __future__ import annotations

import copy
from typing import Any

from proxy.dialects.transformers.api import BaseTransformer, JSONObject, TransformContext
from proxy.dialects.transformers.common import (
    OPENAI_ONLY,
    choices,
    drop_keys,
    is_number,
    map_list,
    positive_int,
)
from proxy.dialects.transformers.params import merge_params, strip_cache_control
from proxy.dialects.transformers.schema import CleanSchemaTransformer

DEEPSEEK_MAX_TOKENS = 8192  # DeepSeek rejects a larger max_tokens on deepseek-chat
# Sent by the translators or clients for other providers; DeepSeek does not take them.
_DEEPSEEK_UNSUPPORTED = (
    "top_k",
    "reasoning_effort",
    "parallel_tool_calls",
    "service_tier",
    "metadata",
    "store",
    "prompt_cache_key",
    "safety_identifier",
)
# Groq's documented unsupported fields, plus top_k and reasoning (not OpenAI fields at all).
_GROQ_UNSUPPORTED = ("top_k", "logprobs", "top_logprobs", "logit_bias", "reasoning")


class DeepSeekTransformer(BaseTransformer):
    """``deepseek`` (option ``max_tokens``, default 8192).

    Requests: ``max_tokens`` (or ``max_completion_tokens``, renamed) capped at the option;
    cache_control and the unsupported fields above removed; a ``json_schema`` response_format
    dropped (DeepSeek knows only ``json_object``, which also needs the word "json" in the
    prompt, so a conversion could turn a working call into a 400). ``reasoning_content`` on
    assistant messages is kept only after the last user message: DeepSeek's thinking mode
    wants the reasoning of the tool loop in progress echoed back, and older turns' reasoning
    is dead weight (earlier deepseek-reasoner answered 400 to it).

    Responses: DeepSeek's ``prompt_cache_hit_tokens`` becomes
    ``prompt_tokens_details.cached_tokens`` when that is absent, so cache reads are reported.
    """

    name = "deepseek"
    dialects = OPENAI_ONLY

    def __init__(self, *, max_tokens: int = DEEPSEEK_MAX_TOKENS) -> None:
        self.max_tokens = positive_int("max_tokens", max_tokens)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        out = drop_keys(strip_cache_control(body), _DEEPSEEK_UNSUPPORTED)
        limit = out.get("max_completion_tokens", out.get("max_tokens"))
        if is_number(limit):
            capped = min(limit, self.max_tokens)
            if capped != out.get("max_tokens") or "max_completion_tokens" in out:
                out = {**drop_keys(out, ("max_completion_tokens",)), "max_tokens": capped}
        response_format = out.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            out = drop_keys(out, ("response_format",))
        return _keep_current_reasoning(out)

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        _cache_hits_as_cached_tokens(body.get("usage"))
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        _cache_hits_as_cached_tokens(obj.get("usage"))
        return [obj]


class OpenRouterTransformer(BaseTransformer):
    """``openrouter``: ``cache_control`` stays only for ``anthropic/*`` models (OpenRouter passes
    it to Anthropic; other upstreams may reject it). Options are OpenRouter request fields
    merged into every request, e.g. ``{"provider": {"order": ["anthropic"],
    "allow_fallbacks": false}}``, ``models``, ``route``, ``transforms``; a mapping merges with
    the request's own. Responses: ``reasoning`` text moves to ``reasoning_content``."""

    name = "openrouter"
    dialects = OPENAI_ONLY

    def __init__(self, **options: Any) -> None:
        self.options = options

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        model = body.get("model") if isinstance(body.get("model"), str) else ctx.model
        out = body if str(model).lower().startswith("anthropic/") else strip_cache_control(body)
        return merge_params(out, self.options) if self.options else out

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        move_reasoning(body)
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        move_reasoning(obj)
        return [obj]


class GroqTransformer(BaseTransformer):
    """``groq``: removes what Groq's API rejects: every ``cache_control``, ``$schema`` in tool
    parameter schemas, ``top_k``, ``logprobs``, ``top_logprobs``, ``logit_bias``,
    ``reasoning``, and ``name`` on messages."""

    name = "groq"
    dialects = OPENAI_ONLY

    def __init__(self) -> None:
        self._schema = CleanSchemaTransformer(remove=("$schema",))

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        out = drop_keys(strip_cache_control(body), _GROQ_UNSUPPORTED)
        out = map_list(out, "messages", _without_name)
        return self._schema.transform_request(out, ctx)


REASONING_STYLES = ("reasoning", "reasoning_max_tokens", "enable_thinking", "thinking", "effort")
DEFAULT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}


class ReasoningTransformer(BaseTransformer):
    """``["reasoning", {"style": ..., "enable": true, "budgets": {...}}]``.

    Requests: the translators express a thinking request as ``reasoning_effort``
    (low/medium/high). ``style`` says how this provider wants it instead:

    * ``reasoning`` (default): ``reasoning: {effort}`` (OpenRouter);
    * ``reasoning_max_tokens``: ``reasoning: {max_tokens: budget}`` (OpenRouter, for models
      that take a budget);
    * ``enable_thinking``: ``enable_thinking: true, thinking_budget: budget`` (Qwen-style);
    * ``thinking``: ``thinking: {type: "enabled", budget_tokens: budget}`` (GLM-style);
    * ``effort``: ``reasoning_effort`` stays as it is.

    The budget comes from ``budgets`` (effort -> tokens; default minimal 512, low 1024,
    medium 8192, high 24576, xhigh 32768) and stays below ``max_tokens``. ``enable: false``
    turns thinking off whatever the client asked (``reasoning: {enabled: false}``,
    ``enable_thinking: false`` or ``thinking: {type: "disabled"}``).

    Responses: ``reasoning`` text on a message or delta moves to ``reasoning_content``.
    """

    name = "reasoning"
    dialects = OPENAI_ONLY

    def __init__(
        self,
        *,
        style: str = "reasoning",
        enable: bool = True,
        budgets: dict[str, int] | None = None,
    ) -> None:
        if style not in REASONING_STYLES:
            raise ValueError(f"option 'style' must be one of {', '.join(REASONING_STYLES)}")
        if not isinstance(enable, bool):
            raise ValueError(f"option 'enable' must be true or false (got {enable!r})")
        self.style = style
        self.enable = enable
        self.budgets = dict(DEFAULT_BUDGETS)
        for effort, tokens in (budgets or {}).items():
            self.budgets[str(effort)] = positive_int(f"budgets.{effort}", tokens)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        if not self.enable:
            return {**drop_keys(body, ("reasoning_effort",)), **copy.deepcopy(_OFF[self.style])}
        effort = body.get("reasoning_effort")
        if self.style == "effort" or not isinstance(effort, str) or effort not in self.budgets:
            return body
        out = drop_keys(body, ("reasoning_effort",))
        budget = self.budgets[effort]
        limit = out.get("max_completion_tokens", out.get("max_tokens"))
        if is_number(limit) and budget >= limit:
            budget = max(int(limit) - 1, 1)
        if self.style == "reasoning":
            return {**out, "reasoning": {"effort": effort}}
        if self.style == "reasoning_max_tokens":
            return {**out, "reasoning": {"max_tokens": budget}}
        if self.style == "enable_thinking":
            return {**out, "enable_thinking": True, "thinking_budget": budget}
        return {**out, "thinking": {"type": "enabled", "budget_tokens": budget}}

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        move_reasoning(body)
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        move_reasoning(obj)
        return [obj]


_OFF: dict[str, JSONObject] = {
    "reasoning": {"reasoning": {"enabled": False}},
    "reasoning_max_tokens": {"reasoning": {"enabled": False}},
    "enable_thinking": {"enable_thinking": False},
    "thinking": {"thinking": {"type": "disabled"}},
    "effort": {},
}


def move_reasoning(obj: JSONObject) -> None:
    """``reasoning`` -> ``reasoning_content`` on each choice's message or delta, in place."""
    for choice in choices(obj):
        for holder in (choice.get("message"), choice.get("delta")):
            if not isinstance(holder, dict) or "reasoning" not in holder:
                continue
            text = holder.pop("reasoning")
            if isinstance(text, str) and text and not holder.get("reasoning_content"):
                holder["reasoning_content"] = text


def _keep_current_reasoning(body: JSONObject) -> JSONObject:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    last_user = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
        default=-1,
    )
    changed = False
    out: list[Any] = []
    for index, message in enumerate(messages):
        if index < last_user and isinstance(message, dict) and "reasoning_content" in message:
            message = drop_keys(message, ("reasoning_content",))
            changed = True
        out.append(message)
    return {**body, "messages": out} if changed else body


def _cache_hits_as_cached_tokens(usage: object) -> None:
    if not isinstance(usage, dict):
        return
    hits = usage.get("prompt_cache_hit_tokens")
    details = usage.get("prompt_tokens_details")
    if not isinstance(hits, int) or isinstance(hits, bool):
        return
    if isinstance(details, dict):
        details.setdefault("cached_tokens", hits)
    elif details is None:
        usage["prompt_tokens_details"] = {"cached_tokens": hits}


def _without_name(message: Any) -> Any:
    return drop_keys(message, ("name",)) if isinstance(message, dict) else message
