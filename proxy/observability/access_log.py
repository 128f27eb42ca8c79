"""One JSON line per stream, rendered from StreamInfo, written in batches.

Lines are gathered in memory and written when the batch passes a size bound or a short timer
fires, so the request path pays for one dict and one orjson call, not a write syscall.
orjson escapes control characters, so paths or ids cannot inject lines or terminal escapes.
"""

from __future__ import annotations

import asyncio
import time
from typing import BinaryIO

import orjson

from proxy.http.info import StreamInfo

MAX_BATCH_BYTES = 64 * 1024
FLUSH_INTERVAL_S = 0.2
MAX_LOGGED_PATH = 256


class AccessLog:
    def __init__(self, out: BinaryIO, loop: asyncio.AbstractEventLoop) -> None:
        self._out = out
        self._loop = loop
        self._batch: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def record(self, info: StreamInfo) -> None:
        line = orjson.dumps(
            {
                "ts": round(time.time(), 3),
                "request_id": info.request_id.decode("latin-1"),
                "protocol": info.protocol,
                "method": info.method.decode("latin-1"),
                "path": info.path[:MAX_LOGGED_PATH].decode("latin-1"),
                "status": info.status,
                "flags": ",".join(info.flags) or "-",
                "bytes_in": info.bytes_received,
                "bytes_out": info.bytes_sent,
                "duration_ms": round((info.end_s - info.start_s) * 1000, 3),
                "provider": info.upstream_provider or None,
                "model": info.upstream_model or None,
                "upstream_host": info.upstream_host or None,
                "route": info.route or None,
                "scenario": info.scenario or None,
                "attempts": info.attempts,
                "input_tokens": info.input_tokens if info.input_tokens >= 0 else None,
                "output_tokens": info.output_tokens if info.output_tokens >= 0 else None,
                "key": info.api_key_name or None,  # the key's configured name, never the key
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        self._batch.append(line)
        self._size += len(line)
        if self._size >= MAX_BATCH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        data = b"".join(self._batch)
        self._batch.clear()
        self._size = 0
        try:
            self._out.write(data)
            self._out.flush()
        except (OSError, ValueError):
            pass  # a closed or full log sink must never take the data path down
