"""One line per stream, rendered from StreamInfo, written in batches off the event loop.

A finished stream's line is rendered at once, while its info is still in the CPU's caches
(rendering a batch of a few hundred infos later measured two to three times dearer per line,
and kept every info alive until then), and handed to the log's writer thread
(`proxy.observability.log_writer`) with the rest of its batch when the batch reaches
``MAX_BATCH_LINES`` or a short timer fires: the request path pays for one render and one
append, never for a write syscall or a slow sink.
orjson escapes control characters, so paths or ids cannot inject lines or terminal escapes;
the text format (``log.format: text``, for terminals) escapes them itself. Neither format has
a field that could hold prompt text or a key: the key is logged by its configured name.
docs/observability.md lists the fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import BinaryIO, Literal

import orjson

from proxy.http.info import StreamInfo
from proxy.observability.log_writer import LogWriter

MAX_BATCH_LINES = 256  # also bounds the loop's pause to render a batch (~1-2 ms)
FLUSH_INTERVAL_S = 0.2
MAX_LOGGED_PATH = 256


LogFormat = Literal["json", "text"]


def _ms(start_s: float, end_s: float) -> float | None:
    return round((end_s - start_s) * 1000, 3) if end_s else None


def render_json(info: StreamInfo, breaker: str, now_unix_s: float) -> bytes:
    # Written for speed (it runs once per request): no helper calls, int() over round().
    tries = info.tries
    start = info.start_s
    started = info.response_started_s
    return orjson.dumps(
        {
            "ts": int(now_unix_s * 1000) / 1000,
            "request_id": info.request_id.decode("latin-1"),
            "protocol": info.protocol,
            "dialect": info.dialect or None,
            "method": info.method.decode("latin-1"),
            "path": info.path[:MAX_LOGGED_PATH].decode("latin-1"),
            "status": info.status,
            "flags": ",".join(info.flags) or "-",
            "bytes_in": info.bytes_received,
            "bytes_out": info.bytes_sent,
            "ttfb_ms": int((started - start) * 1e6) / 1000 if started else None,
            "duration_ms": int((info.end_s - start) * 1e6) / 1000,
            "provider": info.upstream_provider or None,
            "model": info.upstream_model or None,
            "deployment": info.upstream_deployment or None,
            "upstream_host": info.upstream_host or None,
            "route": info.route or None,
            "scenario": info.scenario or None,
            "session": info.session_id or None,  # Claude Code's session id, for cost per session
            "attempts": info.attempts,
            "retries": len(tries) - 1 if tries else 0,
            "upstream_status": (tries[-1].status or None) if tries else None,
            "breaker": breaker or None,
            "input_tokens": info.input_tokens if info.input_tokens >= 0 else None,
            "output_tokens": info.output_tokens if info.output_tokens >= 0 else None,
            "cached_tokens": info.cached_tokens if info.cached_tokens >= 0 else None,
            "cost_usd": info.cost_usd,
            "cache": info.cache or None,
            "key": info.api_key_name or None,  # the key's configured name, never the key
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def _text(value: str) -> str:
    """Printable ASCII as is; anything else (escape sequences, line breaks) escaped."""
    if value.isascii() and value.isprintable():
        return value
    return value.encode("unicode_escape").decode("ascii")


def render_text(info: StreamInfo, breaker: str, now_unix_s: float) -> bytes:
    """``2026-01-05T10:00:00.123Z req=<id> POST /v1/messages 200 anthropic>mock/model ...``"""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_unix_s))
    millis = int(now_unix_s * 1000) % 1000
    ttfb = _ms(info.start_s, info.response_started_s)
    upstream = "-"
    if info.upstream_provider:
        upstream = f"{info.upstream_provider}/{info.upstream_model}"
        if info.upstream_deployment and info.upstream_deployment != "default":
            upstream += f"@{info.upstream_deployment}"
    parts = [
        f"{stamp}.{millis:03d}Z",
        f"req={_text(info.request_id.decode('latin-1'))}",
        _text(info.method.decode("latin-1")),
        _text(info.path[:MAX_LOGGED_PATH].decode("latin-1")),
        str(info.status),
        f"{info.dialect or '-'}>{_text(upstream)}",
        f"{(info.end_s - info.start_s) * 1000:.1f}ms",
        f"ttfb={ttfb:.1f}ms" if ttfb is not None else "ttfb=-",
        f"in={max(info.input_tokens, 0)}",
        f"out={max(info.output_tokens, 0)}",
        f"cached={max(info.cached_tokens, 0)}",
        f"${info.cost_usd:.6f}",
        f"tries={len(info.tries)}",
        f"flags={','.join(info.flags) or '-'}",
    ]
    if breaker:
        parts.append(f"breaker={breaker}")
    if info.cache:
        parts.append(f"cache={_text(info.cache)}")
    if info.api_key_name:
        parts.append(f"key={_text(info.api_key_name)}")
    return (" ".join(parts) + "\n").encode()


class AccessLog:
    def __init__(
        self,
        out: BinaryIO,
        loop: asyncio.AbstractEventLoop,
        fmt: LogFormat = "json",
        *,
        owns_out: bool = False,
    ) -> None:
        self._out = out
        self._owns_out = owns_out  # a file it opened: closed by `close`
        self._loop = loop
        self._render = render_text if fmt == "text" else render_json
        self._batch: list[bytes] = []  # rendered lines not handed to the writer yet
        self._timer: asyncio.TimerHandle | None = None
        self.writer = LogWriter(out)

    def record(self, info: StreamInfo, breaker: str = "") -> None:
        """``breaker``: the state of the last attempted candidate's breaker, if any."""
        batch = self._batch
        batch.append(self._render(info, breaker, time.time()))
        if len(batch) >= MAX_BATCH_LINES:
            self._hand_off()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_INTERVAL_S, self._hand_off)

    def _hand_off(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._batch
        if batch:
            self.writer.submit(b"".join(batch), len(batch))
            batch.clear()

    def flush(self) -> None:
        """Hand over what is pending and wait until it is written (shutdown, tests)."""
        self._hand_off()
        self.writer.drain()

    def close(self) -> None:
        """Write what is pending, stop the writer and close the sink if this log opened it."""
        self._hand_off()
        self.writer.close()
        if self._owns_out:
            with contextlib.suppress(OSError):
                self._out.close()
