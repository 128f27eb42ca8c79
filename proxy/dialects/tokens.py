"""Estimating the input tokens of a Messages or Chat Completions request, locally and fast.

How it works: the request is flattened into the texts a model reads (system, message text,
tool_use inputs and tool-call arguments as JSON, tool_result contents, thinking, tool names,
descriptions and schemas as JSON) plus fixed costs (per message, per tool, the tool-use
system prompt, images). The texts are joined and counted once by `estimate_text_tokens`: a
linear model over character classes, fitted to a real BPE tokenizer (cl100k_base). BPE
pieces are roughly "a word with its leading space", "a run of punctuation", "up to three
digits", and long identifiers split at case changes, so the counts of spaces, punctuation,
digits, capitals, other letters and non-ASCII bytes predict the piece count well. The counts
come from one ``bytes.translate`` into character classes and a few ``bytes.count`` calls,
all in C, so a 100 KB request takes well under a millisecond (docs/token-counting.md has the
measured error and timing, and the command that measures them).

No tokenizer files, nothing downloaded, no dependency. Never raises on odd input: blocks
that are not mappings, unknown block types and non-string fields are counted as their JSON
text or skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from proxy.filters.api import Dialect


class _Weights(NamedTuple):
    letter: float  # lower-case ASCII letter
    upper: float
    space: float  # space or tab
    newline: float
    punct: float  # ASCII punctuation other than the double quote
    digit: float
    nonascii: float  # per UTF-8 byte of a non-ASCII character
    quote: float


# Weights per character class, fitted by least squares (relative error, no intercept) against
# cl100k_base on Claude Code requests, Python source, Markdown, CJK text and JSON files; see
# benchmarks/token_count_accuracy.py and docs/token-counting.md. Prose and code:
_TEXT_WEIGHTS = _Weights(
    letter=0.199,
    upper=0.230,
    space=0.107,
    newline=0.735,
    punct=0.518,
    digit=1.165,
    nonascii=0.392,
    quote=0.518,
)
# Compact JSON (schemas, tool inputs): quotes merge with the punctuation around them (`":"`,
# `","`), so they cost nothing of their own; the non-ASCII weight is the prose one (the JSON
# samples had too little non-ASCII text to fit it).
_JSON_WEIGHTS = _Weights(
    letter=0.129,
    upper=0.475,
    space=0.398,
    newline=0.735,
    punct=0.690,
    digit=1.068,
    nonascii=0.392,
    quote=0.0,
)

# Fixed costs, in tokens. Anthropic: the documented count_tokens example ("Hello, world" as one
# user message -> 14) fixes request + message overhead; the tool-use system prompt sizes are
# Anthropic's published ones (346 with tool_choice auto/none, 313 with any/tool).
ANTHROPIC_REQUEST_TOKENS = 7
ANTHROPIC_MESSAGE_TOKENS = 4
ANTHROPIC_TOOLS_PROMPT_TOKENS = 346
ANTHROPIC_FORCED_TOOLS_PROMPT_TOKENS = 313
# OpenAI's published chat accounting: 3 per message, 1 more with a name, 3 to prime the reply.
OPENAI_REQUEST_TOKENS = 3
OPENAI_MESSAGE_TOKENS = 3
OPENAI_NAME_TOKENS = 1
TOOL_TOKENS = 8  # per tool definition beyond its JSON text (framing in the rendered prompt)
BLOCK_TOKENS = 3  # per tool_use / tool_result block (ids and framing)

# Images: the size is not known without decoding, so an image costs a fixed estimate: what a
# typical screenshot costs once the provider has scaled it. Anthropic: width*height/750 for
# images scaled to at most ~1.15 megapixels, so about 1,600 at most. OpenAI high detail: 85 +
# 170 per 512 px tile after scaling to 768 px on the short side (a 1024x768 image: 765);
# low detail: 85. A document (PDF) block gets a per-block estimate of its pages' text.
ANTHROPIC_IMAGE_TOKENS = 1600
OPENAI_IMAGE_TOKENS = 765
OPENAI_LOW_DETAIL_IMAGE_TOKENS = 85
DOCUMENT_TOKENS = 1500

# Character classes: a = lower-case letter, A = capital, 0 = digit, space, newline,
# " = double quote, . = other ASCII punctuation, u = a byte of a non-ASCII character.
_CLASSES = bytearray(b"." * 256)
for _byte in range(256):
    _char = chr(_byte)
    if _byte >= 0x80:
        _CLASSES[_byte] = ord("u")
    elif "a" <= _char <= "z":
        _CLASSES[_byte] = ord("a")
    elif "A" <= _char <= "Z":
        _CLASSES[_byte] = ord("A")
    elif "0" <= _char <= "9":
        _CLASSES[_byte] = ord("0")
    elif _char in " \t":
        _CLASSES[_byte] = ord(" ")
    elif _char in "\r\n":
        _CLASSES[_byte] = ord("\n")
    elif _char == '"':
        _CLASSES[_byte] = ord('"')
_CLASS_TABLE = bytes(_CLASSES)
del _byte, _char, _CLASSES


class TextFeatures(NamedTuple):
    """Character-class counts of a text's UTF-8 bytes."""

    letters: int  # lower-case ASCII letters
    upper: int
    spaces: int
    newlines: int
    punct: int  # ASCII punctuation other than the double quote
    digits: int
    nonascii: int  # bytes
    quotes: int


