"""What the simulated model answers, before any dialect shapes it.

The answer is a pure function of the parsed request, the answer length and a seed: the same
request always gets the same words, tool call and token counts, so tests can compare runs.
One generated word counts as one output token.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

_VOCAB: tuple[str, ...] = (
    "the", "quick", "model", "returns", "a", "short", "answer", "about", "routing", "tokens",
    "with", "care", "and", "then", "checks", "each", "stream", "for", "gaps", "while",
    "keeping", "latency", "low", "so", "agents", "can", "work", "on", "long", "tasks",
    "through", "one", "gateway", "that", "speaks", "both", "dialects", "clearly", "under",
    "load", "every", "request", "gets", "its", "own", "id", "here", "now", "simple",
    "words", "flow", "as", "bytes", "over", "loopback", "sockets", "in", "order", "without",
    "loss", "or", "delay", "today", "again",
)  # fmt: skip
assert len(_VOCAB) == 64  # the picker masks with 63

THINKING_TEXT = "Let me think about what the user asked and answer briefly."
MAX_SCHEMA_DEPTH = 8  # placeholder inputs stop descending here
MAX_ARRAY_PLACEHOLDERS = 8
WORD_CACHE_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]
    arguments: str  # the input as JSON text, as streamed


@dataclass(frozen=True, slots=True)
class Answer:
    """Dialect-neutral answer. ``stop`` is "end", "length" or "tool"."""

    thinking: tuple[str, ...]  # thinking pieces (one token each); empty = no thinking block
    signature: str
    pieces: tuple[str, ...]  # text pieces, one token each; "".join(pieces) is the text
    tools: tuple[ToolCall, ...]  # in call order; empty = no tool call
    stop: str
    input_tokens: int  # prompt tokens not read from the cache
    cached_tokens: int  # prompt tokens read from the cache (on top of input_tokens)
    output_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class WordCache:
    """Bounded memo of generated text pieces keyed by (seed, count): generating them is the
    costliest part of a small answer and benchmarks repeat the same request shape."""

    def __init__(self, max_entries: int = WORD_CACHE_ENTRIES) -> None:
        self._max = max_entries
        self._entries: dict[tuple[int, int], tuple[str, ...]] = {}

    def pieces(self, seed: int, count: int) -> tuple[str, ...]:
        key = (seed, count)
        found = self._entries.get(key)
        if found is None:
            if len(self._entries) >= self._max:
                self._entries.clear()
            found = self._entries[key] = text_pieces(seed, count)
        return found


def text_pieces(seed: int, count: int) -> tuple[str, ...]:
    """``count`` deterministic words: the first capitalised, the rest with a leading space,
    a full stop on the last."""
    if count <= 0:
        return ()
    out: list[str] = []
    x = (seed & 0xFFFFFFFF) or 0x9E3779B9
    for i in range(count):
        # xorshift32: cheap, deterministic, good enough to vary words
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        word = _VOCAB[x & 63]
        out.append(word.capitalize() if i == 0 else " " + word)
    out[-1] += "."
    return tuple(out)


def estimate_tokens(body_len: int) -> int:
    return max(1, body_len // 4)


def placeholder(schema: Any, depth: int = 0) -> Any:
    """A value that satisfies the simple parts of a JSON schema: the right type, an enum or
    const member, and for objects every required property."""
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return "mock"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return placeholder(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("properties"), dict):
        kind = "object"
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        return {n: placeholder(props.get(n), depth + 1) for n in names}
    if kind == "integer":
        return _least_number(schema, 1)
    if kind == "number":
        return _least_number(schema, 1.5)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        min_items = schema.get("minItems")
        n = min(min_items, MAX_ARRAY_PLACEHOLDERS) if isinstance(min_items, int) else 0
        return [placeholder(schema.get("items"), depth + 1) for _ in range(max(n, 0))]
    return "mock"


def _least_number(schema: dict[str, Any], fallback: int | float) -> int | float:
    low = schema.get("minimum")
    if isinstance(low, int | float) and not isinstance(low, bool) and low > fallback:
        return low
    exclusive = schema.get("exclusiveMinimum")
    if (
        isinstance(exclusive, int | float)
        and not isinstance(exclusive, bool)
        and exclusive >= fallback
    ):
        return int(exclusive) + 1
    return fallback


def signature_for(seed: int) -> str:
    return base64.b64encode(f"mock-signature-{seed:08x}".encode()).decode()


@dataclass(frozen=True, slots=True)
class AnswerSpec:
    """What the request asked for, read by the dialect's request reader."""

    tools: tuple[tuple[str, Any], ...]  # (name, input schema) the answer may call; () = text
    thinking: bool
    max_tokens: int | None
    parallel: bool = True  # the request allows several tool calls in one answer
    images: int = 0  # image blocks / parts anywhere in the request
    json_schema: Any = None  # a structured-output schema: the text is JSON matching it


