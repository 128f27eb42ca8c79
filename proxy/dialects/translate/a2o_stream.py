"""Anthropic Messages stream -> OpenAI chat.completion.chunk stream (protocol.md §5.3).

A sans-I/O state machine: the caller decodes SSE, parses each event's data with orjson and
hands ``(event name, data)`` to `on_event`; the end of the upstream body goes to `on_eof` and a
transport failure to `on_error`. Each call returns OpenAI chunk objects, which
`encode_openai_chunks` renders as SSE (with ``data: [DONE]`` when asked).

Mapping: ``message_start`` -> the role chunk; text -> ``content``; thinking ->
``reasoning_content`` (signatures cannot be represented and are dropped); each ``tool_use``
block -> a ``tool_calls`` entry whose ``index`` counts tool blocks only, its
``input_json_delta`` fragments -> ``arguments`` fragments (empty ones skipped); ``ping``,
``signature_delta`` and unknown events -> nothing. The first ``message_delta`` -> the finish
chunk. ``message_stop`` -> the usage chunk (``choices: []``, only with include_usage) and
``done``, so the caller writes ``[DONE]``. The usage chunk waits for ``message_stop`` because
the grammar allows several cumulative ``message_delta`` events; in practice they are adjacent.
With include_usage every other chunk carries ``"usage": null``, as OpenAI's does.

An Anthropic ``error`` event, `on_error`, or an upstream that ends before any ``message_delta``
produces one ``{"error": {...}}`` object (OpenAI shape) and no ``[DONE]``. After the end every
call returns nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from proxy.dialects.errors import error_body
from proxy.dialects.translate.common import anthropic_usage_to_openai, stop_to_finish
from proxy.filters.api import Dialect

OpenAIChunk = dict[str, Any]

_DONE = b"data: [DONE]\n\n"
_USAGE_KEYS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def encode_openai_chunks(chunks: Iterable[OpenAIChunk], done: bool = False) -> bytes:
    """``data: {json}\\n\\n`` per chunk, then ``data: [DONE]\\n\\n`` when `done`."""
    body = b"".join([b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks])
    return body + _DONE if done else body


def openai_error_chunk(kind: str, message: str) -> OpenAIChunk:
    """The in-band OpenAI error object for a neutral error kind (same mapping as the error
    responses, so a client sees one shape whether the stream had started or not)."""
    chunk: OpenAIChunk = orjson.loads(error_body(Dialect.OPENAI, kind, message))
    return chunk


class AnthropicToOpenAIStream:
    """Translate one streamed Anthropic message into one OpenAI completion stream.

    `done` (equal to `finished`) turns True on the call that completed the stream normally:
    the caller then writes ``[DONE]`` once. `usage` is the OpenAI usage sent to the client;
    `upstream_usage` the merged Anthropic usage it came from.
    """

    def __init__(
        self, model: str, completion_id: str, created: int, *, include_usage: bool
    ) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage
        self.finished = False
        self.done = False
        self.ended = False  # finished or failed: nothing more will come
        self.upstream_usage: dict[str, int] = {}
        self.usage: dict[str, Any] = anthropic_usage_to_openai(self.upstream_usage)
        self._started = False
        self._finish: str | None = None
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._start_input: dict[int, str] = {}  # tool input given whole at block start
        self._has_tools = False

    def on_event(self, name: str, data: object) -> list[OpenAIChunk]:
        if self.ended:
            return []
        if not isinstance(data, dict):
            return self.on_error("api_error", "upstream sent an event that is not an object")
        if not name or name == "message":  # a data-only stream: the type names the event
            kind = data.get("type")
            name = kind if isinstance(kind, str) else ""
        if name == "content_block_delta":
            return self._block_delta(data)
        if name == "content_block_start":
            return self._block_start(data)
        if name == "content_block_stop":
            index = data.get("index")
            if (
                not self._start_input
                or not isinstance(index, int)
                or index not in self._start_input
            ):
                return []
            arguments = self._start_input.pop(index)
            return self._lead({"tool_calls": [self._arguments(index, arguments)]})
        if name == "message_delta":
            return self._message_delta(data)
        if name == "message_stop":
            return self._complete()
        if name == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._merge_usage(message.get("usage"))
            return [] if self._started else self._lead(None)
        if name == "error":
            error = data.get("error")
            if not isinstance(error, dict):
                error = {}
            kind, message = error.get("type"), error.get("message")
            return self.on_error(
                kind if isinstance(kind, str) and kind else "api_error",
                message if isinstance(message, str) and message else "upstream error",
            )
        return []  # ping and events this dialect has no use for

    def on_eof(self) -> list[OpenAIChunk]:
        """The upstream body ended: complete if the stop reason arrived, else an error."""
        if self.ended:
            return []
        if self._finish is None:
            return self.on_error("api_error", "upstream stream ended before the response finished")
        return self._complete()

    def on_error(self, kind: str, message: str) -> list[OpenAIChunk]:
        if self.ended:
            return []
        self.ended = True
        return [openai_error_chunk(kind, message)]

    # -- events ----------------------------------------------------------------------------

    def _block_delta(self, data: dict[str, Any]) -> list[OpenAIChunk]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return self._lead({"content": text}) if text and isinstance(text, str) else []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            index = data.get("index")
            if not fragment or not isinstance(fragment, str) or index not in self._tool_index:
                return []
            self._start_input.pop(index, None)  # the deltas carry the input
            return self._lead({"tool_calls": [self._arguments(index, fragment)]})
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return self._lead({"reasoning_content": text}) if text and isinstance(text, str) else []
        return []  # signature_delta, citations_delta

    def _block_start(self, data: dict[str, Any]) -> list[OpenAIChunk]:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return []
        kind = block.get("type")
        if kind == "tool_use":
            k = self._tool_index[index] = len(self._tool_index)
            self._has_tools = True
            tool_input = block.get("input")
            if tool_input:  # Anthropic sends {} and streams the input; some servers send it here
                self._start_input[index] = orjson.dumps(tool_input).decode()
            call = {
                "index": k,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return self._lead({"tool_calls": [call]})
        if kind == "text":
            text = block.get("text")
            return self._lead({"content": text}) if text and isinstance(text, str) else []
        if kind == "thinking":
            text = block.get("thinking")
            return self._lead({"reasoning_content": text}) if text and isinstance(text, str) else []
        return []  # redacted_thinking and server-side blocks have no OpenAI form

    def _message_delta(self, data: dict[str, Any]) -> list[OpenAIChunk]:
        self._merge_usage(data.get("usage"))
        if self._finish is not None:
            return []  # a later cumulative update: only the usage changes
        delta = data.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        self._finish = stop_to_finish(stop)
        return self._lead({}, self._finish)

    def _complete(self) -> list[OpenAIChunk]:
        out: list[OpenAIChunk] = []
        if self._finish is None:  # message_stop without message_delta
            self._finish = "tool_calls" if self._has_tools else "stop"
            out = self._lead({}, self._finish)
        self.usage = anthropic_usage_to_openai(self.upstream_usage)
        if self.include_usage:
            out.append(
                {
                    "id": self.completion_id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": self.usage,
                }
            )
        self.finished = self.done = self.ended = True
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _lead(self, delta: dict[str, Any] | None, finish: str | None = None) -> list[OpenAIChunk]:
        """The chunk for `delta`, preceded by the role chunk if none was sent yet."""
        out: list[OpenAIChunk] = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}, None))
        if delta is not None:
            out.append(self._chunk(delta, finish))
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> OpenAIChunk:
        chunk: OpenAIChunk = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _arguments(self, index: int, fragment: str) -> dict[str, Any]:
        return {"index": self._tool_index[index], "function": {"arguments": fragment}}

    def _merge_usage(self, usage: object) -> None:
        """Anthropic usage is cumulative: later values replace earlier ones, key by key."""
        if not isinstance(usage, dict):
            return
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self.upstream_usage[key] = value
