"""The token usage a provider reports, read from its answer as it passes.

How this works: `UsageTap` looks at provider-dialect objects — a whole answer, or stream
events one at a time — and keeps the latest figures: Anthropic ``message_start`` carries the
input tokens and ``message_delta`` the (cumulative) output tokens; OpenAI reports both in the
final ``usage`` chunk (with ``stream_options.include_usage``) or the answer's ``usage``. For
answers forwarded untouched it also takes raw bytes: stream events are decoded with the SSE
decoder and parsed only when they mention ``usage`` — and chunks holding no such event are not
decoded at all: only the unfinished event at their end is kept, so the decoder always starts
at an event boundary (most chunks of a long answer cost one substring search); a whole answer
is kept (bounded) and parsed at its end. Input tokens count cached ones too (what the prompt
was), as limits and spend do.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import orjson

from proxy.dialects.sse import MAX_EVENT_BYTES, SSEDecoder, end_of_last_event
from proxy.filters.api import Dialect

MAX_TAPPED_BODY_BYTES: Final = 4 * 1024 * 1024  # a larger whole answer is not read for usage


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class UsageTap:
    __slots__ = (
        "_body",
        "_decoder",
        "_dialect",
        "_pending",
        "_pending_usage",
        "_size",
        "cached_tokens",
        "input_tokens",
        "output_tokens",
    )

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._decoder: SSEDecoder | None = None
        self._pending = bytearray()  # stream bytes after the last event boundary, not decoded
        self._pending_usage = False  # they mention "usage"
        self._body: list[bytes] | None = None
        self._size = 0
        self.input_tokens = -1  # -1: not reported
        self.output_tokens = -1
        self.cached_tokens = -1  # of input_tokens, read from the provider's prompt cache

    # -- parsed objects ----------------------------------------------------------------------

    def observe(self, obj: Any) -> None:
        """One provider object: a whole answer or one stream event's data."""
        if not isinstance(obj, dict):
            return
        if self._dialect is Dialect.ANTHROPIC:
            kind = obj.get("type")
            if kind == "message_start":
                message = obj.get("message")
                self._anthropic(message.get("usage") if isinstance(message, dict) else None)
            else:  # message_delta, or a whole message
                self._anthropic(obj.get("usage"))
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = _int(usage.get("prompt_tokens"))
            self.output_tokens = _int(usage.get("completion_tokens"))
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                self.cached_tokens = _int(details.get("cached_tokens"))

    def _anthropic(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        if "input_tokens" in usage:
            cached = _int(usage.get("cache_read_input_tokens"))
            self.cached_tokens = cached
            self.input_tokens = (
                _int(usage.get("input_tokens"))
                + cached
                + _int(usage.get("cache_creation_input_tokens"))
            )
        if "output_tokens" in usage:
            self.output_tokens = _int(usage.get("output_tokens"))

    # -- raw bytes (passthrough) ---------------------------------------------------------------

    def start(self, streaming: bool) -> None:
        if streaming:
            self._decoder = SSEDecoder()
        else:
            self._body = []

    def feed(self, data: bytes) -> None:
        if self._decoder is not None:
            pending = self._pending
            # Only the new bytes are searched, with a few old ones for a split key or boundary.
            old = len(pending)
            pending += data
            if not self._pending_usage:
                self._pending_usage = pending.find(b'"usage"', max(old - 6, 0)) >= 0
            cut = end_of_last_event(pending, max(old - 3, 0))
            if cut < 0:
                if len(pending) > MAX_EVENT_BYTES:
                    self._decoder = None  # an over-long event: stop looking, bytes still pass
                    self._pending = bytearray()
                return
            events = []
            if self._pending_usage:
                try:
                    events = self._decoder.feed(bytes(pending[:cut]))
                except Exception:  # an over-long event: stop looking, the bytes still pass
                    self._decoder = None
                    return
            del pending[:cut]  # what is left is the unfinished event
            self._pending_usage = pending.find(b'"usage"') >= 0
            for ev in events:
                if ev.data.find(b'"usage"') >= 0:
                    self._parse(ev.data)
        elif self._body is not None:
            self._size += len(data)
            if self._size > MAX_TAPPED_BODY_BYTES:
                self._body = None
            else:
                self._body.append(data)

    def end(self) -> None:
        if self._body is not None:
            self._parse(b"".join(self._body))
            self._body = None

    def _parse(self, raw: bytes) -> None:
        # Not ours to judge bad JSON: the client gets the bytes as they are.
        with contextlib.suppress(orjson.JSONDecodeError):
            self.observe(orjson.loads(raw))
