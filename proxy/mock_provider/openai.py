"""The OpenAI Chat Completions dialect: reading a request, rendering answers, errors and SSE."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.mock_provider.content import Answer, AnswerSpec, ToolCall, split_fragments

FINISH_REASONS = {"end": "stop", "length": "length", "tool": "tool_calls"}
ERRORS: dict[int, tuple[str, str | None, str]] = {  # status -> (type, code, message)
    400: ("invalid_request_error", None, "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
    403: ("permission_error", None, "Forbidden"),
    404: ("invalid_request_error", "not_found", "Not found"),
    405: ("invalid_request_error", None, "Method not allowed"),
    413: ("invalid_request_error", "request_too_large", "Request too large"),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached for requests"),
    500: ("server_error", None, "The server had an error while processing your request"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}
DONE = b"data: [DONE]\n\n"

Events = list[tuple[bytes, int]]  # (encoded SSE event, output tokens it carries)


def read_request(body: dict[str, Any]) -> AnswerSpec | str:
    """The answer the request calls for, or the validation message of a 400 (only what an
    answer cannot be built without; `openai_checks` holds the strict checks)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        return "max_tokens must be an integer of at least 1"
    return AnswerSpec(
        tools=_offered_tools(body, messages),
        thinking=wants_reasoning(body),
        max_tokens=cap,
        parallel=body.get("parallel_tool_calls") is not False,
        images=count_images(messages),
        json_schema=_response_schema(body.get("response_format")),
    )


def _response_schema(response_format: object) -> Any:
    """The schema a ``json_schema`` response format asks the answer to match (``{}`` for
    ``json_object``: any JSON object), else None."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}
    spec = response_format.get("json_schema")
    if kind == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return spec["schema"]
    return None


def wants_reasoning(body: dict[str, Any]) -> bool:
    """``reasoning_effort`` (other than "none"), or a ``thinking`` object that is not
    disabled, as OpenAI-compatible reasoning servers accept."""
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort != "none":
        return True
    thinking = body.get("thinking")
    if thinking is None or thinking is False:
        return False
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


def _offered_tools(body: dict[str, Any], messages: list[Any]) -> tuple[tuple[str, Any], ...]:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none":
        return ()
    last = next(
        (m for m in reversed(messages) if _role(m) not in ("system", "developer")),
        None,
    )
    if _role(last) != "user":  # after a tool result (role "tool") the model answers in text
        return ()
    wanted = None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
    out: list[tuple[str, Any]] = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict):
            continue
        name = fn.get("name")
        if isinstance(name, str) and (wanted is None or name == wanted):
            out.append((name, fn.get("parameters")))
    return tuple(out)


def count_images(messages: list[Any]) -> int:
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return count


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _usage(answer: Answer) -> dict[str, Any]:
    prompt = answer.input_tokens + answer.cached_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": answer.output_tokens,
        "total_tokens": prompt + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": len(answer.thinking)},
    }


def _tool_call(tool: ToolCall) -> dict[str, Any]:
    return {
        "id": tool.id,
        "type": "function",
        "function": {"name": tool.name, "arguments": tool.arguments},
    }


def completion_body(answer: Answer, model: str, completion_id: str, created: int) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text if answer.pieces else None,
        "refusal": None,
    }
    if answer.thinking:
        message["reasoning_content"] = "".join(answer.thinking)
    if answer.tools:
        message["tool_calls"] = [_tool_call(tool) for tool in answer.tools]
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS[answer.stop],
                }
            ],
            "usage": _usage(answer),
        }
    )


class _ChunkWriter:
    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
        }
        self.include_usage = include_usage
        self.out: Events = []

    def choice(self, delta: dict[str, Any], tokens: int, finish: str | None = None) -> None:
        chunk: dict[str, Any] = {
            **self.base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        self.out.append((b"data: " + orjson.dumps(chunk) + b"\n\n", tokens))


def completion_events(
    answer: Answer,
    model: str,
    completion_id: str,
    created: int,
    include_usage: bool,
    interleave_tools: bool = False,
) -> Events:
    """Role chunk, reasoning fragments, content, tool-call fragments, the finish chunk, the
    usage chunk when asked for, then [DONE].

    Each tool call opens with its id and name, then its arguments follow in fragments; with
    ``interleave_tools`` the calls advance in turns (open 0, open 1, args 0, args 1, ...), as
    some providers stream parallel calls.
    """
    w = _ChunkWriter(completion_id, model, created, include_usage)
    w.choice({"role": "assistant", "content": "", "refusal": None}, 0)
    for piece in answer.thinking:
        # reasoning servers send content null beside reasoning_content
        w.choice({"content": None, "reasoning_content": piece}, 1)
    for piece in answer.pieces:
        w.choice({"content": piece}, 1)
    steps = [_call_steps(i, tool) for i, tool in enumerate(answer.tools)]
    if interleave_tools:
        for turn in range(max((len(s) for s in steps), default=0)):
            for call in steps:
                if turn < len(call):
                    w.choice({"tool_calls": [call[turn][0]]}, call[turn][1])
    else:
        for call in steps:
            for delta, tokens in call:
                w.choice({"tool_calls": [delta]}, tokens)
    w.choice({}, 0, FINISH_REASONS[answer.stop])
    if include_usage:
        usage_chunk = {**w.base, "choices": [], "usage": _usage(answer)}
        w.out.append((b"data: " + orjson.dumps(usage_chunk) + b"\n\n", 0))
    w.out.append((DONE, 0))
    return w.out


def _call_steps(index: int, tool: ToolCall) -> list[tuple[dict[str, Any], int]]:
    """One call's tool_calls deltas, with the output tokens each carries."""
    opening = {
        "index": index,
        "id": tool.id,
        "type": "function",
        "function": {"name": tool.name, "arguments": ""},
    }
    steps: list[tuple[dict[str, Any], int]] = [(opening, 0)]
    for fragment in split_fragments(tool.arguments):
        steps.append(({"index": index, "function": {"arguments": fragment}}, 1))
    return steps


def error_object(status: int, message: str | None) -> dict[str, Any]:
    kind, code, default = ERRORS.get(
        status,
        ("server_error", None, f"Error {status}")
        if status >= 500
        else ("invalid_request_error", None, f"Error {status}"),
    )
    return {"message": message or default, "type": kind, "param": None, "code": code}


def error_body(status: int, message: str | None) -> bytes:
    return orjson.dumps({"error": error_object(status, message)})


def overloaded_event() -> bytes:
    return b"data: " + error_body(503, None) + b"\n\n"


def models_body(models: tuple[str, ...], created: int) -> bytes:
    data = [{"id": m, "object": "model", "created": created, "owned_by": "mock"} for m in models]
    return orjson.dumps({"object": "list", "data": data})


def model_body(model: str, created: int) -> bytes:
    return orjson.dumps({"id": model, "object": "model", "created": created, "owned_by": "mock"})
