"""Anthropic Messages request -> OpenAI Chat Completions request (protocol.md §4.1).

How it works: one pass over ``system``, ``messages`` and ``tools``, building new dicts and
lists only at the levels that change shape. Leaves that pass through unchanged (tool input
schemas, image data strings) are shared with the input, never copied, so a 100 KB Claude Code
request costs tens of microseconds. Neither the input nor the output may be mutated afterwards.

Choices worth knowing:

* The ``x-anthropic-billing-header: ...`` system block is dropped: it only means something to
  Anthropic, and its per-session suffix at the very start of the prompt would defeat the
  upstream's prefix cache.
* A user message carrying ``tool_result`` blocks becomes one ``tool`` message per block, then
  one ``user`` message with everything else (text beside the results, and images from inside
  results, which tool messages cannot hold), in the original order.
* Assistant text blocks are concatenated without a separator (blocks split by citations must
  rejoin exactly). A turn with only tool calls gets ``content: None``; a turn with nothing
  OpenAI can carry (e.g. only thinking) is left out.
* ``thinking`` -> ``reasoning_effort``: a budget below 4096 is ``low``, below 16384 ``medium``,
  else ``high`` (the inverse of o2a_request's 1024/8192/24576, so effort round-trips);
  ``adaptive`` uses ``output_config.effort`` (``max`` -> ``high``) and sends nothing without it.
  With no ``thinking`` key, ``output_config.effort`` alone decides (Claude Code sends that for
  model names it does not know); ``thinking: {"type": "disabled"}`` sends no effort, whatever
  ``output_config`` says (Claude Code's title call on the main model). The pipeline then keeps
  ``reasoning_effort`` only for models that take it.
* ``output_config.format`` (``json_schema``, the structured-outputs beta) ->
  ``response_format: {"type": "json_schema", "json_schema": {"name", "schema"}}``; providers
  without it take the ``structuredoutput`` transformer's fallback (docs/translation.md).
* Reasoning models (``uses_max_completion_tokens``) get ``max_completion_tokens`` and no
  ``temperature``/``top_p``: they reject any value but the default.
* ``metadata.user_id`` up to 64 characters passes as ``user``; longer ones (Claude Code's JSON
  string) become ``u-`` + 40 hex digits of their SHA-256: stable, and no device id leaks.
* Server tools (a ``type`` other than ``custom``: web_search_*, bash_*, text_editor_*,
  code_execution_*, ...) are dropped. With no tools left, ``tool_choice`` goes too: OpenAI
  rejects an empty ``tools`` list and a ``tool_choice`` without tools.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from proxy.errors import TranslationError

MAX_OPENAI_STOP_SEQUENCES = 4
MAX_OPENAI_USER_CHARS = 64
BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
ERROR_PREFIX = "Error: "  # marks is_error tool results; o2a_request reads it back
# OpenAI wants a name for a json_schema response format; Anthropic's has none.
STRUCTURED_OUTPUT_NAME = "output"

# o1, o3-mini, o4-mini-2025-04-16, gpt-5, gpt-5.1, gpt-5-mini, openai/o3 ...
_REASONING_MODEL = re.compile(r"(?:^|/)(?:o\d+|gpt-5)(?:$|[-._:])")

_EFFORT_BY_LEVEL = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_LOW_BUDGET_BELOW = 4096
_MEDIUM_BUDGET_BELOW = 16384

_TOOL_CHOICE_TYPES = {"auto": "auto", "any": "required", "none": "none"}

JSONObject = dict[str, Any]


def uses_max_completion_tokens(model: str) -> bool:
    """True for OpenAI reasoning models (o-series, gpt-5*), which reject ``max_tokens``."""
    return _REASONING_MODEL.search(model.lower()) is not None


def reasoning_effort_for(thinking: object, output_config: object) -> str | None:
    """The ``reasoning_effort`` an Anthropic ``thinking`` (+ ``output_config``) asks for."""
    if thinking is None and isinstance(output_config, dict):
        effort = output_config.get("effort")
        return _EFFORT_BY_LEVEL.get(effort) if isinstance(effort, str) else None
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return "medium"
        if budget < _LOW_BUDGET_BELOW:
            return "low"
        return "medium" if budget < _MEDIUM_BUDGET_BELOW else "high"
    if kind == "adaptive" and isinstance(output_config, dict):
        effort = output_config.get("effort")
        if isinstance(effort, str):
            return _EFFORT_BY_LEVEL.get(effort)
    return None


def response_format_for(fmt: object) -> JSONObject | None:
    """OpenAI's ``response_format`` for an Anthropic ``output_config.format``, or None."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise TranslationError("output_config.format.schema", "must be a JSON schema object")
    return {
        "type": "json_schema",
        "json_schema": {"name": STRUCTURED_OUTPUT_NAME, "schema": schema},
    }