def image_note(images: int) -> str:
    """What the answer text starts with when the request held images."""
    return f"[saw {images} images] "


def compose(
    spec: AnswerSpec,
    *,
    seed: int,
    output_tokens: int,
    body_len: int,
    words: WordCache,
    tool_id_prefix: str,
    text_with_tool: bool,
    tool_calls: int = 1,
    cached_tokens: int = 0,
) -> Answer:
    """Build the answer, cutting it at max_tokens (stop "length") when the cap bites.

    With tools on offer the answer calls ``tool_calls`` of them (one if the request forbids
    parallel calls), cycling through the offered tools, each with a distinct id.
    """
    thinking: tuple[str, ...] = ()
    signature = ""
    if spec.thinking:
        words_ = THINKING_TEXT.split(" ")
        thinking = (words_[0], *(" " + w for w in words_[1:]))
        signature = signature_for(seed)
    budget = spec.max_tokens
    n_text = output_tokens if (not spec.tools or text_with_tool) else 0
    stop = "end"
    tools: list[ToolCall] = []
    if spec.tools:
        n_calls = tool_calls if spec.parallel else 1
        for i in range(n_calls):
            name, schema = spec.tools[i % len(spec.tools)]
            value = placeholder(schema)
            tool_input = value if isinstance(value, dict) else {}
            call_id = f"{tool_id_prefix}{seed:08x}" + (f"_{i}" if i else "")
            tools.append(ToolCall(call_id, name, tool_input, orjson.dumps(tool_input).decode()))
        stop = "tool"
    tool_tokens = sum(max(1, len(t.arguments) // 4) for t in tools)
    if budget is not None and len(thinking) + n_text + tool_tokens > budget:
        thinking = thinking[:budget]
        n_text = max(0, min(n_text, budget - len(thinking)))
        tools, tool_tokens, stop = [], 0, "length"
    pieces = words.pieces(seed, n_text)
    if spec.json_schema is not None and not tools and stop != "length":
        # Structured output: the whole text is one JSON value, in streamable fragments.
        pieces = tuple(split_fragments(orjson.dumps(placeholder(spec.json_schema)).decode()))
    if spec.images > 0:
        # glued to the first word so the token count stays one per piece
        note = image_note(spec.images)
        if pieces:
            pieces = (note + pieces[0], *pieces[1:])
        elif stop != "length":
            pieces = (note.rstrip(),)
    return Answer(
        thinking=thinking,
        signature=signature,
        pieces=pieces,
        tools=tuple(tools),
        stop=stop,
        input_tokens=estimate_tokens(body_len),
        cached_tokens=cached_tokens,
        output_tokens=max(1, len(thinking) + len(pieces) + tool_tokens),
    )


def split_fragments(text: str) -> list[str]:
    """Cut streamed JSON into several pieces at arbitrary points, as providers do."""
    if not text:
        return []
    size = 12 if len(text) > 36 else max(1, -(-len(text) // 3))
    return [text[i : i + size] for i in range(0, len(text), size)]