def text_features(text: str) -> TextFeatures:
    data = text.encode("utf-8", "surrogatepass")
    classes = data.translate(_CLASS_TABLE)
    upper = classes.count(b"A")
    spaces = classes.count(b" ")
    newlines = classes.count(b"\n")
    punct = classes.count(b".")
    digits = classes.count(b"0")
    quotes = classes.count(b'"')
    nonascii = 0 if data.isascii() else classes.count(b"u")
    letters = len(data) - upper - spaces - newlines - punct - digits - quotes - nonascii
    return TextFeatures(letters, upper, spaces, newlines, punct, digits, nonascii, quotes)


def estimate_text_tokens(text: str) -> int:
    """Approximate BPE token count of prose or code (0 for the empty string)."""
    return _estimate(text, _TEXT_WEIGHTS)


def estimate_json_tokens(text: str) -> int:
    """Approximate BPE token count of compact JSON text (0 for the empty string)."""
    return _estimate(text, _JSON_WEIGHTS)


def _estimate(text: str, w: _Weights) -> int:
    if not text:
        return 0
    f = text_features(text)
    estimate = (
        w.letter * f.letters
        + w.upper * f.upper
        + w.space * f.spaces
        + w.newline * f.newlines
        + w.punct * f.punct
        + w.digit * f.digits
        + w.nonascii * f.nonascii
        + w.quote * f.quotes
    )
    return max(1, round(estimate))


class TokenInputs(NamedTuple):
    """What a request's count is made of: prose, JSON texts (schemas, tool inputs), and
    fixed costs. JSON tokenizes differently from prose, so each kind has its own weights."""

    texts: list[str]
    json_texts: list[str]
    fixed_tokens: int


def count_tokens(body: dict[str, Any], dialect: Dialect) -> int:
    """Estimated input tokens of a Messages (Anthropic) or Chat Completions (OpenAI) body."""
    inputs = token_inputs(body, dialect)
    return (
        estimate_text_tokens("\n".join(inputs.texts))
        + estimate_json_tokens("\n".join(inputs.json_texts))
        + inputs.fixed_tokens
    )


def token_inputs(body: dict[str, Any], dialect: Dialect) -> TokenInputs:
    collector = _Collector()
    if isinstance(body, dict):
        if dialect is Dialect.ANTHROPIC:
            collector.anthropic(body)
        else:
            collector.openai(body)
    return TokenInputs(collector.texts, collector.json_texts, collector.fixed)