def openai_user_id(user_id: str) -> str:
    """A stable OpenAI ``user`` (at most 64 characters) for an Anthropic ``metadata.user_id``."""
    if len(user_id) <= MAX_OPENAI_USER_CHARS:
        return user_id
    return "u-" + hashlib.sha256(user_id.encode()).hexdigest()[:40]


def anthropic_to_openai_request(
    body: JSONObject, *, model: str, echo_reasoning: bool = False
) -> JSONObject:
    """Translate a client's ``/v1/messages`` body into a chat completion body for ``model``.

    ``echo_reasoning`` puts replayed thinking text back as ``reasoning_content`` on assistant
    messages (DeepSeek's reasoner requires it on tool-call turns); otherwise thinking is dropped.
    Raises TranslationError naming the field that cannot be expressed.
    """
    messages: list[JSONObject] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        raise TranslationError("messages", "must be a list")
    for i, message in enumerate(raw_messages):
        _translate_message(message, f"messages.{i}", messages, echo_reasoning)

    out: JSONObject = {"model": model, "messages": messages}
    reasoning_model = uses_max_completion_tokens(model)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        out["max_completion_tokens" if reasoning_model else "max_tokens"] = max_tokens
    if not reasoning_model:
        for key in ("temperature", "top_p"):
            if body.get(key) is not None:
                out[key] = body[key]
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list):
            raise TranslationError("stop_sequences", "must be a list of strings")
        if len(stops) > MAX_OPENAI_STOP_SEQUENCES:
            raise TranslationError(
                "stop_sequences",
                f"OpenAI-dialect providers accept at most {MAX_OPENAI_STOP_SEQUENCES} "
                f"stop sequences, got {len(stops)}",
            )
        out["stop"] = stops
    output_config = body.get("output_config")
    effort = reasoning_effort_for(body.get("thinking"), output_config)
    if effort is not None:
        out["reasoning_effort"] = effort
    if isinstance(output_config, dict):
        response_format = response_format_for(output_config.get("format"))
        if response_format is not None:
            out["response_format"] = response_format
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        user_id = metadata.get("user_id")
        if isinstance(user_id, str) and user_id:
            out["user"] = openai_user_id(user_id)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _system_text(system: object) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise TranslationError("system", "must be a string or a list of text blocks")
    texts: list[str] = []
    for j, block in enumerate(system):
        text = _text_of(block, f"system.{j}")
        if text and not text.startswith(BILLING_HEADER_PREFIX):
            texts.append(text)
    return "\n\n".join(texts)


