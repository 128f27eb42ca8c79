"""Anthropic Messages answers in both shapes: a message object <-> its SSE event sequence. Pure.

`events_to_message` folds a complete stream (message_start, content blocks with their deltas,
message_delta, message_stop) into the message a non-streaming request would have received;
`message_to_events` makes the stream a streaming request would have received from a stored
message: each block opens, gets its whole content in one delta (text_delta, input_json_delta,
thinking_delta plus signature_delta) and closes. Blocks with nothing to stream (redacted
thinking, server tool results) arrive whole in their content_block_start, as providers send
them.
"""

from __future__ import annotations

from typing import Any

import orjson

Event = tuple[str | None, bytes]  # (SSE event name, data)
STOP_EVENT = "message_stop"


def _event(name: str, obj: dict[str, Any]) -> Event:
    return name, orjson.dumps(obj)


def message_to_events(message: dict[str, Any]) -> list[Event]:
    usage = dict(message.get("usage") or {})
    output_tokens = usage.get("output_tokens", 0)
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, output_tokens or 0)},
    }
    out = [_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or []):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        delta: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        if kind == "text":
            opened = {k: v for k, v in block.items() if k != "citations"}
            opened["text"] = ""
            delta = {"type": "text_delta", "text": block.get("text", "")}
        elif kind in ("tool_use", "server_tool_use"):
            opened = {**block, "input": {}}
            delta = {
                "type": "input_json_delta",
                "partial_json": orjson.dumps(block.get("input", {})).decode(),
            }
        elif kind == "thinking":
            opened = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
            extra = {"type": "signature_delta", "signature": block.get("signature", "")}
        else:
            opened = block
        out.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            )
        )
        for d in (delta, extra):
            if d is not None:
                out.append(
                    _event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": d},
                    )
                )
        if kind == "text":
            for citation in block.get("citations") or []:
                out.append(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "citations_delta", "citation": citation},
                        },
                    )
                )
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message.get("stop_reason"),
                    "stop_sequence": message.get("stop_sequence"),
                },
                "usage": usage,
            },
        )
    )
    out.append(_event(STOP_EVENT, {"type": STOP_EVENT}))
    return out


def events_to_message(events: list[Event]) -> dict[str, Any]:
    """The message a complete stream carries. Raises ValueError on a stream that is not one."""
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    for name, data in events:
        if name in (None, "ping"):
            continue
        obj = orjson.loads(data)
        kind = obj.get("type")
        if kind == "message_start":
            message = dict(obj["message"])
        elif kind == "content_block_start":
            block = dict(obj["content_block"])
            if block.get("type") in ("tool_use", "server_tool_use"):
                partial[obj["index"]] = []
            blocks[obj["index"]] = block
        elif kind == "content_block_delta":
            _apply_delta(blocks[obj["index"]], obj["delta"], partial.get(obj["index"]))
        elif kind == "content_block_stop":
            index = obj["index"]
            parts = partial.pop(index, None)
            if parts is not None:
                text = "".join(parts)
                blocks[index]["input"] = (
                    orjson.loads(text) if text else blocks[index].get("input", {})
                )
        elif kind == "message_delta" and message is not None:
            message.update(obj.get("delta") or {})
            message["usage"] = {**(message.get("usage") or {}), **(obj.get("usage") or {})}
        elif kind == "error":
            raise ValueError("the stream ended with an error")
    if message is None:
        raise ValueError("no message_start")
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _apply_delta(block: dict[str, Any], delta: dict[str, Any], parts: list[str] | None) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta" and parts is not None:
        parts.append(delta.get("partial_json", ""))
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))
