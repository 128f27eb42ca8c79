"""Mappings both directions share: stop reasons and usage (protocol.md §4.4, §4.5, §5.2)."""

from __future__ import annotations

from typing import Any

_STOP_BY_FINISH: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_FINISH_BY_STOP: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}


def finish_to_stop(finish_reason: object, *, has_tool_calls: bool = False) -> str:
    """OpenAI finish_reason -> Anthropic stop_reason.

    A message that carries tool calls is a tool_use stop whatever the provider said: some
    OpenAI-compatible servers answer ``stop`` there, and Claude Code would not run the tool.
    """
    if has_tool_calls and finish_reason in ("stop", "tool_calls", "function_call", None):
        return "tool_use"
    if isinstance(finish_reason, str):
        return _STOP_BY_FINISH.get(finish_reason, "end_turn")
    return "end_turn"


def stop_to_finish(stop_reason: object) -> str:
    """Anthropic stop_reason -> OpenAI finish_reason."""
    if isinstance(stop_reason, str):
        return _FINISH_BY_STOP.get(stop_reason, "stop")
    return "stop"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def openai_usage_to_anthropic(usage: object) -> dict[str, int]:
    """OpenAI usage -> Anthropic usage. Cached prompt tokens are not input tokens there."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    # Some OpenAI-compatible servers report Anthropic-style cache fields directly.
    cached = cached or _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens")) or _int(
        usage.get("cache_write_tokens")
    )
    out: dict[str, int] = {
        "input_tokens": max(prompt - cached - created, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
    }
    if cached or created:
        out["cache_read_input_tokens"] = cached
        out["cache_creation_input_tokens"] = created
    return out


def anthropic_usage_to_openai(usage: object) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage (prompt tokens include cached ones)."""
    if not isinstance(usage, dict):
        usage = {}
    inp = _int(usage.get("input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens"))
    out_tokens = _int(usage.get("output_tokens"))
    prompt = inp + read + created
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out_tokens,
        "total_tokens": prompt + out_tokens,
        "prompt_tokens_details": {"cached_tokens": read},
    }
