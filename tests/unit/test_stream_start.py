"""stream_verdict: content, an in-band error, or not yet, from a stream's first bytes."""

from __future__ import annotations

import pytest

from proxy.filters.api import Dialect
from proxy.filters.stream_start import STREAM_CONTENT, STREAM_ERROR, STREAM_PENDING, stream_verdict

A_START = b'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n'
A_BLOCK = b'event: content_block_start\ndata: {"type":"content_block_start","index":0}\n\n'
A_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0}\n\n'
A_ERROR = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
O_ROLE = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
O_TEXT = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
O_TOOL = b'data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}\n\n'
O_ERROR = b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'


@pytest.mark.parametrize(
    ("dialect", "window", "verdict"),
    [
        (Dialect.ANTHROPIC, A_START, STREAM_PENDING),
        (Dialect.ANTHROPIC, A_START + A_BLOCK, STREAM_PENDING),
        (Dialect.ANTHROPIC, A_START + A_BLOCK + A_DELTA, STREAM_CONTENT),
        (Dialect.ANTHROPIC, A_START + A_ERROR, STREAM_ERROR),
        (Dialect.ANTHROPIC, A_ERROR, STREAM_ERROR),
        (Dialect.ANTHROPIC, A_START + A_DELTA + A_ERROR, STREAM_CONTENT),
        (Dialect.OPENAI, O_ROLE, STREAM_PENDING),
        (Dialect.OPENAI, O_ROLE + O_TEXT, STREAM_CONTENT),
        (Dialect.OPENAI, O_ROLE + O_TOOL, STREAM_CONTENT),
        (Dialect.OPENAI, O_ROLE + O_ERROR, STREAM_ERROR),
        (Dialect.OPENAI, O_TEXT + O_ERROR, STREAM_CONTENT),
    ],
)
def test_verdicts(dialect: Dialect, window: bytes, verdict: int) -> None:
    assert stream_verdict(window, dialect) == verdict
    # the same bytes split anywhere give the verdict once they are all there
    for cut in range(1, len(window)):
        assert stream_verdict(window[:cut], dialect) in (STREAM_PENDING, verdict)
