"""Shared bits for the upstream client tests."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from proxy.upstream.api import UpstreamSettings
from proxy.upstream.client import PooledUpstreamClient

CODECS = ("httptools", "h11")


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_client(
    codec: str = "httptools", clock: FakeClock | None = None, **overrides: object
) -> PooledUpstreamClient:
    settings = replace(UpstreamSettings(connect_timeout_s=5.0), http1_codec=codec, **overrides)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    if clock is None:
        return PooledUpstreamClient(loop, settings, sweep_interval_s=0.01)
    return PooledUpstreamClient(loop, settings, clock, sweep_interval_s=0.01)
