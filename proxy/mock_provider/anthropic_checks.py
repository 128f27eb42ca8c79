"""Strict checks of Anthropic Messages requests: what the real API rejects with 400.

The dialect reader (`anthropic.read_request`) checks only what the mock needs to build an
answer. With ``MockOptions.strict`` (the default; ``x-mock-strict: 0`` turns it off per
request) the planner also runs `check_anthropic`, which follows the real API's rules so that
translation bugs fail tests: role order, tool_use / tool_result pairing, non-empty text, id and
name patterns, block types and image sources, thinking signatures, a few parameter limits. It
returns the first problem as a message that says where it is (``messages.2.content.0: ...``),
or None. Pure functions over the parsed body.
"""

from __future__ import annotations

import re
from typing import Any

ID_PATTERN = "^[a-zA-Z0-9_-]+$"
TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,128}$"
_ID = re.compile(ID_PATTERN)
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
MIN_THINKING_BUDGET = 1024
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Anthropic input block types (the API rejects any other tag)
BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
EMPTY_CONTENT = (
    "all messages must have non-empty content except for the optional final assistant message"
)


def check_anthropic(body: dict[str, Any], *, count_only: bool) -> str | None:
    """The first reason the real Messages API would reject ``body`` (which already passed
    `anthropic.read_request`), or None."""
    return (
        _anthropic_params(body, count_only)
        or _anthropic_system(body.get("system"))
        or _anthropic_tools(body.get("tools"))
        or _anthropic_messages(body["messages"])
    )


def _anthropic_params(body: dict[str, Any], count_only: bool) -> str | None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not _is_number(value) or not 0.0 <= value <= 1.0):
            return f"{name}: Input should be a number between 0 and 1"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return "thinking.enabled.budget_tokens: Field required"
        if budget < MIN_THINKING_BUDGET:
            return (
                "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{MIN_THINKING_BUDGET}"
            )
        if not count_only and body["max_tokens"] <= budget:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    temperature = body.get("temperature")
    if thinking_on and temperature is not None and temperature != 1:
        return "`temperature` may only be set to 1 when thinking is enabled"
    return None


def _anthropic_system(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: Input should be a valid string or a list of text blocks"
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            return f"system.{j}: Input should be a text block"
        problem = _text_problem(block)
        if problem is not None:
            return f"system.{j}.text: {problem}"
    return None


def _anthropic_tools(tools: Any) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    seen: set[str] = set()
    for k, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str):
            return f"tools.{k}.name: Field required"
        if not _TOOL_NAME.match(name):
            return f"tools.{k}.name: String should match pattern '{TOOL_NAME_PATTERN}'"
        if name in seen:
            return f"tools: Tool names must be unique (duplicate {name!r})"
        seen.add(name)
    return None


