"""Shared bits of the mock provider tests: a bounded loop runner and request builders."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from proxy.mock_provider import MockOptions, MockProvider

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mock_provider"
KEY = "test-key"


def run(main: Coroutine[Any, Any, T], *, timeout: float = 20.0, uvloop: bool = False) -> T:
    """Run ``main`` on a fresh loop, failing it after ``timeout`` seconds."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if uvloop:
        import uvloop as uv

        factory = uv.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(main, timeout))


@asynccontextmanager
async def provider(**options: Any) -> AsyncIterator[MockProvider]:
    mock = MockProvider(MockOptions(port=0, **options))
    await mock.start()
    try:
        yield mock
    finally:
        await mock.stop()


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def anthropic_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    body.update(extra)
    return body


def openai_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    body.update(extra)
    return body


WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "minimum": 1},
        "metric": {"type": "boolean"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "note": {"type": "string"},
    },
    "required": ["location", "days", "metric", "unit"],
}


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of an SSE byte stream."""
    out: list[tuple[str | None, str]] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        out.append((name, "\n".join(data)))
    return out
