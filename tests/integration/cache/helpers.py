from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from tests.integration.proxy.harness import Running

ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
KEY_A = "jx-team-a-3c1e5b2d40687f3a9"
KEY_B = "jx-team-b-9e41a7c2d05b3f618"
AUTH = {"keys": [{"name": "team-a", "key": KEY_A}, {"name": "team-b", "key": KEY_B}]}
_words = itertools.count()


def msg(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 40,
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def chat_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4.1",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def unique(prefix: str = "q") -> str:
    return f"{prefix} {next(_words)} {time.monotonic_ns()}"


def messages(
    run: Running, body: dict[str, Any], key: str | None = KEY_A, **headers: str
) -> httpx.Response:
    h = dict(ANTHROPIC)
    if key is not None:
        h["x-api-key"] = key
    h.update(headers)
    return httpx.post(f"{run.url}/v1/messages", json=body, headers=h, timeout=10)


def chat(
    run: Running, body: dict[str, Any], key: str | None = KEY_A, **headers: str
) -> httpx.Response:
    h = {"content-type": "application/json", **headers}
    if key is not None:
        h["authorization"] = f"Bearer {key}"
    return httpx.post(f"{run.url}/v1/chat/completions", json=body, headers=h, timeout=10)


def verdict(r: httpx.Response) -> str | None:
    value: str | None = r.headers.get("x-junction-cache")
    return value


def sse_events(text: str) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) of an event stream body; ``[DONE]`` stays a string."""
    out: list[tuple[str | None, Any]] = []
    for block in text.strip().split("\n\n"):
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        joined = "\n".join(data)
        out.append((name, joined if joined == "[DONE]" else orjson.loads(joined)))
    return out


def cache_stats(run: Running) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{run.admin_port}/admin/cache", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)
