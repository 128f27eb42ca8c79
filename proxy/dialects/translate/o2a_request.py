"""OpenAI Chat Completions request -> Anthropic Messages request (protocol.md §5.1).

How it works: every message becomes a list of Anthropic blocks under role ``user`` (user and
tool messages) or ``assistant``; system and developer messages go to the top-level ``system``.
Neighbours with the same role are merged as they are appended, so consecutive tool messages
become one user message of ``tool_result`` blocks, and a user message right after them lands in
that same message, after the results, as the API's tool_use/tool_result adjacency requires.

Choices worth knowing:

* Empty or whitespace-only text never becomes a block (the API rejects it); a message left
  with nothing is dropped. If the history does not start with a user turn (or is empty), a
  user turn holding ``PLACEHOLDER_USER_TEXT`` goes first.
* Tool arguments that are not a JSON object become ``{"raw_arguments": ...}`` (see
  ``parse_tool_arguments``), never an exception.
* Tool call ids with characters Anthropic refuses are mapped (each bad character -> ``_``) in
  both the assistant's ``tool_use`` and the ``tool_result`` answering it, so pairs still match.
* A tool message whose content starts with ``Error: `` is an ``is_error`` result without the
  prefix: the inverse of a2o_request, which writes ``is_error`` that way.
* ``reasoning_effort`` low/medium/high -> thinking budgets 1024/8192/24576 (``xhigh`` counts as
  high, ``minimal``/``none`` mean no thinking). ``max_tokens`` below or at the budget grows by
  the budget (the client's figure stays for the visible answer), and ``temperature``/``top_p``
  are dropped (thinking allows neither). Thinking is left out when Anthropic would refuse it:
  with a forced tool_choice, or when the last assistant turn called tools (the API then wants
  that turn to start with a signed thinking block, which an OpenAI history cannot have).
* ``response_format``: ``json_schema`` with a ``schema`` -> ``output_config.format``
  (``{"type": "json_schema", "schema": ...}``, Anthropic's structured outputs: the answer's
  text is the JSON, so no response path changes); without a schema it raises
  TranslationError. ``json_object`` and ``text`` are dropped: OpenAI already requires the
  prompt to ask for JSON.
* ``stream_options``, ``seed``, penalties, ``logprobs`` and other OpenAI-only knobs are dropped.
"""

from __future__ import annotations

import re
from typing import Any

from proxy.dialects.translate.o2a_response import parse_tool_arguments
from proxy.errors import TranslationError

JSONObject = dict[str, Any]

