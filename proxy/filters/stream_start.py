"""Has a provider's stream started for real, or given up before its first content?

Providers sometimes fail inside a 200 stream: Anthropic sends ``message_start`` and then
``event: error`` (overloaded), OpenAI-compatible servers a ``data: {"error": ...}`` chunk.
Until the first content event nothing useful reached the client, so the router holds those
first bytes and, on such an error, tries elsewhere as if the provider had answered 529. This
module reads the first bytes of a stream and says which it is.
"""

from __future__ import annotations

import re
from typing import Final

from proxy.filters.api import Dialect

STREAM_PENDING: Final = 0  # neither yet: keep holding
STREAM_CONTENT: Final = 1  # real content arrived: release everything
STREAM_ERROR: Final = 2  # the provider gave up before any content

# Beyond this many bytes, or this long, without a verdict the stream is released as it is.
MAX_HELD_WINDOW_BYTES: Final = 64 * 1024
MAX_HOLD_S: Final = 2.0

_ANTHROPIC_ERROR = re.compile(rb"(?:^|\n)event: ?error\r?\n|\"type\": ?\"error\"")
_ANTHROPIC_CONTENT = re.compile(rb"content_block_delta")
_OPENAI_ERROR = re.compile(rb"(?:^|\n)data: ?\{\"error\"")
# A delta with non-empty text, reasoning or tool call: the role chunk's "content":"" is not.
_OPENAI_CONTENT = re.compile(
    rb"\"(?:content|reasoning_content|reasoning)\": ?\"[^\"]|\"tool_calls\": ?\[\{"
)


_LLM_STREAM = {Dialect.ANTHROPIC: b"message_start", Dialect.OPENAI: b'"choices"'}


def stream_verdict(window: bytes, dialect: Dialect) -> int:
    """The verdict on the first bytes of a provider's stream (in the provider's dialect).
    A stream whose first event is not an LLM answer's start is not held at all."""
    if (b"\n\n" in window or b"\r\n\r\n" in window) and _LLM_STREAM[dialect] not in window:
        error = (_ANTHROPIC_ERROR if dialect is Dialect.ANTHROPIC else _OPENAI_ERROR).search(window)
        return STREAM_ERROR if error is not None else STREAM_CONTENT
    if dialect is Dialect.ANTHROPIC:
        error, content = _ANTHROPIC_ERROR.search(window), _ANTHROPIC_CONTENT.search(window)
    else:
        error, content = _OPENAI_ERROR.search(window), _OPENAI_CONTENT.search(window)
    if error is not None and (content is None or error.start() < content.start()):
        return STREAM_ERROR
    if content is not None:
        return STREAM_CONTENT
    return STREAM_PENDING
