"""What passthrough checks of a provider's successful answer before the client gets it.

Passthrough relays the provider's bytes without translating them, but not blindly
(hardening.md F4, F10-F12):

- A whole (non-streamed) answer is held until its end (it is the client's one chunk anyway),
  up to `MAX_CHECKED_BODY_BYTES`, then parsed once: an empty body or one that is not a JSON
  object is a broken answer (502, and nothing reached the client, so another candidate may
  serve it), and a 200 whose body is the dialect's error object is the provider failing (as
  a 5xx would be). The parsed object is handed on, so the usage tap does not parse it again.
  A larger answer is relayed as it comes, unchecked.
- A stream is relayed event by event: bytes after the last event boundary wait for the rest
  of their event, so a stream cut by the provider never leaves the client half an event (the
  in-band error that ends it is then a whole event of its own). A stream that ends without
  its terminal event (Anthropic ``message_stop``, OpenAI ``data: [DONE]``) is broken too.
  Each whole event's data is parsed once to check it is JSON (about a microsecond an event,
  nothing re-encoded): the client's SDK would choke on anything else (hardening.md F11).
  The events before a broken one go out; the broken one and the rest do not, ``broken`` says
  why, and the router ends the stream with an in-band error (or, when nothing reached the
  client yet, tries another candidate).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from proxy.dialects.sse import end_of_last_event
from proxy.errors import ProxyError, UpstreamBadResponseError, UpstreamError
from proxy.filters.api import Dialect

MAX_CHECKED_BODY_BYTES: Final = 4 * 1024 * 1024  # a larger whole answer passes unchecked
MAX_PENDING_EVENT_BYTES: Final = 1024 * 1024  # an unfinished event longer than this: unchecked

# How the end of a stream shows, searched in the raw bytes (no parse). Quoted, so text that
# mentions them (JSON-escaped inside a string) does not match. OpenAI-compatible servers that
# end with a finish_reason and no [DONE] are accepted.
# A provider's own error event ends a stream too (it already told the client).
_TERMINALS: Final = {
    Dialect.ANTHROPIC: (b'"message_stop"', b"event: error"),
    Dialect.OPENAI: (
        b"data: [DONE]",
        b'"finish_reason":"',
        b'"finish_reason": "',
        b'"error":',
        b'"error" :',
    ),
}


class PassthroughCheck:
    __slots__ = (
        "_body",
        "_dialect",
        "_pending",
        "_size",
        "_terminal",
        "broken",
        "checking",
        "obj",
        "stream",
    )

    def __init__(self, dialect: Dialect, stream: bool) -> None:
        self._dialect = dialect
        self.stream = stream
        self._terminal = False
        self._pending = b""  # stream: the unfinished event at the end of what arrived
        self._body: list[bytes] = []  # whole answer: what arrived
        self._size = 0
        self.checking = True  # False once the answer outgrew the checks: bytes just pass
        self.obj: Any = None  # the parsed whole answer, after end()
        self.broken: ProxyError | None = None  # stream: an event that is not JSON was met

    def feed(self, data: bytes) -> bytes:
        """The bytes that may go to the client now."""
        if not self.checking:
            return data
        if self.stream:
            return self._feed_stream(data)
        self._size += len(data)
        if self._size > MAX_CHECKED_BODY_BYTES:
            self.checking = False
            self._body.append(data)
            held = b"".join(self._body)
            self._body = []
            return held
        self._body.append(data)
        return b""

    def _feed_stream(self, data: bytes) -> bytes:
        if self.broken is not None:
            return b""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        cut = end_of_last_event(data)
        if cut == len(data):
            out = data
        elif cut < 0:
            if len(data) > MAX_PENDING_EVENT_BYTES:
                self.checking = False  # one enormous event: let it through as it comes
                return data
            self._pending = data
            return b""
        else:
            out, self._pending = data[:cut], data[cut:]
        bad = _first_bad_event(out)
        if bad >= 0:
            self.broken = UpstreamBadResponseError("provider sent an event that is not JSON")
            self._pending = b""
            out = out[:bad]
        if not self._terminal:
            self._terminal = any(t in out for t in _TERMINALS[self._dialect])
        return out

    def end(self) -> tuple[bytes, ProxyError | None]:
        """What is left for the client, or the error the answer amounts to."""
        if not self.checking:
            return b"", None
        if self.stream:
            if self._pending.strip():
                return b"", UpstreamBadResponseError("provider stream ended inside an event")
            if not self._terminal:
                end = "message_stop" if self._dialect is Dialect.ANTHROPIC else "[DONE]"
                return b"", UpstreamBadResponseError(
                    f"provider stream ended without its {end} event"
                )
            return self._pending, None
        body = b"".join(self._body)
        self._body = []
        if not body.strip():
            return b"", UpstreamBadResponseError("provider answered 200 with an empty body")
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return b"", UpstreamBadResponseError("provider answered invalid JSON")
        if not isinstance(obj, dict):
            return b"", UpstreamBadResponseError("provider answered JSON that is not an object")
        failure = _error_in(obj, self._dialect)
        if failure is not None:
            return b"", failure
        self.obj = obj
        return body, None


def _first_bad_event(events: bytes) -> int:
    """The offset of the first event in ``events`` (whole events only) whose data is neither
    JSON nor ``[DONE]``; -1 when every one is fine."""
    start = 0
    end = len(events)
    while start < end:
        lf = events.find(b"\n\n", start)
        crlf = events.find(b"\r\n\r\n", start)
        if lf < 0 and crlf < 0:
            stop = nxt = end
        elif crlf < 0 or 0 <= lf < crlf:
            stop, nxt = lf, lf + 2
        else:
            stop, nxt = crlf, crlf + 4
        if not _data_is_json(events[start:stop]):
            return start
        start = nxt
    return -1


def _data_is_json(event: bytes) -> bool:
    """An event's ``data:`` lines (joined by line breaks, as SSE does) parse as JSON, or are
    ``[DONE]``; an event without data (a comment, a bare ``event:``) passes."""
    pos = event.find(b"data:")
    if pos < 0:
        return True
    if (pos == 0 or event[pos - 1] == 0x0A) and event.find(b"\n", pos) < 0:
        payload = event[pos + 5 :]  # the usual event: one data line, the last one
    else:
        parts: list[bytes] = []
        for line in event.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(b"data:"):
                parts.append(line[5:])
        payload = b"\n".join(parts)
    payload = payload.strip()
    if not payload or payload == b"[DONE]":
        return True
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


def _error_in(obj: dict[str, Any], dialect: Dialect) -> UpstreamError | None:
    """The provider's error object inside a 2xx answer, as the failure it is."""
    if dialect is Dialect.ANTHROPIC:
        if obj.get("type") != "error":
            return None
        err = obj.get("error")
    else:
        if "choices" in obj or "error" not in obj:
            return None
        err = obj.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    text = err.get("message") if isinstance(err, dict) else None
    overloaded = kind in ("overloaded_error", "server_error") or kind is None
    error = UpstreamError(
        f"provider answered 200 with an error: {str(text or kind)[:200]}",
        status=529 if overloaded else 502,
    )
    error.kind = "overloaded_error" if overloaded else "api_error"
    return error
