"""Tool-call transformers: ``enhancetool`` (repair broken arguments) and ``tooluse`` (make
models that drift out of tool use keep calling tools).

``enhancetool`` holds tool-call arguments back instead of streaming them: OpenAI fragments
are collected per (choice, tool index) and released as one repaired fragment just before the
choice's finish chunk (parallel calls may interleave, so no earlier moment is safe);
Anthropic ``input_json_delta`` fragments are collected per block and released just before
that block's ``content_block_stop``. Arguments that are already a valid JSON object pass
unchanged; others go through `repair_arguments`; what cannot be repaired becomes ``{}`` and
the raw text is kept in the request state (``unrepaired``) for logs. A call whose arguments
grow past `MAX_BUFFERED_ARGUMENT_CHARS` is released as it came and streamed from then on.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.dialects.transformers.api import BaseTransformer, JSONObject, TransformContext
from proxy.dialects.transformers.common import (
    BOTH_DIALECTS,
    OPENAI_ONLY,
    choice_index,
    choices,
    chunk_like,
    is_empty_chunk,
    per_request,
    split_finish,
)
from proxy.dialects.transformers.json_repair import JsonRepairError, repair_arguments
from proxy.filters.api import Dialect

MAX_BUFFERED_ARGUMENT_CHARS = 4 * 1024 * 1024  # per call; a Write of a big file fits
MAX_UNREPAIRED_KEPT = 8  # raw argument texts kept per request for logs
MAX_UNREPAIRED_CHARS = 2048  # of each
EXIT_TOOL = "ExitTool"
_TOOL_FINISHES = ("tool_calls", "function_call")


@dataclass(slots=True)
class _Arguments:
    parts: list[str] = field(default_factory=list)
    size: int = 0
    passthrough: bool = False  # over the bound: fragments stream as they come

    def add(self, fragment: str) -> str | None:
        """Buffer `fragment`; on overflow return everything so far, to be sent as is."""
        if self.passthrough:
            return fragment
        if self.size + len(fragment) > MAX_BUFFERED_ARGUMENT_CHARS:
            self.passthrough = True
            released = "".join(self.parts) + fragment
            self.parts.clear()
            return released
        self.parts.append(fragment)
        self.size += len(fragment)
        return None


@dataclass(slots=True)
class _EnhanceState:
    calls: dict[tuple[int, int], _Arguments] = field(default_factory=dict)  # OpenAI
    blocks: dict[int, _Arguments] = field(default_factory=dict)  # Anthropic tool_use blocks
    template: JSONObject | None = None  # the last OpenAI chunk, for synthesized chunks
    unrepaired: list[str] = field(default_factory=list)


class EnhanceToolTransformer(BaseTransformer):
    name = "enhancetool"
    dialects = BOTH_DIALECTS

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        state = per_request(ctx, self, _EnhanceState)
        if ctx.dialect is Dialect.ANTHROPIC:
            for block in _list(body.get("content")):
                if block.get("type") == "tool_use" and isinstance(block.get("input"), str):
                    block["input"] = self._repaired(block["input"], state)
            return body
        for choice in choices(body):
            message = choice.get("message")
            for call in _list(message.get("tool_calls") if isinstance(message, dict) else None):
                function = call.get("function")
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    function["arguments"] = self._repair(function["arguments"], state)
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        state = per_request(ctx, self, _EnhanceState)
        if ctx.dialect is Dialect.ANTHROPIC:
            return self._anthropic_event(obj, state)
        return self._openai_chunk(obj, state)

    def stream_end(self, ctx: TransformContext) -> list[JSONObject]:
        state = per_request(ctx, self, _EnhanceState)
        if ctx.dialect is Dialect.ANTHROPIC:
            return [self._anthropic_release(i, state) for i in sorted(state.blocks)]
        if state.template is None:
            return []
        return self._release(state, {c for c, _ in state.calls}, state.template)

    def _openai_chunk(self, chunk: JSONObject, state: _EnhanceState) -> list[JSONObject]:
        state.template = chunk
        trimmed = False
        finishing: set[int] = set()
        for choice in choices(chunk):
            index = choice_index(choice)
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                kept = [c for c in delta["tool_calls"] if self._hold(c, index, state)]
                trimmed = trimmed or len(kept) != len(delta["tool_calls"])
                if kept:
                    delta["tool_calls"] = kept
                else:
                    del delta["tool_calls"]
            if choice.get("finish_reason") is not None and any(c == index for c, _ in state.calls):
                finishing.add(index)
        if not finishing:
            return [] if trimmed and is_empty_chunk(chunk) else [chunk]
        before, finish = split_finish(chunk, finishing)
        out = [before] if before is not None else []
        return out + self._release(state, finishing, chunk) + [finish]

    def _hold(self, call: Any, choice: int, state: _EnhanceState) -> bool:
        """Buffer the call entry's arguments; False when nothing else is left in it."""
        if not isinstance(call, dict):
            return True
        function = call.get("function")
        index = call.get("index", 0)
        key = (choice, index if isinstance(index, int) else 0)
        arguments = state.calls.setdefault(key, _Arguments())
        fragment = function.get("arguments") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(fragment, str):
            return True
        released = arguments.add(fragment)
        if released is not None:
            function["arguments"] = released
            return True
        if "name" in function or "id" in call:
            function["arguments"] = ""  # the opening entry stays, without its fragment
            return True
        return False

    def _release(
        self, state: _EnhanceState, indexes: set[int], template: JSONObject
    ) -> list[JSONObject]:
        out: list[JSONObject] = []
        for key in sorted(k for k in state.calls if k[0] in indexes):
            arguments = state.calls.pop(key)
            if arguments.passthrough:
                continue
            text = self._repair("".join(arguments.parts), state)
            call = {"index": key[1], "function": {"arguments": text}}
            delta = {"tool_calls": [call]}
            out.append(
                chunk_like(template, {"index": key[0], "delta": delta, "finish_reason": None})
            )
        return out

    def _anthropic_event(self, event: JSONObject, state: _EnhanceState) -> list[JSONObject]:
        kind = event.get("type")
        index = event.get("index")
        if not isinstance(index, int):
            return [event]
        if kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                state.blocks[index] = _Arguments()
        elif kind == "content_block_delta" and index in state.blocks:
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("partial_json"), str):
                released = state.blocks[index].add(delta["partial_json"])
                if released is None:
                    return []
                delta["partial_json"] = released
        elif kind == "content_block_stop" and index in state.blocks:
            arguments = state.blocks[index]
            if arguments.passthrough or not arguments.parts:
                del state.blocks[index]
                return [event]
            return [self._anthropic_release(index, state), event]
        return [event]

    def _anthropic_release(self, index: int, state: _EnhanceState) -> JSONObject:
        arguments = state.blocks.pop(index)
        text = "" if arguments.passthrough else self._repair("".join(arguments.parts), state)
        delta = {"type": "input_json_delta", "partial_json": text}
        return {"type": "content_block_delta", "index": index, "delta": delta}

    def _repair(self, raw: str, state: _EnhanceState) -> str:
        """Arguments as JSON object text: `raw` itself when it already is one."""
        try:
            if isinstance(orjson.loads(raw), dict):
                return raw
        except orjson.JSONDecodeError:
            pass
        repaired = self._repaired(raw, state)
        try:
            return orjson.dumps(repaired).decode()
        except TypeError:  # an integer beyond 64 bits: the standard library can write it
            return json.dumps(repaired, ensure_ascii=False, separators=(",", ":"))

    def _repaired(self, raw: str, state: _EnhanceState) -> dict[str, Any]:
        try:
            return repair_arguments(raw)
        except JsonRepairError:
            if len(state.unrepaired) < MAX_UNREPAIRED_KEPT:
                state.unrepaired.append(raw[:MAX_UNREPAIRED_CHARS])
            return {}