class _Collector:
    __slots__ = ("fixed", "json_texts", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.json_texts: list[str] = []
        self.fixed = 0

    def add(self, value: object) -> None:
        if isinstance(value, str):
            if value:
                self.texts.append(value)
        elif value is not None:
            self.add_json(value)

    def add_json(self, value: object) -> None:
        try:
            self.json_texts.append(orjson.dumps(value).decode())
        except TypeError:  # an integer beyond 64 bits, a non-string key: count its repr
            self.json_texts.append(repr(value))

    def add_json_text(self, value: object) -> None:
        """Tool-call arguments: JSON in whatever layout the model chose, counted compact
        (the JSON weights assume it); text that is not JSON counts as prose."""
        if not isinstance(value, str) or not value:
            return
        try:
            self.add_json(orjson.loads(value))
        except orjson.JSONDecodeError:
            self.texts.append(value)

    # Anthropic Messages ---------------------------------------------------------------------

    def anthropic(self, body: dict[str, Any]) -> None:
        self.fixed += ANTHROPIC_REQUEST_TOKENS
        system = body.get("system")
        if isinstance(system, str):
            self.add(system)
        else:
            self.anthropic_blocks(system)
        for message in _items(body.get("messages")):
            self.fixed += ANTHROPIC_MESSAGE_TOKENS
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, str):
                    self.add(content)
                else:
                    self.anthropic_blocks(content)
        tools = [tool for tool in _items(body.get("tools")) if isinstance(tool, dict)]
        if tools:
            forced = _forced(body.get("tool_choice"))
            self.fixed += (
                ANTHROPIC_FORCED_TOOLS_PROMPT_TOKENS if forced else ANTHROPIC_TOOLS_PROMPT_TOKENS
            )
        for tool in tools:
            self.fixed += TOOL_TOKENS
            self.add(tool.get("name"))
            self.add(tool.get("description"))
            if "input_schema" in tool:
                self.add_json(tool["input_schema"])
            elif tool.get("type") not in (None, "custom"):
                self.add_json(tool)  # a server tool: count its definition

    def anthropic_blocks(self, blocks: object) -> None:
        for block in _items(blocks):
            if isinstance(block, str):
                self.add(block)
                continue
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                self.add(block.get("text"))
            elif kind == "thinking":
                self.add(block.get("thinking"))
            elif kind in ("tool_use", "server_tool_use"):
                self.fixed += BLOCK_TOKENS
                self.add(block.get("name"))
                self.add_json(block.get("input", {}))
            elif kind == "tool_result" or kind == "web_search_tool_result":
                self.fixed += BLOCK_TOKENS
                content = block.get("content")
                if isinstance(content, str):
                    self.add(content)
                else:
                    self.anthropic_blocks(content)
            elif kind == "image":
                self.fixed += ANTHROPIC_IMAGE_TOKENS
            elif kind == "document":
                source = block.get("source")
                if isinstance(source, dict) and source.get("type") == "text":
                    self.add(source.get("data"))
                else:
                    self.fixed += DOCUMENT_TOKENS
            elif kind == "redacted_thinking":
                continue  # opaque; the model sees the original, whose size is unknown
            else:
                self.add_json(block)

    # OpenAI Chat Completions ----------------------------------------------------------------

    def openai(self, body: dict[str, Any]) -> None:
        self.fixed += OPENAI_REQUEST_TOKENS
        for message in _items(body.get("messages")):
            self.fixed += OPENAI_MESSAGE_TOKENS
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("name"), str):
                self.fixed += OPENAI_NAME_TOKENS
                self.add(message["name"])
            content = message.get("content")
            if isinstance(content, str):
                self.add(content)
            else:
                self.openai_parts(content)
            self.add(message.get("reasoning_content"))
            for call in _items(message.get("tool_calls")):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    self.fixed += BLOCK_TOKENS
                    self.add(function.get("name"))
                    self.add_json_text(function.get("arguments"))
        for tool in _items(body.get("tools")):
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict):
                self.fixed += TOOL_TOKENS
                self.add(function.get("name"))
                self.add(function.get("description"))
                if "parameters" in function:
                    self.add_json(function["parameters"])
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and isinstance(
            response_format.get("json_schema"), dict
        ):
            self.add_json(response_format["json_schema"].get("schema"))

    def openai_parts(self, parts: object) -> None:
        for part in _items(parts):
            if isinstance(part, str):
                self.add(part)
                continue
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in ("text", "input_text"):
                self.add(part.get("text"))
            elif kind == "refusal":
                self.add(part.get("refusal"))
            elif kind == "image_url":
                image = part.get("image_url")
                low = isinstance(image, dict) and image.get("detail") == "low"
                self.fixed += OPENAI_LOW_DETAIL_IMAGE_TOKENS if low else OPENAI_IMAGE_TOKENS
            elif kind in ("file", "input_audio"):
                self.fixed += DOCUMENT_TOKENS
            else:
                self.add_json(part)


def _items(value: object) -> Iterable[Any]:
    return value if isinstance(value, list) else ()


def _forced(tool_choice: object) -> bool:
    return isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool")
