"""OpenAI chat completion (non-stream) -> Anthropic message (protocol.md §4.2).

How it works: read ``choices[0].message`` and build the content list in Anthropic's order:
thinking (from ``reasoning_content`` / ``reasoning``), text, then one ``tool_use`` per tool call.

Choices worth knowing:

* Empty or whitespace-only text is never emitted, and a message with nothing to say gets
  ``content: []`` rather than a ``{"type":"text","text":""}`` block: Claude Code stores and
  replays assistant turns, and the API rejects empty text blocks in requests, which would
  poison the whole session (§6.2.1). An empty content list is a shape the real API also returns.
* Tool arguments (``parse_tool_arguments``): empty means ``{}``; JSON that is not an object, or
  not JSON at all, becomes ``{"raw_arguments": <the string>}``. Nothing is guessed or repaired,
  the model sees what it produced, and the client's schema check reports it.
* A tool call id that is missing, invalid for Anthropic (``^[a-zA-Z0-9_-]+$``) or repeated in
  the same message is replaced by ``toolu_`` + a hash of ``message_id`` and the call's index:
  unique, and the same on every retry of the same translation.
* ``thinking`` blocks carry ``signature: ""``: no provider but Anthropic mints one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from proxy.dialects.translate.common import finish_to_stop, openai_usage_to_anthropic
from proxy.errors import UpstreamBadResponseError

JSONObject = dict[str, Any]

_VALID_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def parse_tool_arguments(arguments: object) -> JSONObject:
    """OpenAI ``function.arguments`` -> Anthropic ``tool_use.input``. Never raises."""
    if isinstance(arguments, dict):  # a few servers send the object itself
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"raw_arguments": arguments}


def synthesized_tool_id(message_id: str, index: int) -> str:
    """A valid, deterministic Anthropic tool_use id for call ``index`` of ``message_id``."""
    digest = hashlib.sha256(f"{message_id}:{index}".encode()).hexdigest()
    return f"toolu_{digest[:24]}"


def is_valid_tool_id(tool_id: object) -> bool:
    return isinstance(tool_id, str) and _VALID_TOOL_ID.fullmatch(tool_id) is not None


def openai_to_anthropic_response(body: JSONObject, *, model: str, message_id: str) -> JSONObject:
    """Translate a provider's chat completion into the Anthropic message the client expects.

    ``model`` is the name the client asked for (Claude Code keys cost and context size on it).
    Raises UpstreamBadResponseError when the body is not a chat completion.
    """
    if not isinstance(body, dict):
        raise UpstreamBadResponseError("provider response is not a JSON object")
    error = body.get("error")
    if error is not None:
        detail = error.get("message") if isinstance(error, dict) else error
        raise UpstreamBadResponseError(f"provider returned an error in a 200 response: {detail}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamBadResponseError("provider response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UpstreamBadResponseError("provider response choice has no message")

    content: list[JSONObject] = []
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _message_text(message.get("content"))
    if not text.strip():
        refusal = message.get("refusal")
        text = refusal if isinstance(refusal, str) else ""
    if text.strip():
        content.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls")
    has_tool_calls = False
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise UpstreamBadResponseError("provider response tool_calls is not a list")
        seen: set[str] = set()
        for index, call in enumerate(tool_calls):
            content.append(_tool_use(call, index, message_id, seen))
        has_tool_calls = True

    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": finish_to_stop(choice.get("finish_reason"), has_tool_calls=has_tool_calls),
        "stop_sequence": None,
        "usage": openai_usage_to_anthropic(body.get("usage")),
    }


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _tool_use(call: object, index: int, message_id: str, seen: set[str]) -> JSONObject:
    if not isinstance(call, dict):
        raise UpstreamBadResponseError(f"provider tool call {index} is not an object")
    function = call.get("function")
    if not isinstance(function, dict):
        raise UpstreamBadResponseError(f"provider tool call {index} has no function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise UpstreamBadResponseError(f"provider tool call {index} has no function name")
    raw_id = call.get("id")
    call_id = raw_id if isinstance(raw_id, str) and is_valid_tool_id(raw_id) else ""
    if not call_id or call_id in seen:
        call_id = synthesized_tool_id(message_id, index)
    seen.add(call_id)
    return {
        "type": "tool_use",
        "id": call_id,
        "name": name,
        "input": parse_tool_arguments(function.get("arguments")),
    }