def unrepaired_arguments(ctx: TransformContext) -> list[str]:
    """Raw argument texts that `enhancetool` replaced with ``{}`` in this request."""
    found: list[str] = []
    for key, value in ctx.state.items():
        if key.startswith("enhancetool@") and isinstance(value, _EnhanceState):
            found.extend(value.unrepaired)
    return found


_EXIT_TOOL_SPEC: JSONObject = {
    "type": "function",
    "function": {
        "name": EXIT_TOOL,
        "description": (
            "Call this only when none of the other tools fits the task. Its `response` is "
            "shown to the user as your answer, exactly as written."
        ),
        "parameters": {
            "type": "object",
            "properties": {"response": {"type": "string", "description": "Your answer."}},
            "required": ["response"],
        },
    },
}
_REMINDER = (
    "<system-reminder>Tool mode is on: act through the tools. When no tool fits, call "
    f"`{EXIT_TOOL}` with your answer; that is the only way to answer without a tool."
    "</system-reminder>"
)


@dataclass(slots=True)
class _ExitCall:
    index: int | None = None
    parts: list[str] = field(default_factory=list)
    size: int = 0
    other_calls: bool = False


class ToolUseTransformer(BaseTransformer):
    """``tooluse``: for models (DeepSeek-chat style) that stop calling tools mid-task.

    Requests with tools (and ``tool_choice`` absent or ``auto``) get ``tool_choice:
    "required"``, an extra ``ExitTool`` function with one ``response`` argument, and a short
    reminder appended to the system message. Responses: an ``ExitTool`` call becomes plain
    assistant text (its ``response``), and ``finish_reason`` ``tool_calls`` becomes ``stop``
    when no other call remains. In streams the ExitTool call is held back and its text is
    emitted just before the finish chunk. (claude-code-router's version also parses XML-style
    tool calls out of text for a fixed list of tool names; that part is left out.)"""

    name = "tooluse"
    dialects = OPENAI_ONLY

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        tools = body.get("tools")
        choice = body.get("tool_choice")
        if not isinstance(tools, list) or not tools or choice not in (None, "auto"):
            return body
        out = {**body, "tool_choice": "required"}
        if not any(_function_name(tool) == EXIT_TOOL for tool in tools):
            out["tools"] = [*tools, copy.deepcopy(_EXIT_TOOL_SPEC)]
        messages = body.get("messages")
        if isinstance(messages, list):
            out["messages"] = _with_reminder(messages)
        return out

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        for choice in choices(body):
            message = choice.get("message")
            if not isinstance(message, dict) or not isinstance(message.get("tool_calls"), list):
                continue
            calls = message["tool_calls"]
            exits = [c for c in calls if _function_name(c) == EXIT_TOOL]
            if not exits:
                continue
            rest = [c for c in calls if _function_name(c) != EXIT_TOOL]
            texts = [_exit_text(_arguments_of(c)) for c in exits]
            content = message.get("content")
            joined = "\n".join(
                t for t in [content if isinstance(content, str) else "", *texts] if t
            )
            message["content"] = joined or None
            if rest:
                message["tool_calls"] = rest
            else:
                del message["tool_calls"]
                if choice.get("finish_reason") in _TOOL_FINISHES:
                    choice["finish_reason"] = "stop"
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        state: dict[int, _ExitCall] = per_request(ctx, self, dict)
        trimmed = False
        finishing: set[int] = set()
        for choice in choices(obj):
            index = choice_index(choice)
            exit_call = state.setdefault(index, _ExitCall())
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                kept = [c for c in delta["tool_calls"] if not _take_exit(c, exit_call)]
                trimmed = trimmed or len(kept) != len(delta["tool_calls"])
                if kept:
                    delta["tool_calls"] = kept
                else:
                    del delta["tool_calls"]
            if choice.get("finish_reason") is not None and exit_call.index is not None:
                finishing.add(index)
        if not finishing:
            return [] if trimmed and is_empty_chunk(obj) else [obj]
        before, finish = split_finish(obj, finishing)
        out = [before] if before is not None else []
        for choice in finish["choices"]:
            exit_call = state.pop(choice["index"])
            text = _exit_text("".join(exit_call.parts))
            if text:
                delta = {"content": text}
                out.append(
                    chunk_like(
                        obj, {"index": choice["index"], "delta": delta, "finish_reason": None}
                    )
                )
            if not exit_call.other_calls and choice["finish_reason"] in _TOOL_FINISHES:
                choice["finish_reason"] = "stop"
        return [*out, finish]


