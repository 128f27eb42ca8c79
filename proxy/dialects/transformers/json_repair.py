"""Tolerant JSON for tool-call arguments that models (or providers) got slightly wrong.

How it works: valid JSON takes the fast path (the json module). Anything else goes through a small
recursive-descent parser that accepts what models typically emit instead of JSON and, at the
end of the text, closes whatever is still open:

* trailing commas, missing commas between members, ``//`` and ``/* */`` comments;
* single-quoted strings, unquoted keys, raw control characters inside strings, unknown escapes
  (``\\'`` reads as ``'``, any other such as ``C:\\Users`` keeps its backslash);
* Python literals ``True``/``False``/``None`` and ``NaN``/``Infinity`` (read as null);
* truncation: an unclosed string, array or object is closed; a member whose value never
  started is dropped; a cut literal (``tr``) or number (``1.``, ``-``) is completed or dropped;
* Markdown code fences and prose before the first ``{``/``[``; text after the first complete
  value is ignored;
* a JSON object encoded a second time as a JSON string (``"{\\"a\\": 1}"``).

`repair_json` returns the value or raises `JsonRepairError`; `repair_arguments` wants an
object, as tool arguments must be one (an empty text means ``{}``).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_REPAIR_DEPTH = 256  # nesting beyond this is garbage, not arguments; bounds the recursion
_LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
    "NaN": None,
    "Infinity": None,
    "undefined": None,
}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WHITESPACE = " \t\r\n\ufeff"
_BARE_STOP = set(",:{}[]\"'" + _WHITESPACE)
_NUMBER_CHARS = set("+-0123456789.eE")


class JsonRepairError(ValueError):
    """The text holds no JSON value that can be recovered."""


def repair_json(text: str) -> Any:
    """The JSON value `text` most plausibly meant. Raises JsonRepairError."""
    try:
        # The standard library, not orjson: it keeps integers beyond 64 bits exact.
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        pass
    body = _strip_fences(text)
    start = _first_value_start(body)
    if start < 0:
        raise JsonRepairError("no JSON value found")
    parser = _TolerantParser(body, start)
    value = parser.value(0)
    if value is _MISSING:
        raise JsonRepairError("no JSON value found")
    return value


def repair_arguments(text: str) -> dict[str, Any]:
    """Tool-call arguments as an object. Raises JsonRepairError when none can be recovered."""
    if not text.strip():
        return {}
    value = repair_json(text)
    if isinstance(value, str):  # arguments encoded twice
        value = repair_json(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise JsonRepairError(f"arguments are a JSON {type(value).__name__}, not an object")
    return value


def _no_constant(name: str) -> None:
    return None  # NaN and Infinity have no JSON form: read them as null


def _finite_float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999


class _Missing:
    """A value that never started (the text ended first)."""


_MISSING: Any = _Missing()


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        newline = stripped.find("\n")
        stripped = stripped[newline + 1 :] if newline >= 0 else stripped[3:]
        end = stripped.rfind("```")
        if end >= 0:
            stripped = stripped[:end]
    return stripped


def _first_value_start(text: str) -> int:
    """Where the value begins: the first non-blank character if it can start a value, else
    the first brace or bracket (skipping prose such as "Here are the arguments:")."""
    index = 0
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    if index == len(text):
        return -1
    char = text[index]
    if char in "{[\"'-0123456789" or text.startswith(tuple(_LITERALS), index):
        return index
    found = [pos for pos in (text.find("{", index), text.find("[", index)) if pos >= 0]
    return min(found) if found else -1


class _TolerantParser:
    """Recursive descent over `text` from `pos`; every method leaves `pos` after what it read."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def value(self, depth: int) -> Any:
        if depth > MAX_REPAIR_DEPTH:
            raise JsonRepairError(f"nested deeper than {MAX_REPAIR_DEPTH}")
        self._skip()
        while self.pos < len(self.text) and self.text[self.pos] in ":=":
            self.pos += 1  # `"a":: 1`
            self._skip()
        if self.pos >= len(self.text):
            return _MISSING
        char = self.text[self.pos]
        if char in "]},":
            return _MISSING  # `{"a": }`: no value here; the caller reads the closer
        if char == "{":
            return self._object(depth)
        if char == "[":
            return self._array(depth)
        if char in "\"'":
            return self._string()
        if char in _NUMBER_CHARS:
            return self._number()
        return self._bare()

    def _object(self, depth: int) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        while True:
            self._skip_separators()
            if self.pos >= len(self.text):
                return out
            char = self.text[self.pos]
            if char == "}":
                self.pos += 1
                return out
            if char == "]":  # a bracket that closes nothing here: the object ends
                self.pos += 1
                return out
            key = self._string() if char in "\"'" else self._word()
            item = self.value(depth + 1)
            if item is _MISSING:
                continue  # `{"a":}` or `{"a":` at the end: drop the member without a value
            out[key] = item

    def _array(self, depth: int) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        while True:
            self._skip_separators()
            if self.pos >= len(self.text):
                return out
            char = self.text[self.pos]
            if char in "]}":
                self.pos += 1
                return out
            item = self.value(depth + 1)
            if item is not _MISSING:
                out.append(item)

    def _string(self) -> str:
        text = self.text
        quote = text[self.pos]
        self.pos += 1
        parts: list[str] = []
        start = self.pos
        while self.pos < len(text):
            char = text[self.pos]
            if char == quote:
                parts.append(text[start : self.pos])
                self.pos += 1
                return "".join(parts)
            if char == "\\":
                parts.append(text[start : self.pos])
                parts.append(self._escape())
                start = self.pos
                continue
            self.pos += 1
        parts.append(text[start:])  # unclosed at the end of the text: close it
        return "".join(parts)

    def _escape(self) -> str:
        text = self.text
        self.pos += 1  # the backslash
        if self.pos >= len(text):
            return ""
        char = text[self.pos]
        self.pos += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char == "u":
            digits = text[self.pos : self.pos + 4]
            if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                self.pos += 4
                code = int(digits, 16)
                if 0xD800 <= code < 0xDC00 and text.startswith("\\u", self.pos):
                    low = text[self.pos + 2 : self.pos + 6]
                    if len(low) == 4 and all(c in "0123456789abcdefABCDEF" for c in low):
                        low_code = int(low, 16)
                        if 0xDC00 <= low_code < 0xE000:
                            self.pos += 6
                            return chr(0x10000 + ((code - 0xD800) << 10) + (low_code - 0xDC00))
                # A lone surrogate cannot be encoded as UTF-8 later: replace it.
                return "\ufffd" if 0xD800 <= code < 0xE000 else chr(code)
            if self.pos + len(digits) >= len(text):
                self.pos = len(text)  # cut at the end of the text: drop the escape
                return ""
            return "\\u"
        # An unknown escape: \' means a quote; otherwise (C:\Users) the backslash was literal.
        return char if char == "'" else "\\" + char

    def _number(self) -> Any:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos] in _NUMBER_CHARS:
            self.pos += 1
        token = text[start : self.pos]
        if self.pos < len(text) and not _ends_token(text[self.pos]):
            self.pos = start  # e.g. `-Infinity` or `1abc`: read it as a bare word
            return self._bare()
        return _parse_number(token)

    def _bare(self) -> Any:
        word = self._word()
        if word.startswith("-") and word[1:] in ("Infinity", "inf"):
            return None
        if word in _LITERALS:
            return _LITERALS[word]
        if self.pos >= len(self.text):
            for literal in ("true", "false", "null"):
                if literal.startswith(word):  # cut literal at the end of the text
                    return _LITERALS[literal]
        return word  # an unquoted string value

    def _word(self) -> str:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos] not in _BARE_STOP:
            self.pos += 1
        return text[start : self.pos].strip()

    def _skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _WHITESPACE:
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                self.pos = len(text) if end < 0 else end + 2
            else:
                return

    def _skip_separators(self) -> None:
        while True:
            self._skip()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                continue
            return


def _ends_token(char: str) -> bool:
    return char in _BARE_STOP or char == "/"


def _parse_number(token: str) -> Any:
    try:
        if any(c in token for c in ".eE"):
            value = float(token)
            return None if value != value or value in (float("inf"), float("-inf")) else value
        return int(token)
    except ValueError:
        pass
    # Cut at the end of the text or mangled: keep the longest prefix that is a number.
    for end in range(len(token) - 1, 0, -1):
        try:
            return _parse_number_strict(token[:end])
        except ValueError:
            continue
    return _MISSING


def _parse_number_strict(token: str) -> Any:
    if any(c in token for c in ".eE"):
        value = float(token)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(token)
        return value
    return int(token)
