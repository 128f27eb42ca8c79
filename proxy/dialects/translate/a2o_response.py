"""Anthropic message (non-stream) -> OpenAI chat completion (protocol.md §5.2).

How it works: one pass over the message's content. Text blocks are concatenated into
``message.content`` (``None`` when there are none), ``tool_use`` blocks become ``tool_calls``
with their input serialised as the ``arguments`` string, and thinking text goes to the
non-standard ``reasoning_content`` that DeepSeek-style clients read. Thinking signatures and
redacted thinking cannot be represented and are dropped; so are server-tool blocks
(``server_tool_use``, ``web_search_tool_result``, ...), whose outcome the text already carries.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.dialects.translate.common import anthropic_usage_to_openai, stop_to_finish
from proxy.errors import UpstreamBadResponseError

JSONObject = dict[str, Any]


def anthropic_to_openai_response(
    body: JSONObject, *, model: str, created: int, completion_id: str | None = None
) -> JSONObject:
    """Translate a provider's Anthropic message into the chat completion the client expects.

    ``model`` is the name the client asked for; ``created`` the Unix time to report;
    ``completion_id`` defaults to ``chatcmpl-`` + the message id.
    Raises UpstreamBadResponseError when the body is not an Anthropic message.
    """
    if not isinstance(body, dict):
        raise UpstreamBadResponseError("provider response is not a JSON object")
    if body.get("type") == "error":
        error = body.get("error")
        detail = error.get("message") if isinstance(error, dict) else error
        raise UpstreamBadResponseError(f"provider returned an error in a 200 response: {detail}")
    content = body.get("content")
    if not isinstance(content, list):
        raise UpstreamBadResponseError("provider response has no content list")

    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[JSONObject] = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise UpstreamBadResponseError(f"provider content block {index} is not an object")
        btype = block.get("type")
        if btype == "text":
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif btype == "tool_use":
            tool_calls.append(_tool_call(block, index))
        elif btype == "thinking":
            thought = block.get("thinking")
            if isinstance(thought, str):
                reasoning.append(thought)

    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else None}
    message["refusal"] = None
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if completion_id is None:
        message_id = body.get("id")
        completion_id = f"chatcmpl-{message_id}" if isinstance(message_id, str) else "chatcmpl"
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": stop_to_finish(body.get("stop_reason")),
            }
        ],
        "usage": anthropic_usage_to_openai(body.get("usage")),
    }


def _tool_call(block: JSONObject, index: int) -> JSONObject:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str) or not call_id or not name:
        raise UpstreamBadResponseError(f"provider tool_use block {index} lacks an id or a name")
    tool_input = block.get("input")
    try:
        arguments = orjson.dumps({} if tool_input is None else tool_input).decode()
    except orjson.JSONEncodeError as exc:
        raise UpstreamBadResponseError(f"provider tool_use block {index}: {exc}") from None
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
