"""Incremental Server-Sent Events codec (sans-I/O): bytes in, events out, and back.

`SSEDecoder.feed` takes upstream body chunks as they arrive and returns the events completed
by them. It follows the WHATWG event-stream rules that matter for LLM streams:

* Lines end with LF, CRLF or a lone CR. Chunks are normalised to LF with two C-level
  ``replace`` calls; a CR at the very end of a chunk ends its line at once (no waiting), and a
  LF at the start of the next chunk is then dropped as the second half of that CRLF.
* Complete lines are cut with one ``split``; only the unterminated tail is kept, as a list of
  parts joined when its line ends (no quadratic re-copying while one line grows).
* ``data`` lines of one event are joined with LF; ``event`` sets the name (``None`` when absent
  or empty, i.e. the spec's default "message"); lines starting with ":" are comments; ``id``,
  ``retry`` and unknown fields are ignored; the space after the colon is optional. A blank line
  dispatches the event, unless it had no ``data`` line at all. A leading UTF-8 BOM is dropped.
* One event may hold at most `MAX_EVENT_BYTES` (data plus the unterminated line being read);
  beyond that the provider is misbehaving and `UpstreamBadResponseError` is raised.

End of stream (`close`): the spec discards an event that lacks its final blank line. We deliver
it instead, treating EOF as the end of the last line and of the event. Every payload we decode
is a JSON object (self-delimiting) or ``[DONE]``, so an event cut off mid-way still fails to
parse one layer up and becomes an error; but a provider that merely omits the last blank line
(seen with some ``data: [DONE]`` endings) does not lose its final usage chunk or ``[DONE]``.
"""

from __future__ import annotations

from typing import final

from proxy.errors import UpstreamBadResponseError

MAX_EVENT_BYTES = 4 * 1024 * 1024  # one event (data + the line being read), upstream-controlled

_BOM = b"\xef\xbb\xbf"


@final
class SSEEvent:
    """One dispatched event. A plain class rather than a NamedTuple: compiled, building one is
    a C allocation, where a NamedTuple runs its Python-level ``__new__`` per event."""

    __slots__ = ("data", "event")

    def __init__(self, event: str | None, data: bytes) -> None:
        self.event = event  # the `event:` field, None when absent or empty
        self.data = data  # the `data:` lines joined with LF

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return self.event == other.event and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.event, self.data))

    def __repr__(self) -> str:
        return f"SSEEvent({self.event!r}, {self.data!r})"


class SSEDecoder:
    """Incremental SSE parser for one response body. Not reusable across bodies."""

    __slots__ = ("_bom", "_data", "_event", "_max", "_size", "_skip_lf", "_tail", "_tail_len")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._tail: list[bytes] = []  # pieces of the unterminated last line
        self._tail_len = 0
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF completes a CRLF
        self._bom = True  # the first line has not been seen yet
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0  # data bytes held for the event being built

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Consume one chunk and return the events it completes."""
        if not self._tail and not self._data and not self._bom and not self._skip_lf:
            one = self._one_event(data)
            if one is not None:
                return [one]
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        # find(), not `in`: bytes.__contains__ first tries its operand as an integer, and
        # builds (then drops) a formatted TypeError for every bytes operand.
        if data.find(b"\r") >= 0:
            self._skip_lf = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if data.find(b"\n") < 0:
            if data:
                self._tail.append(data)
                self._tail_len += len(data)
                if self._size + self._tail_len > self._max:
                    raise self._too_large()
            return []
        if self._tail:
            self._tail.append(data)
            data = b"".join(self._tail)
            self._tail = []
        lines = data.split(b"\n")
        last = lines.pop()
        if last:
            self._tail.append(last)
        self._tail_len = len(last)
        events = self._lines(lines)
        if self._size + self._tail_len > self._max:
            raise self._too_large()
        return events

    def _one_event(self, data: bytes) -> SSEEvent | None:
        """The shape nearly every provider read has, once the stream runs: exactly one whole
        event, ``data: X`` (optionally after ``event: N``) and a blank line, LF only. Decoded
        here without the split and line loop; None for anything else (the general path)."""
        end = len(data) - 2
        if end < 6 or data[end:] != b"\n\n" or self._event is not None:
            return None
        first = data.find(b"\n")
        if first == end:  # one line: data: X
            if data[:6] != b"data: ":
                return None
            name = None
            value = data[6:end]
        elif data[:7] == b"event: " and data[first + 1 : first + 7] == b"data: ":
            if data.find(b"\n", first + 1) != end:
                return None
            name = data[7:first].decode("utf-8", "replace") or None
            value = data[first + 7 : end]
        else:
            return None
        if data.find(b"\r") >= 0 or len(value) + 1 > self._max:
            return None  # CRs and over-long events take the general path (and its errors)
        return SSEEvent(name, value)

    def close(self) -> list[SSEEvent]:
        """End of the body: deliver what is pending as a final event (see the module doc)."""
        lines = [b"".join(self._tail)] if self._tail else []
        self._tail = []
        self._tail_len = 0
        self._skip_lf = False
        lines.append(b"")
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        if self._bom and lines:
            self._bom = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        out: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    parts = self._data
                    joined = parts[0] if len(parts) == 1 else b"\n".join(parts)
                    out.append(SSEEvent(self._event, joined))
                    self._data = []
                self._event = None
                self._size = 0
                continue
            if line[:6] == b"data: ":  # the common case, without a search for the colon
                value = line[6:]
            else:
                colon = line.find(b":")
                if colon == 0:
                    continue  # comment (keep-alive)
                if colon < 0:
                    name, value = line, b""
                else:
                    name, value = line[:colon], line[colon + 1 :]
                    if value[:1] == b" ":
                        value = value[1:]
                if name == b"event":
                    self._event = value.decode("utf-8", "replace") or None
                    continue
                if name != b"data":
                    continue  # id, retry and unknown fields
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self._max:
                raise self._too_large()
        return out

    def _too_large(self) -> UpstreamBadResponseError:
        return UpstreamBadResponseError(f"upstream SSE event exceeds {self._max} bytes")


def encode_event(event: str | None, data: bytes) -> bytes:
    """One SSE event. Line breaks inside `data` become separate ``data:`` lines, so the decoder
    gives the same bytes back (with CR and CRLF turned into LF)."""
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    if data.find(b"\n") >= 0 or data.find(b"\r") >= 0:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    return head + b"data: " + data + b"\n\n"


def end_of_last_event(buf: bytes | bytearray, start: int = 0) -> int:
    """The index just after the last blank line (LF LF or CRLF CRLF) ending an event in
    ``buf[start:]``; -1 if none. For code that forwards whole events without decoding them."""
    lf = buf.rfind(b"\n\n", start)
    crlf = buf.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1)
