"""Transformers for what current Claude Code sends that some providers do not take:
structured output on OpenAI-dialect providers without ``json_schema`` response formats, and
Anthropic beta fields on third-party "Anthropic-compatible" endpoints (protocol.md §1.3).

``structuredoutput`` (OpenAI dialect): a ``response_format`` of type ``json_schema`` (what
Junction makes of Anthropic's ``output_config.format``) becomes ``{"type": "json_object"}``
(``mode: json_object``, the default: JSON mode, which most OpenAI-compatible servers have) or
is removed (``mode: prompt``); either way the schema goes into the system prompt as an
instruction, so the model still knows the shape. Claude Code's title call then gets a JSON
``{"title": ...}`` from providers that would reject the schema.

``anthropiccompat`` (Anthropic dialect): top-level fields such providers reject are removed
(``drop``, by default ``context_management``; add ``output_config`` for endpoints without
effort or structured outputs), and ``role: "system"`` messages inside ``messages`` (the
mid-conversation-system beta) are folded into the top-level ``system`` as text blocks, in
order (``fold_system_messages``, on by default). Claude Code sends its role:system messages
near the start of the conversation, so the folded ``system`` stays the same from turn to turn
and the provider's prompt cache keeps hitting.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from proxy.dialects.transformers.api import BaseTransformer, JSONObject, TransformContext
from proxy.dialects.transformers.common import OPENAI_ONLY, drop_keys
from proxy.filters.api import Dialect

STRUCTURED_MODES: Final = ("json_object", "prompt")
SCHEMA_INSTRUCTION: Final = (
    "Respond with only a JSON object, no other text and no code fence, that matches this JSON"
    " schema:\n"
)
DEFAULT_COMPAT_DROP: Final = ("context_management",)


class StructuredOutputTransformer(BaseTransformer):
    """``structuredoutput`` / ``["structuredoutput", {"mode": "prompt"}]``: see the module
    docstring."""

    name = "structuredoutput"
    dialects = OPENAI_ONLY

    def __init__(self, *, mode: str = "json_object") -> None:
        if mode not in STRUCTURED_MODES:
            raise ValueError(f"mode must be one of {', '.join(STRUCTURED_MODES)} (got {mode!r})")
        self.mode = mode

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        fmt = body.get("response_format")
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            return body
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        out = dict(body)
        if self.mode == "json_object":
            out["response_format"] = {"type": "json_object"}
        else:
            del out["response_format"]
        instruction = SCHEMA_INSTRUCTION + orjson.dumps(schema or {}).decode()
        out["messages"] = _with_system_note(body.get("messages"), instruction)
        return out


class AnthropicCompatTransformer(BaseTransformer):
    """``anthropiccompat`` / ``["anthropiccompat", {"drop": [...], "fold_system_messages":
    true}]``: see the module docstring."""

    name = "anthropiccompat"
    dialects = frozenset({Dialect.ANTHROPIC})

    def __init__(
        self,
        *,
        drop: list[str] | tuple[str, ...] = DEFAULT_COMPAT_DROP,
        fold_system_messages: bool = True,
    ) -> None:
        if isinstance(drop, str) or not all(isinstance(k, str) and k for k in drop):
            raise ValueError("drop must be a list of top-level field names")
        if "model" in drop or "messages" in drop or "max_tokens" in drop:
            raise ValueError("drop must not name model, messages or max_tokens")
        self.drop = tuple(drop)
        self.fold_system_messages = bool(fold_system_messages)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        out = drop_keys(body, self.drop)
        if self.fold_system_messages:
            out = fold_system_messages(out)
        return out


def fold_system_messages(body: JSONObject) -> JSONObject:
    """``body`` with its ``role: "system"`` messages moved, in order, to the end of the
    top-level ``system`` (as text blocks); ``body`` itself when it has none."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(
        isinstance(m, dict) and m.get("role") == "system" for m in messages
    ):
        return body
    system = body.get("system")
    blocks: list[Any]
    if isinstance(system, str):
        blocks = [{"type": "text", "text": system}] if system else []
    elif isinstance(system, list):
        blocks = list(system)
    else:
        blocks = []
    kept: list[Any] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "system":
            kept.append(message)
            continue
        content = message.get("content")
        if isinstance(content, str):
            if content.strip():
                blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(
                b
                for b in content
                if isinstance(b, dict) and isinstance(b.get("text"), str) and b["text"].strip()
            )
    return {**body, "system": blocks, "messages": kept}


def _with_system_note(messages: object, note: str) -> list[Any]:
    """OpenAI ``messages`` with ``note`` added to the leading system message (or as one)."""
    items = list(messages) if isinstance(messages, list) else []
    first = items[0] if items else None
    if isinstance(first, dict) and first.get("role") == "system":
        content = first.get("content")
        if isinstance(content, str):
            items[0] = {**first, "content": f"{content}\n\n{note}" if content else note}
            return items
    return [{"role": "system", "content": note}, *items]
