"""Access log lines: one JSON object per stream, control characters escaped, batched writes."""

from __future__ import annotations

import asyncio
import io

import orjson

from proxy.http.info import StreamInfo
from proxy.observability.access_log import MAX_BATCH_LINES, AccessLog


def _info(path: bytes) -> StreamInfo:
    info = StreamInfo(10.0, "HTTP/1.1")
    info.method = b"POST"
    info.path = path
    info.request_id = b"req-1"
    info.status = 200
    info.end_s = 10.25
    info.add_flag("DC")
    info.upstream_provider = "mock"
    return info


def test_lines_are_json_and_escape_terminal_and_newline_injection() -> None:
    out = io.BytesIO()
    loop = asyncio.new_event_loop()
    try:
        log = AccessLog(out, loop)
        log.record(_info(b"/v1/messages\x1b[31m\r\nFAKE: line"))
        log.record(_info(b"/v1/models"))
        assert out.getvalue() == b""  # batched until flushed
        log.flush()
        log.close()
    finally:
        loop.close()
    raw = out.getvalue()
    lines = raw.splitlines()
    assert len(lines) == 2 and b"\x1b" not in raw and b"\r" not in raw
    first = orjson.loads(lines[0])
    assert first["path"] == "/v1/messages\x1b[31m\r\nFAKE: line"
    assert first["status"] == 200 and first["flags"] == "DC"
    assert first["duration_ms"] == 250.0 and first["provider"] == "mock"
    assert first["model"] is None


def test_a_full_batch_is_written_without_waiting_for_the_timer() -> None:
    out = io.BytesIO()
    loop = asyncio.new_event_loop()
    try:
        log = AccessLog(out, loop)
        for _ in range(MAX_BATCH_LINES):
            log.record(_info(b"/v1/messages"))
        # Handed to the writer thread at once: written without the loop ever running.
        assert log.writer.drain()
        assert len(out.getvalue().splitlines()) == MAX_BATCH_LINES
        log.record(_info(b"/v1/messages"))
        assert log.writer.drain()
        assert len(out.getvalue().splitlines()) == MAX_BATCH_LINES  # the next one waits
        log.close()
    finally:
        loop.close()
    assert len(out.getvalue().splitlines()) == MAX_BATCH_LINES + 1
