"""OpenAI Chat Completions answers in both shapes: a chat.completion <-> its chunk sequence
(``data: {chat.completion.chunk}`` events ending with ``data: [DONE]``). Pure.

`chunks_to_completion` folds a complete stream into the completion a non-streaming request
would have received (content, reasoning_content, refusal and tool-call fragments joined per
choice). `completion_to_chunks` streams a stored completion: per choice a role chunk, the
reasoning, the content and each tool call (its id and name, then its arguments) in one chunk
each, a finish chunk, then — when the client asked with ``stream_options.include_usage`` and
the entry knows it — the usage chunk with no choices, and ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

import orjson

Event = tuple[str | None, bytes]
DONE = b"[DONE]"
_BASE_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


def completion_to_chunks(completion: dict[str, Any], include_usage: bool) -> list[Event]:
    base: dict[str, Any] = {"object": "chat.completion.chunk"}
    for field in _BASE_FIELDS:
        if field in completion:
            base[field] = completion[field]
    usage = completion.get("usage")
    with_usage = include_usage and usage is not None
    if with_usage:
        base["usage"] = None
    out: list[Event] = []

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        out.append((None, orjson.dumps({**base, "choices": [choice]})))

    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        msg = choice.get("message") or {}
        chunk(index, {"role": msg.get("role", "assistant"), "content": ""})
        if msg.get("reasoning_content"):
            chunk(index, {"content": None, "reasoning_content": msg["reasoning_content"]})
        if msg.get("content"):
            chunk(index, {"content": msg["content"]})
        if msg.get("refusal"):
            chunk(index, {"refusal": msg["refusal"]})
        for j, call in enumerate(msg.get("tool_calls") or []):
            fn = call.get("function") or {}
            head = {
                "index": j,
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": {"name": fn.get("name", ""), "arguments": ""},
            }
            chunk(index, {"tool_calls": [head]})
            if fn.get("arguments"):
                chunk(
                    index,
                    {"tool_calls": [{"index": j, "function": {"arguments": fn["arguments"]}}]},
                )
        chunk(index, {}, choice.get("finish_reason") or "stop")
    if with_usage:
        out.append((None, orjson.dumps({**base, "choices": [], "usage": usage})))
    out.append((None, DONE))
    return out


def chunks_to_completion(events: list[Event]) -> dict[str, Any]:
    """The completion a complete stream carries. Raises ValueError on a stream that is not."""
    head: dict[str, Any] | None = None
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    for _, data in events:
        if data == DONE:
            break
        obj = orjson.loads(data)
        if "error" in obj:
            raise ValueError("the stream carried an error")
        if head is None:
            head = {f: obj[f] for f in _BASE_FIELDS if f in obj}
        if obj.get("usage"):
            usage = obj["usage"]
        for c in obj.get("choices") or []:
            _fold(choices.setdefault(c.get("index", 0), {"tools": {}}), c)
    if head is None:
        raise ValueError("no chunk")
    out: dict[str, Any] = {"id": head.get("id"), "object": "chat.completion", **head}
    out["choices"] = [_choice(i, choices[i]) for i in sorted(choices)]
    if usage is not None:
        out["usage"] = usage
    return out


def _fold(acc: dict[str, Any], c: dict[str, Any]) -> None:
    delta = c.get("delta") or {}
    if delta.get("role"):
        acc["role"] = delta["role"]
    for field in ("content", "reasoning_content", "refusal"):
        piece = delta.get(field)
        if isinstance(piece, str):
            acc[field] = acc.get(field, "") + piece
    for call in delta.get("tool_calls") or []:
        slot = acc["tools"].setdefault(call.get("index", 0), {"function": {"arguments": ""}})
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        fn = call.get("function") or {}
        if fn.get("name"):
            slot["function"]["name"] = fn["name"]
        if fn.get("arguments"):
            slot["function"]["arguments"] += fn["arguments"]
    if c.get("finish_reason"):
        acc["finish_reason"] = c["finish_reason"]


def _choice(index: int, acc: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": acc.get("role", "assistant"),
        "content": acc.get("content") or None,
        "refusal": acc.get("refusal"),
    }
    if acc.get("reasoning_content"):
        message["reasoning_content"] = acc["reasoning_content"]
    tools = acc["tools"]
    if tools:
        message["tool_calls"] = [
            {
                "id": t.get("id"),
                "type": t.get("type", "function"),
                "function": {
                    "name": t["function"].get("name", ""),
                    "arguments": t["function"]["arguments"],
                },
            }
            for _, t in sorted(tools.items())
        ]
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": acc.get("finish_reason", "stop"),
    }
