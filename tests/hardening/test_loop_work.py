"""Bounded synchronous work per request (hardening.md F25, LiteLLM#36429): while Junction
handles one very large request, the event loop keeps turning for everybody else. Measured
with a probe timer on Junction's own loop, on both HTTP/1.1 codecs."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running
from tests.integration.proxy.rawhttp import RawConn

PROBE_INTERVAL_S = 0.005


class LagProbe:
    """A timer on the loop under test, re-armed every PROBE_INTERVAL_S; keeps the worst
    lateness seen."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.worst = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False

    def start(self) -> None:
        self._due = time.monotonic() + PROBE_INTERVAL_S
        self._handle = self.loop.call_later(PROBE_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.worst = max(self.worst, now - self._due)
        if not self._stopped:
            self._due = now + PROBE_INTERVAL_S
            self._handle = self.loop.call_later(PROBE_INTERVAL_S, self._tick)

    def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()


def big_request(text_bytes: int) -> bytes:
    words = ("lorem ipsum dolor sit amet " * (text_bytes // 27 + 1))[:text_bytes]
    return json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 16,
            "system": [{"type": "text", "text": words[: text_bytes // 4]}],
            "messages": [
                {"role": "user", "content": words},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": words[: text_bytes // 2]}]},
            ],
        }
    ).encode()


@pytest.mark.parametrize(
    ("text_bytes", "status"),
    [
        # Near the 200k-token context window: counted, then forwarded. Measured: ~9 ms.
        (400_000, 200),
        # ~14 MB of JSON (under the 32 MiB limit), far over the window. Measured: ~175 ms,
        # linear in the body (parse + token estimate), so bounded by limits.max_body_bytes.
        (8 * 1024 * 1024, 400),
    ],
    ids=["near-window", "14MB"],
)
def test_a_huge_request_does_not_stall_the_loop(
    junction: Running, mock: MockProvider, text_bytes: int, status: int
) -> None:
    body = big_request(text_bytes)
    probe = LagProbe(junction.lt.loop)
    junction.lt.call(probe.start)
    try:
        c = RawConn(junction.port, timeout=30)
        headers = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]
        c.request("POST", "/v1/messages", headers, body)
        resp, out = c.response()
        c.close()
    finally:
        junction.lt.call(probe.stop)
    assert resp.status_code == status, out[:300]
    print(f"worst loop lag {probe.worst * 1000:.1f} ms for a {len(body) / 1e6:.1f} MB request")
    # Generous bounds: the suite runs on two busy cores.
    bound = 0.15 if status == 200 else 1.0
    assert probe.worst < bound, f"the loop stalled {probe.worst * 1000:.0f} ms on one request"
