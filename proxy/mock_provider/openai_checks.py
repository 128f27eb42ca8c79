"""Strict checks of OpenAI Chat Completions requests: what the real API rejects with 400.

The dialect reader (`openai.read_request`) checks only what the mock needs to build an answer.
With ``MockOptions.strict`` (the default; ``x-mock-strict: 0`` turns it off per request) the
planner also runs `check_openai`, which follows the real API's rules so that translation bugs
fail tests: known roles and content part types, every ``tool`` message answering a call of the
assistant message before it (and every call answered), the shape of tool calls, ``stop`` and
token limits, function name patterns. It returns the first problem as a message naming the
parameter (``'messages[2].tool_call_id'``), or None. Pure functions over the parsed body.
"""

from __future__ import annotations

import re
from typing import Any

TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
MAX_STOP = 4
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = {  # content part types each role may send
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "tool": frozenset({"text"}),
}


def check_openai(body: dict[str, Any]) -> str | None:
    """The first reason the real Chat Completions API would reject ``body`` (which already
    passed `openai.read_request`), or None."""
    return (
        _openai_params(body)
        or _openai_tools(body.get("tools"))
        or _openai_messages(body["messages"])
    )


def _openai_params(body: dict[str, Any]) -> str | None:
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return (
            "Invalid request: 'max_tokens' and 'max_completion_tokens' cannot both be set; "
            "use 'max_completion_tokens'."
        )
    stop = body.get("stop")
    if isinstance(stop, list):
        if len(stop) > MAX_STOP:
            return (
                f"Invalid 'stop': array too long. Expected an array with maximum length "
                f"{MAX_STOP}, but got an array with length {len(stop)} instead."
            )
        if not all(isinstance(s, str) for s in stop):
            return "Invalid type for 'stop': expected a string or an array of strings."
    elif stop is not None and not isinstance(stop, str):
        return "Invalid type for 'stop': expected a string or an array of strings."
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    return None


def _openai_tools(tools: Any) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array."
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            return f"Invalid value for 'tools[{k}].type': expected 'function'."
        if tool["type"] != "function":
            continue
        fn = tool.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            return f"Missing required parameter: 'tools[{k}].function.name'."
        if not _TOOL_NAME.match(name):
            return (
                f"Invalid 'tools[{k}].function.name': string does not match pattern. "
                f"Expected a string that matches the pattern '{TOOL_NAME_PATTERN}'."
            )
    return None


def _openai_messages(messages: list[Any]) -> str | None:
    """Known roles and part types; every ``tool`` message answers a tool call of the
    assistant message right before its group, and every such call gets its answer."""
    open_calls: dict[str, None] = {}  # calls of the last assistant message not yet answered
    open_at = -1
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            return f"Invalid type for '{at}': expected an object."
        role = message.get("role")
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES)
            return f"Invalid value for '{at}.role': {role!r}. Supported values are: {supported}."
        if role != "tool" and open_calls:
            return (
                f"An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(open_calls)} (message {open_at})"
            )
        if role == "function":
            continue
        problem = _openai_content(message, at, role)
        if problem is not None:
            return problem
        if role == "assistant":
            calls = message.get("tool_calls")
            if calls is not None:
                problem = _openai_tool_calls(calls, at)
                if problem is not None:
                    return problem
                open_calls = {c["id"]: None for c in calls}
                open_at = i
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                return f"Missing required parameter: '{at}.tool_call_id'."
            if call_id not in open_calls:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceding message with 'tool_calls' ('{at}.tool_call_id' is "
                    f"{call_id!r}, which no tool call of that message has)."
                )
            del open_calls[call_id]
    return None


def _openai_content(message: dict[str, Any], at: str, role: str) -> str | None:
    content = message.get("content")
    if content is None:
        if role == "assistant":
            if message.get("tool_calls") or message.get("function_call"):
                return None
            return (
                f"Invalid value for '{at}.content': expected a string, got null "
                "(an assistant message needs 'content' or 'tool_calls')."
            )
        return f"Invalid value for '{at}.content': expected a string, got null."
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"Invalid type for '{at}.content': expected a string or an array of parts."
    if not content:
        return (
            f"Invalid '{at}.content': array too short. Expected an array with minimum "
            "length 1, but got an empty array instead."
        )
    allowed = PART_TYPES[role]
    for j, part in enumerate(content):
        where = f"{at}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in allowed:
            supported = ", ".join(f"'{t}'" for t in sorted(allowed))
            return f"Invalid value for '{where}.type': {kind!r}. Supported values are: {supported}."
        assert isinstance(part, dict)
        if kind == "text" and not isinstance(part.get("text"), str):
            return f"Missing required parameter: '{where}.text'."
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:")):
                return f"Invalid '{where}.image_url.url': expected an http(s) or data URL."
    return None


def _openai_tool_calls(calls: Any, at: str) -> str | None:
    if not isinstance(calls, list) or not calls:
        return (
            f"Invalid '{at}.tool_calls': empty array. Expected an array with minimum length "
            "1, but got an empty array instead."
        )
    for k, call in enumerate(calls):
        where = f"{at}.tool_calls[{k}]"
        if not isinstance(call, dict):
            return f"Invalid type for '{where}': expected an object."
        if not isinstance(call.get("id"), str) or not call["id"]:
            return f"Missing required parameter: '{where}.id'."
        if call.get("type") != "function":
            return f"Invalid value for '{where}.type': expected 'function'."
        fn = call.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return f"Missing required parameter: '{where}.function.name'."
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            got = "null" if arguments is None else type(arguments).__name__
            return (
                f"Invalid type for '{where}.function.arguments': expected a string, "
                f"but got {got} instead."
            )
    return None
