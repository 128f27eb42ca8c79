"""Event loop choice: uvloop when importable (or when asked for), else asyncio's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from proxy.errors import ConfigError


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigError("server.loop: uvloop was requested but is not installed") from exc
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
