"""The Anthropic Messages dialect: reading a request, rendering answers, errors and SSE."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.mock_provider.content import Answer, AnswerSpec, split_fragments

STOP_REASONS = {"end": "end_turn", "length": "max_tokens", "tool": "tool_use"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    401: "invalid x-api-key",
    429: "Number of requests has exceeded your rate limit",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Request timed out",
    529: "Overloaded",
}

Events = list[tuple[bytes, int]]  # (encoded SSE event, output tokens it carries)


def read_request(body: dict[str, Any], *, count_only: bool) -> AnswerSpec | str:
    """The answer the request calls for, or the validation message of a 400.

    Only what an answer cannot be built without is checked here; `anthropic_checks` holds the
    strict checks a real provider makes on top.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    max_tokens = body.get("max_tokens")
    if not count_only and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        return "max_tokens: Field required (an integer of at least 1)"
    choice = body.get("tool_choice")
    thinking = body.get("thinking")
    return AnswerSpec(
        tools=_offered_tools(body, messages),
        thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        parallel=not (isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True),
        images=count_images(messages),
    )


def _offered_tools(body: dict[str, Any], messages: list[Any]) -> tuple[tuple[str, Any], ...]:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return ()
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return ()
    # role "system" messages may sit inside `messages` (Claude Code's mid-conversation beta)
    last = next((m for m in reversed(messages) if _role(m) != "system"), None)
    if last is None or _role(last) != "user" or _has_tool_result(last):
        return ()
    wanted = (
        choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool" else None
    )
    return tuple(
        (tool["name"], tool.get("input_schema"))
        for tool in tools
        if isinstance(tool, dict)
        and isinstance(tool.get("name"), str)
        and (wanted is None or tool["name"] == wanted)
    )


def count_images(messages: list[Any]) -> int:
    """Image blocks in every message, those inside tool results included."""
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "image":
                count += 1
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                count += sum(
                    1
                    for inner in block["content"]
                    if isinstance(inner, dict) and inner.get("type") == "image"
                )
    return count


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _has_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _usage(answer: Answer, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": answer.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message_body(answer: Answer, model: str, message_id: str) -> bytes:
    content: list[dict[str, Any]] = []
    if answer.thinking:
        content.append(
            {
                "type": "thinking",
                "thinking": "".join(answer.thinking),
                "signature": answer.signature,
            }
        )
    if answer.pieces:
        content.append({"type": "text", "text": answer.text})
    for tool in answer.tools:
        content.append({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input})
    return orjson.dumps(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": STOP_REASONS[answer.stop],
            "stop_sequence": None,
            "usage": _usage(answer, answer.output_tokens),
        }
    )


def event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def message_events(answer: Answer, model: str, message_id: str) -> Events:
    """The full SSE stream: message_start, blocks in order (a ping after the first block
    start, as the real API sends), message_delta with cumulative usage, message_stop."""
    out: Events = [(_message_start(answer, model, message_id), 0)]
    index = 0
    if answer.thinking:
        _block_start(out, index, {"type": "thinking", "thinking": "", "signature": ""})
        for piece in answer.thinking:
            _delta(out, index, {"type": "thinking_delta", "thinking": piece}, 1)
        _delta(out, index, {"type": "signature_delta", "signature": answer.signature}, 0)
        _block_stop(out, index)
        index += 1
    if answer.pieces:
        _block_start(out, index, {"type": "text", "text": ""})
        for piece in answer.pieces:
            _delta(out, index, {"type": "text_delta", "text": piece}, 1)
        _block_stop(out, index)
        index += 1
    for tool in answer.tools:  # one block after the other: Anthropic never interleaves
        _block_start(
            out, index, {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
        )
        _delta(out, index, {"type": "input_json_delta", "partial_json": ""}, 0)
        for fragment in split_fragments(tool.arguments):
            _delta(out, index, {"type": "input_json_delta", "partial_json": fragment}, 1)
        _block_stop(out, index)
        index += 1
    usage = _usage(answer, answer.output_tokens)
    del usage["service_tier"]
    out.append(
        (
            event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": STOP_REASONS[answer.stop], "stop_sequence": None},
                    "usage": usage,
                },
            ),
            0,
        )
    )
    out.append((b'event: message_stop\ndata: {"type":"message_stop"}\n\n', 0))
    return out


def _message_start(answer: Answer, model: str, message_id: str) -> bytes:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(answer, 1),
    }
    return event(b"message_start", {"type": "message_start", "message": message})


def _block_start(out: Events, index: int, block: dict[str, Any]) -> None:
    start = {"type": "content_block_start", "index": index, "content_block": block}
    out.append((event(b"content_block_start", start), 0))
    if index == 0:
        out.append((b'event: ping\ndata: {"type":"ping"}\n\n', 0))


def _delta(out: Events, index: int, delta: dict[str, Any], tokens: int) -> None:
    data = {"type": "content_block_delta", "index": index, "delta": delta}
    out.append((event(b"content_block_delta", data), tokens))


def _block_stop(out: Events, index: int) -> None:
    out.append((event(b"content_block_stop", {"type": "content_block_stop", "index": index}), 0))


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str | None, request_id: str) -> bytes:
    text = message or ERROR_MESSAGES.get(status, f"Error {status}")
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": error_type(status), "message": text},
            "request_id": request_id,
        }
    )


def overloaded_event() -> bytes:
    return event(
        b"error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )


def count_tokens_body(input_tokens: int) -> bytes:
    return b'{"input_tokens":%d}' % input_tokens


def models_body(models: tuple[str, ...], created_at: str) -> bytes:
    data = [
        {"type": "model", "id": m, "display_name": _display_name(m), "created_at": created_at}
        for m in models
    ]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    )


def model_body(model: str, created_at: str) -> bytes:
    return orjson.dumps(
        {
            "type": "model",
            "id": model,
            "display_name": _display_name(model),
            "created_at": created_at,
        }
    )


def _display_name(model: str) -> str:
    return " ".join(part.capitalize() for part in model.split("-"))