PLACEHOLDER_USER_TEXT = "(conversation continues)"
ERROR_PREFIX = "Error: "
THINKING_BUDGET_BY_EFFORT = {"low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
_NO_THINKING_EFFORTS = frozenset({"minimal", "none"})

_VALID_ID = re.compile(r"[a-zA-Z0-9_-]+")
_INVALID_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_TOOL_CHOICE_TYPES = {"auto": "auto", "required": "any", "none": "none"}


def openai_to_anthropic_request(
    body: JSONObject, *, model: str, default_max_tokens: int = 4096
) -> JSONObject:
    """Translate a client's chat completion body into a ``/v1/messages`` body for ``model``.

    ``default_max_tokens`` fills Anthropic's required ``max_tokens`` when the client set none.
    Raises TranslationError naming the field that cannot be expressed.
    """
    n = body.get("n")
    if n is not None and n != 1:
        raise TranslationError("n", "only one choice per request is supported (n=1)")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise TranslationError(legacy, "legacy function calling is not supported; use tools")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        raise TranslationError("messages", "must be a list")

    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for i, message in enumerate(raw_messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise TranslationError(path, "must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), path))
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), path))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, path))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, path)])
        else:
            raise TranslationError(f"{path}.role", f"unsupported role {role!r}")
    if not turns or turns[0]["role"] != "user":
        placeholder = {"type": "text", "text": PLACEHOLDER_USER_TEXT}
        turns.insert(0, {"role": "user", "content": [placeholder]})

    out: JSONObject = {"model": model, "messages": turns}
    if system:
        out["system"] = system
    max_tokens = body.get("max_completion_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        max_tokens = default_max_tokens
    out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    elif stop is not None and stop != []:
        raise TranslationError("stop", "must be a string or a list of strings")
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            out["tool_choice"] = choice
    _response_format(body.get("response_format"), out)
    _thinking(body.get("reasoning_effort"), out, turns)
    return out


def _append(turns: list[JSONObject], role: str, blocks: list[JSONObject]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _text_blocks(content: object, path: str) -> list[JSONObject]:
    """Text-only content (system, developer, tool): a string or a list of text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise TranslationError(f"{path}.content", "must be a string or a list of parts")
    blocks: list[JSONObject] = []
    for j, part in enumerate(content):
        text = _part_text(part, f"{path}.content.{j}")
        if text.strip():
            blocks.append({"type": "text", "text": text})
    return blocks


def _part_text(part: object, path: str) -> str:
    ptype = part.get("type") if isinstance(part, dict) else None
    if not isinstance(part, dict) or ptype not in ("text", "refusal"):
        raise TranslationError(path, f"content part type {ptype!r} cannot be translated here")
    key = "refusal" if ptype == "refusal" else "text"
    text = part.get(key)
    if not isinstance(text, str):
        raise TranslationError(f"{path}.{key}", "must be a string")
    return text


def _user_blocks(content: object, path: str) -> list[JSONObject]:
    if not isinstance(content, list):
        return _text_blocks(content, path)
    blocks: list[JSONObject] = []
    for j, part in enumerate(content):
        ppath = f"{path}.content.{j}"
        if isinstance(part, dict) and part.get("type") == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{ppath}.image_url"))
        else:
            text = _part_text(part, ppath)
            if text.strip():
                blocks.append({"type": "text", "text": text})
    return blocks


def _image_block(image_url: object, path: str) -> JSONObject:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise TranslationError(f"{path}.url", "must be a string")
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        media_type, _, encoding = header[5:].partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise TranslationError(f"{path}.url", "data URIs must be data:<type>;base64,<data>")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError(f"{path}.url", "must be an http(s) URL or a base64 data URI")


def _tool_id(raw: object, path: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise TranslationError(path, "must be a non-empty string")
    return raw if _VALID_ID.fullmatch(raw) else _INVALID_ID_CHARS.sub("_", raw)


def _assistant_blocks(message: JSONObject, path: str) -> list[JSONObject]:
    content = message.get("content")
    if isinstance(content, list):
        # Parts are concatenated, as OpenAI reads them: one assistant text.
        text = "".join(_part_text(p, f"{path}.content.{j}") for j, p in enumerate(content))
        blocks: list[JSONObject] = [{"type": "text", "text": text}] if text.strip() else []
    else:
        blocks = _text_blocks(content, path)
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return blocks
    if not isinstance(tool_calls, list):
        raise TranslationError(f"{path}.tool_calls", "must be a list")
    for k, call in enumerate(tool_calls):
        # Paths are formatted only on error: this loop runs for every call of every request.
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise TranslationError(f"{path}.tool_calls.{k}", "only function tool calls work")
        function = call.get("function")
        if not isinstance(function, dict):
            raise TranslationError(f"{path}.tool_calls.{k}.function", "must be an object")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError(f"{path}.tool_calls.{k}.function.name", "must be non-empty")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not _VALID_ID.fullmatch(call_id):
            call_id = _tool_id(call_id, f"{path}.tool_calls.{k}.id")
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": name,
                "input": parse_tool_arguments(function.get("arguments")),
            }
        )
    return blocks


def _tool_result(message: JSONObject, path: str) -> JSONObject:
    block: JSONObject = {
        "type": "tool_result",
        "tool_use_id": _tool_id(message.get("tool_call_id"), f"{path}.tool_call_id"),
    }
    content = message.get("content")
    if isinstance(content, str):
        if content.startswith(ERROR_PREFIX):
            block["is_error"] = True
            content = content[len(ERROR_PREFIX) :]
        if content.strip():
            block["content"] = content
        return block
    blocks = _text_blocks(content, path)
    if blocks:
        block["content"] = blocks
    return block


def _tools(tools: object) -> list[JSONObject]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools", "must be a list")
    out: list[JSONObject] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise TranslationError(f"tools.{i}.type", "only function tools can be translated")
        if not isinstance(function, dict):
            raise TranslationError(f"tools.{i}.function", "must be an object")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError(f"tools.{i}.function.name", "must be a non-empty string")
        entry: JSONObject = {"name": name}
        description = function.get("description")
        if isinstance(description, str):
            entry["description"] = description
        schema = function.get("parameters")
        entry["input_schema"] = (
            schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
        )
        out.append(entry)
    return out


def _tool_choice(choice: object) -> JSONObject | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_TYPES:
            raise TranslationError("tool_choice", f"unsupported tool_choice {choice!r}")
        return {"type": _TOOL_CHOICE_TYPES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise TranslationError("tool_choice.function.name", "must be a non-empty string")
    return {"type": "tool", "name": name}


def _response_format(response_format: object, out: JSONObject) -> None:
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise TranslationError(
            "response_format",
            "json_schema structured output needs json_schema.schema for an Anthropic provider",
        )
    out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}


def _thinking(effort: object, out: JSONObject, turns: list[JSONObject]) -> None:
    if effort is None or (isinstance(effort, str) and effort in _NO_THINKING_EFFORTS):
        return
    if not isinstance(effort, str) or effort not in THINKING_BUDGET_BY_EFFORT:
        raise TranslationError("reasoning_effort", f"unsupported reasoning_effort {effort!r}")
    if out.get("tool_choice", {}).get("type") in ("any", "tool"):
        return  # Anthropic refuses thinking together with a forced tool
    last_assistant = next((t for t in reversed(turns) if t["role"] == "assistant"), None)
    if last_assistant and any(b["type"] == "tool_use" for b in last_assistant["content"]):
        return  # that turn would need a signed thinking block we do not have
    budget = THINKING_BUDGET_BY_EFFORT[effort]
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if out["max_tokens"] <= budget:
        out["max_tokens"] += budget
    out.pop("temperature", None)
    out.pop("top_p", None)