def _anthropic_messages(messages: list[Any]) -> str | None:
    """Roles alternate user / assistant (role "system" messages, Claude Code's
    mid-conversation beta, may sit anywhere); every tool_use of an assistant message is
    answered by a tool_result in the next message, and every tool_result answers one."""
    previous: str | None = None  # role of the last non-system message
    open_uses: dict[str, None] = {}  # tool_use ids of that message, in order
    open_at = -1  # its index
    seen_ids: set[str] = set()
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if content is None:
            return f"messages.{i}.content: Field required"
        if not isinstance(content, str | list):
            return f"messages.{i}.content: Input should be a valid string or list"
        if not content and not (role == "assistant" and i == last):
            return f"messages.{i}: {EMPTY_CONTENT}"
        blocks = content if isinstance(content, list) else []
        problem = _anthropic_blocks(blocks, f"messages.{i}.content", role, seen_ids)
        if problem is not None:
            return problem
        if role == "system":
            continue
        if previous is None and role != "user":
            return f'messages.{i}: the first message must use the "user" role'
        if role == previous:
            return (
                f'messages.{i}: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        results = [
            (j, b.get("tool_use_id"))
            for j, b in enumerate(blocks)
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        for j, use_id in results:
            if use_id not in open_uses:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {use_id}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        missing = [u for u in open_uses if u not in {r for _, r in results}]
        if missing:
            return (
                f"messages.{open_at}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        open_uses = {}
        if role == "assistant":
            open_at = i
            for b in blocks:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    open_uses[b["id"]] = None
        previous = role
    return None


def _anthropic_blocks(blocks: list[Any], where: str, role: str, seen_ids: set[str]) -> str | None:
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        if not isinstance(block, dict):
            return f"{at}: Input should be a valid dictionary"
        kind = block.get("type")
        if not isinstance(kind, str):
            return f"{at}.type: Field required"
        if kind not in BLOCK_TYPES:
            return (
                f"{at}: Input tag {kind!r} found using 'type' does not match any of the "
                "expected tags"
            )
        problem: str | None = None
        if kind == "text":
            problem = _text_problem(block)
            if problem is not None:
                problem = f"{at}.text: {problem}"
        elif kind == "image":
            problem = _image_source_problem(block.get("source"), f"{at}.source")
        elif kind == "tool_use":
            problem = _tool_use_problem(block, at, role, seen_ids)
        elif kind == "tool_result":
            problem = _tool_result_problem(block, at, role, seen_ids)
        elif kind == "thinking":
            if not isinstance(block.get("thinking"), str):
                problem = f"{at}.thinking: Field required"
            elif not isinstance(block.get("signature"), str) or not block["signature"]:
                problem = f"{at}.signature: Field required"
        if problem is not None:
            return problem
    return None


def _text_problem(block: dict[str, Any]) -> str | None:
    text = block.get("text")
    if not isinstance(text, str):
        return "Input should be a valid string"
    if not text:
        return "text content blocks must be non-empty"
    if text.isspace():
        return "text content blocks must contain non-whitespace text"
    return None


def _image_source_problem(source: Any, at: str) -> str | None:
    if not isinstance(source, dict):
        return f"{at}: Field required"
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if not isinstance(media_type, str) or media_type not in IMAGE_MEDIA_TYPES:
            allowed = ", ".join(sorted(IMAGE_MEDIA_TYPES))
            return f"{at}.base64.media_type: Input should be one of {allowed}"
        if not isinstance(source.get("data"), str) or not source["data"]:
            return f"{at}.base64.data: Field required"
        return None
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return f"{at}.url.url: Input should be an http(s) URL"
        return None
    if kind == "file":
        return (
            None if isinstance(source.get("file_id"), str) else f"{at}.file.file_id: Field required"
        )
    return f"{at}: Input tag {kind!r} found using 'type' does not match 'base64', 'url' or 'file'"


def _tool_use_problem(block: dict[str, Any], at: str, role: str, seen: set[str]) -> str | None:
    if role != "assistant":
        return f"{at}: `tool_use` blocks can only appear in assistant messages"
    tool_id = block.get("id")
    if not isinstance(tool_id, str) or not _ID.match(tool_id):
        return f"{at}.id: String should match pattern '{ID_PATTERN}'"
    if tool_id in seen:
        return f"{at}: `tool_use` ids must be unique (duplicate {tool_id})"
    seen.add(tool_id)
    if not isinstance(block.get("name"), str) or not block["name"]:
        return f"{at}.name: Field required"
    if not isinstance(block.get("input"), dict):
        return f"{at}.input: Input should be a valid dictionary"
    return None


def _tool_result_problem(block: dict[str, Any], at: str, role: str, seen: set[str]) -> str | None:
    if role != "user":
        return f"{at}: `tool_result` blocks can only appear in user messages"
    use_id = block.get("tool_use_id")
    if not isinstance(use_id, str) or not _ID.match(use_id):
        return f"{at}.tool_use_id: String should match pattern '{ID_PATTERN}'"
    inner = block.get("content")
    if inner is None or isinstance(inner, str):
        return None
    if not isinstance(inner, list):
        return f"{at}.content: Input should be a valid string or list"
    return _anthropic_blocks(inner, f"{at}.content", role, seen)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