def _take_exit(call: Any, exit_call: _ExitCall) -> bool:
    """True when this tool-call entry belongs to the ExitTool call (and was buffered)."""
    if not isinstance(call, dict):
        return False
    index = call.get("index", 0)
    function = call.get("function")
    if _function_name(call) == EXIT_TOOL:
        exit_call.index = index
    elif index != exit_call.index or exit_call.index is None:
        exit_call.other_calls = True
        return False
    fragment = function.get("arguments") if isinstance(function, dict) else None
    if isinstance(fragment, str) and exit_call.size + len(fragment) <= MAX_BUFFERED_ARGUMENT_CHARS:
        exit_call.parts.append(fragment)
        exit_call.size += len(fragment)
    return True


def _exit_text(arguments: str) -> str:
    try:
        response = repair_arguments(arguments).get("response")
    except JsonRepairError:
        return arguments
    return response if isinstance(response, str) else ""


def _arguments_of(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    return arguments if isinstance(arguments, str) else ""


def _function_name(tool: Any) -> str | None:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _with_reminder(messages: list[Any]) -> list[Any]:
    first = messages[0] if messages else None
    if not isinstance(first, dict) or first.get("role") != "system":
        return [{"role": "system", "content": _REMINDER}, *messages]
    content = first.get("content")
    if isinstance(content, list):
        new_content: Any = [*content, {"type": "text", "text": _REMINDER}]
    elif isinstance(content, str) and content:
        new_content = f"{content}\n\n{_REMINDER}"
    else:
        new_content = _REMINDER
    return [{**first, "content": new_content}, *messages[1:]]


def _list(value: object) -> list[JSONObject]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
