"""Records the answer a client receives and says whether it is complete enough to store.
Sans-I/O: response head and body chunks in, an entry (or nothing) out.

Only a 2xx answer is considered. A JSON body is kept whole and must be the dialect's answer
object (``"type": "message"`` / ``"object": "chat.completion"``). An event stream is decoded
as it passes (the coalesced followers of this request need its events as they arrive) and is
complete only when it ends with the dialect's proper end — ``message_stop`` (Anthropic),
``data: [DONE]`` (OpenAI) — and holds no error event. Past ``max_bytes`` the capture stops
keeping the answer (it is not stored) but still decodes events for the followers.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.cache.entry import ANTHROPIC, CacheEntry
from proxy.dialects.sse import SSEDecoder
from proxy.errors import UpstreamBadResponseError

Event = tuple[str | None, bytes]


class AnswerCapture:
    __slots__ = (
        "_chunks",
        "_decoder",
        "_error_seen",
        "_last",
        "_size",
        "answer_id",
        "dialect",
        "events",
        "failed",
        "max_bytes",
        "streaming",
        "too_large",
    )

    def __init__(self, dialect: str, max_bytes: int) -> None:
        self.dialect = dialect
        self.max_bytes = max_bytes
        self.streaming = False
        self.failed = True  # until a 2xx head with a known content type arrives
        self.too_large = False
        self.answer_id = ""
        self.events: list[Event] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._decoder: SSEDecoder | None = None
        self._last: Event | None = None
        self._error_seen = False

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if not 200 <= status < 300:
            return
        for k, v in headers:
            if k == b"content-type":
                v = v[:32].lower()
                if v.startswith(b"text/event-stream"):
                    self.streaming = True
                    self._decoder = SSEDecoder()
                    self.failed = False
                elif v.startswith(b"application/json"):
                    self.failed = False
                return

    def feed(self, data: bytes) -> list[Event]:
        """Take one chunk of the body; returns the events it completed (streams only)."""
        if self.failed or not data:
            return []
        self._size += len(data)
        if self._size > self.max_bytes and not self.too_large:
            self.too_large = True
            self._chunks.clear()
        decoder = self._decoder
        if decoder is None:
            if not self.too_large:
                self._chunks.append(data)
            return []
        try:
            events = [(e.event, e.data) for e in decoder.feed(data)]
        except UpstreamBadResponseError:
            self.failed = True
            return []
        self._take(events)
        return events

    def _take(self, events: list[Event]) -> None:
        if not events:
            return
        if not self.answer_id:
            self.answer_id = _answer_id(self.dialect, events[0][1])
        if not self._error_seen:
            self._error_seen = any(_is_error(self.dialect, e) for e in events)
        self._last = events[-1]
        if not self.too_large:
            self.events.extend(events)

    @property
    def complete(self) -> bool:
        """A stream that ended with its dialect's end event and no error (after `finish`)."""
        last = self._last
        if self.failed or not self.streaming or last is None or self._error_seen:
            return False
        if self.dialect == ANTHROPIC:
            return last[0] == "message_stop"
        return last[1] == b"[DONE]"

    def finish(self) -> tuple[list[Event], CacheEntry | None]:
        """The body ended: the last events, and the entry when the answer is storable."""
        if self.failed:
            return [], None
        last: list[Event] = []
        if self._decoder is not None:
            last = [(e.event, e.data) for e in self._decoder.close()]
            self._take(last)
        if self.too_large:
            return last, None
        try:
            entry = self._entry()
        except (ValueError, KeyError, TypeError):
            return last, None
        return last, entry

    def _entry(self) -> CacheEntry | None:
        if not self.streaming:
            body = orjson.loads(b"".join(self._chunks))
            wanted = (
                body.get("type") == "message"
                if self.dialect == ANTHROPIC
                else (body.get("object") == "chat.completion")
            )
            if not wanted:
                return None
            return CacheEntry(self.dialect, str(body.get("id") or ""), message=body)
        if not self.complete:
            return None
        return CacheEntry(self.dialect, self.answer_id, events=list(self.events))


def _is_error(dialect: str, event: Event) -> bool:
    if dialect == ANTHROPIC:
        return event[0] == "error"
    return event[1][:9] == b'{"error":' or b'"error"' in event[1][:16]


def _answer_id(dialect: str, data: bytes) -> str:
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(obj, dict):
        return ""
    if dialect == ANTHROPIC:
        message = obj.get("message")
        found = message.get("id") if isinstance(message, dict) else None
    else:
        found = obj.get("id")
    return found if isinstance(found, str) else ""
