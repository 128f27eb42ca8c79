"""A stored answer, its wire forms, and its encoding for Redis. Pure apart from fresh ids.

An entry keeps what the client received, normalised: the message (Anthropic) or completion
(OpenAI) of a non-streamed answer, or the event list of a streamed one. `render` makes the
response for either kind of request — the stored form as it was, or converted by
proxy/cache/anthropic_replay.py / openai_replay.py — once per entry and shape, and keeps it
split around the answer's id, so a hit costs a ``join`` with a fresh id and nothing else.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any, Final

import orjson

from proxy.cache.anthropic_replay import events_to_message, message_to_events
from proxy.cache.openai_replay import chunks_to_completion, completion_to_chunks
from proxy.dialects.sse import encode_event

Event = tuple[str | None, bytes]
ENCODING_VERSION: Final = 1
JSON_TYPE: Final = b"application/json"
SSE_TYPE: Final = b"text/event-stream"
ANTHROPIC: Final = "anthropic"
OPENAI: Final = "openai"


def fresh_id(dialect: str) -> bytes:
    token = secrets.token_hex(12).encode()
    return b"msg_" + token if dialect == ANTHROPIC else b"chatcmpl-" + token


def fresh_tool_id(dialect: str) -> bytes:
    token = secrets.token_hex(12).encode()
    return b"toolu_" + token if dialect == ANTHROPIC else b"call_" + token


class Rendered:
    """One wire form of an entry: the body split around the ids a replay must not repeat —
    the answer's (``slots`` 0) and its tool calls' (1, 2, ...; the same id may occur in
    several events of a stream and gets the same new one each time)."""

    __slots__ = ("content_type", "originals", "parts", "slots", "tools")

    def __init__(
        self, content_type: bytes, body: bytes, answer_id: bytes, tool_ids: Sequence[bytes] = ()
    ) -> None:
        self.content_type = content_type
        ids = [answer_id, *tool_ids] if answer_id else list(tool_ids)
        ids = [i for i in dict.fromkeys(ids) if i]
        self.tools = len(tool_ids)
        self.parts: list[bytes] = []
        self.slots: list[int] = []
        # By slot: the stored id (slot 0, the answer's, is always replaced).
        self.originals: list[bytes] = [answer_id, *tool_ids]
        if not ids:
            self.parts.append(body)
            return
        index = {i: n if answer_id else n + 1 for n, i in enumerate(ids)}
        pattern = re.compile(b"|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)))
        pos = 0
        for m in pattern.finditer(body):
            self.parts.append(body[pos : m.start()])
            self.slots.append(index[m.group()])
            pos = m.end()
        self.parts.append(body[pos:])

    def body(self, new_id: bytes, new_tool_id: Any = None) -> bytes:
        """The body with ``new_id`` for the answer's id and, when it has tool calls, a new id
        from ``new_tool_id()`` for each."""
        parts = self.parts
        slots = self.slots
        if not slots:
            return parts[0]
        if not self.tools:
            if len(parts) == 2:
                return parts[0] + new_id + parts[1]
            return new_id.join(parts)
        if new_tool_id is None:
            fresh = [new_id, *self.originals[1:]]  # tool ids as stored
        else:
            fresh = [new_id, *(new_tool_id() for _ in range(self.tools))]
        out = [parts[0]]
        for n, slot in enumerate(slots):
            out.append(fresh[slot])
            out.append(parts[n + 1])
        return b"".join(out)


class CacheEntry:
    __slots__ = (
        "_rendered",
        "answer_id",
        "dialect",
        "events",
        "expires_wall_s",
        "key",
        "message",
        "size",
        "tenant",
    )

    def __init__(
        self,
        dialect: str,
        answer_id: str,
        *,
        message: dict[str, Any] | None = None,
        events: list[Event] | None = None,
        expires_wall_s: float = 0.0,
        size: int = 0,
    ) -> None:
        if (message is None) == (events is None):
            raise ValueError("an entry holds a message or events")
        self.dialect = dialect
        self.answer_id = answer_id
        self.message = message
        self.events = events
        self.expires_wall_s = expires_wall_s
        self.size = size  # bytes of its stored encoding; set by `encode`/`decode`
        self.tenant = ""
        self.key = ""
        self._rendered: dict[tuple[bool, bool], Rendered] = {}

    @property
    def streamed(self) -> bool:
        return self.events is not None

    def render(self, stream: bool, include_usage: bool = False) -> Rendered:
        """The response body for a request that streams (or not), prepared once."""
        slot = (stream, include_usage and stream and self.dialect == OPENAI)
        found = self._rendered.get(slot)
        if found is None:
            found = self._rendered[slot] = self._make(stream, slot[1])
        return found

    def _make(self, stream: bool, include_usage: bool) -> Rendered:
        answer_id = self.answer_id.encode()
        if stream:
            events = self.events
            if events is None:
                assert self.message is not None
                events = (
                    message_to_events(self.message)
                    if self.dialect == ANTHROPIC
                    else completion_to_chunks(self.message, include_usage)
                )
            body = b"".join(encode_event(name, data) for name, data in events)
            return Rendered(SSE_TYPE, body, answer_id, self._tool_ids())
        message = self.message
        if message is None:
            assert self.events is not None
            message = (
                events_to_message(self.events)
                if self.dialect == ANTHROPIC
                else chunks_to_completion(self.events)
            )
        return Rendered(JSON_TYPE, orjson.dumps(message), answer_id, self._tool_ids())

    def _tool_ids(self) -> list[bytes]:
        """The ids of the answer's tool calls, in order (Anthropic tool_use blocks, OpenAI
        tool_calls), from the stored message or events."""
        found: list[str] = []
        if self.message is not None:
            _collect_ids(self.message, found)
        else:
            assert self.events is not None
            for _name, data in self.events:
                if b'"id"' in data and (b"tool_use" in data or b"tool_calls" in data):
                    try:
                        _collect_ids(orjson.loads(data), found)
                    except orjson.JSONDecodeError:
                        continue
        return [i.encode() for i in dict.fromkeys(found)]

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "v": ENCODING_VERSION,
            "d": self.dialect,
            "id": self.answer_id,
            "exp": self.expires_wall_s,
        }
        if self.message is not None:
            doc["m"] = self.message
        else:
            assert self.events is not None
            doc["e"] = [[name, data.decode()] for name, data in self.events]
        out = orjson.dumps(doc)
        self.size = len(out)
        return out


def _collect_ids(obj: Any, found: list[str]) -> None:
    """Tool-call ids anywhere in ``obj``: ``{"type": "tool_use", "id": ...}`` (Anthropic) and
    the items of ``tool_calls`` lists (OpenAI)."""
    if isinstance(obj, dict):
        if obj.get("type") == "tool_use" and isinstance(obj.get("id"), str):
            found.append(obj["id"])
        calls = obj.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    found.append(call["id"])
        for value in obj.values():
            if isinstance(value, (dict, list)):
                _collect_ids(value, found)
    elif isinstance(obj, list):
        for item in obj:
            _collect_ids(item, found)


def decode_entry(raw: bytes) -> CacheEntry:
    """An entry read back from Redis; ValueError (orjson's included) when it is not one."""
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or doc.get("v") != ENCODING_VERSION:
        raise ValueError("not a cache entry of this version")
    dialect = doc["d"]
    if dialect not in (ANTHROPIC, OPENAI):
        raise ValueError("unknown dialect")
    events = doc.get("e")
    entry = CacheEntry(
        dialect,
        str(doc.get("id") or ""),
        message=doc.get("m"),
        events=[(n, d.encode()) for n, d in events] if events is not None else None,
        expires_wall_s=float(doc.get("exp", 0.0)),
    )
    entry.size = len(raw)
    return entry