def _text_of(block: object, path: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise TranslationError(path, "only text blocks are allowed here")
    text = block.get("text")
    if not isinstance(text, str):
        raise TranslationError(f"{path}.text", "must be a string")
    return text


def _translate_message(
    message: object, path: str, out: list[JSONObject], echo_reasoning: bool
) -> None:
    if not isinstance(message, dict):
        raise TranslationError(path, "must be an object")
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        _user_message(content, path, out)
    elif role == "assistant":
        _assistant_message(content, path, out, echo_reasoning)
    elif role == "system":
        # The mid-conversation system beta: OpenAI takes system messages anywhere, in place.
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "\n\n".join(
                _text_of(block, f"{path}.content.{j}") for j, block in enumerate(content)
            )
        else:
            raise TranslationError(f"{path}.content", "must be a string or a list of blocks")
        if text:
            out.append({"role": "system", "content": text})
    else:
        raise TranslationError(f"{path}.role", f"unsupported role {role!r}")


def _user_message(content: object, path: str, out: list[JSONObject]) -> None:
    if isinstance(content, str):
        if content:
            out.append({"role": "user", "content": content})
        return
    if not isinstance(content, list):
        raise TranslationError(f"{path}.content", "must be a string or a list of blocks")
    # Paths are formatted only on error: this loop runs for every block of every request.
    where = f"{path}.content"
    parts: list[JSONObject] = []  # everything that is not a tool result, in order
    for j, block in enumerate(content):
        btype = block.get("type") if isinstance(block, dict) else None
        if btype == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise TranslationError(f"{where}.{j}.text", "must be a string")
            if text:
                parts.append({"type": "text", "text": text})
        elif btype == "image":
            parts.append(_image_part(block, where, j))
        elif btype == "tool_result":
            out.append(_tool_message(block, f"{where}.{j}", parts))
        else:
            raise TranslationError(f"{where}.{j}", f"block type {btype!r} cannot be translated")
    if not parts:
        return
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    else:
        out.append({"role": "user", "content": parts})


def _image_part(block: JSONObject, where: str, j: int) -> JSONObject:
    source = block.get("source")
    path = f"{where}.{j}"
    if not isinstance(source, dict):
        raise TranslationError(f"{path}.source", "must be an object")
    stype = source.get("type")
    if stype == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str):
            raise TranslationError(f"{path}.source", "needs string media_type and data")
        url = f"data:{media_type};base64,{data}"
    elif stype == "url":
        raw_url = source.get("url")
        if not isinstance(raw_url, str):
            raise TranslationError(f"{path}.source.url", "must be a string")
        url = raw_url
    else:
        raise TranslationError(f"{path}.source", f"image source {stype!r} cannot be translated")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: JSONObject, path: str, images_out: list[JSONObject]) -> JSONObject:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise TranslationError(f"{path}.tool_use_id", "must be a non-empty string")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts: list[str] = []
        where = f"{path}.content"
        for k, inner in enumerate(content):
            itype = inner.get("type") if isinstance(inner, dict) else None
            if itype == "text":
                texts.append(_text_of(inner, f"{where}.{k}"))
            elif itype == "image":
                # Tool messages hold text only: the image rides in the user message after them.
                images_out.append(_image_part(inner, where, k))
            else:
                raise TranslationError(f"{where}.{k}", f"block type {itype!r} cannot be translated")
        text = "\n".join(t for t in texts if t)
    else:
        raise TranslationError(f"{path}.content", "must be a string or a list of blocks")
    if block.get("is_error") is True:
        text = ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _assistant_message(
    content: object, path: str, out: list[JSONObject], echo_reasoning: bool
) -> None:
    if isinstance(content, str):
        if content:
            out.append({"role": "assistant", "content": content})
        return
    if not isinstance(content, list):
        raise TranslationError(f"{path}.content", "must be a string or a list of blocks")
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSONObject] = []
    where = f"{path}.content"
    for j, block in enumerate(content):
        btype = block.get("type") if isinstance(block, dict) else None
        if btype == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise TranslationError(f"{where}.{j}.text", "must be a string")
            texts.append(text)
        elif btype == "tool_use":
            calls.append(_tool_call(block, where, j))
        elif btype == "thinking":
            if echo_reasoning:
                thought = block.get("thinking")
                if isinstance(thought, str):
                    reasoning.append(thought)
        elif btype == "redacted_thinking":
            continue  # opaque to every provider but Anthropic
        else:
            raise TranslationError(f"{where}.{j}", f"block type {btype!r} cannot be translated")
    text = "".join(texts)
    if not text and not calls:
        return
    message: JSONObject = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    thought_text = "".join(reasoning)
    if thought_text:
        message["reasoning_content"] = thought_text
    out.append(message)


def _tool_call(block: JSONObject, where: str, j: int) -> JSONObject:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError(f"{where}.{j}.id", "must be a non-empty string")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{where}.{j}.name", "must be a non-empty string")
    tool_input = block.get("input")
    try:
        arguments = orjson.dumps({} if tool_input is None else tool_input).decode()
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise TranslationError(f"{where}.{j}.input", f"cannot encode as JSON: {exc}") from None
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tools(tools: object) -> list[JSONObject]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools", "must be a list")
    out: list[JSONObject] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise TranslationError(f"tools.{i}", "must be an object")
        if tool.get("type", "custom") != "custom":
            continue  # an Anthropic server tool: nothing on the OpenAI side runs it
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError(f"tools.{i}.name", "must be a non-empty string")
        function: JSONObject = {"name": name}
        description = tool.get("description")
        if isinstance(description, str):
            function["description"] = description
        schema = tool.get("input_schema")
        function["parameters"] = schema if isinstance(schema, dict) else {"type": "object"}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object, out: JSONObject) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice", "must be an object")
    ctype = choice.get("type")
    if ctype in _TOOL_CHOICE_TYPES:
        out["tool_choice"] = _TOOL_CHOICE_TYPES[ctype]
    elif ctype == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("tool_choice.name", "must be a non-empty string")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise TranslationError("tool_choice.type", f"unsupported tool_choice type {ctype!r}")
    if choice.get("disable_parallel_tool_use") is True and ctype != "none":
        out["parallel_tool_calls"] = False
