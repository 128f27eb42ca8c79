"""Helpers shared by the observability tests: requests, the admin listener, scripted answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.integration.proxy.harness import Running
from tests.support.h1server import ReceivedRequest, ScriptedHttp1Server, ServerConnection

ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
OK_BODY = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",'
    b'"content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn",'
    b'"usage":{"input_tokens":30,"output_tokens":7,"cache_read_input_tokens":20}}'
)
OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def message(
    prompt: str = "hi", *, stream: bool = False, model: str = "claude-sonnet-4-5"
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 16,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    }


def post(run: Running, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{run.url}/v1/messages", json=body, headers={**ANTHROPIC, **headers}, timeout=10
    )


def admin(
    run: Running, path: str, *, method: str = "GET", token: str | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(
        method, f"http://127.0.0.1:{run.admin_port}{path}", headers=headers, timeout=10
    )


def failing_first(n: int, status: int = 529) -> Callable[[ReceivedRequest, ServerConnection], Any]:
    """Answers ``status`` to the first ``n`` requests, then a 200 with usage."""
    seen: list[ReceivedRequest] = []

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        seen.append(request)
        if len(seen) <= n:
            await conn.send_response(status, [(b"content-type", b"application/json")], OVERLOADED)
        else:
            await conn.send_response(200, [(b"content-type", b"application/json")], OK_BODY)

    responder.seen = seen  # type: ignore[attr-defined]
    return responder


def scripted_config(server: ScriptedHttp1Server, api_key: str = "sk-scripted") -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "scripted",
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{server.port}",
                "api_key": api_key,
                "models": ["claude-sonnet-4-5"],
            }
        ],
        "router": {"default": "scripted,claude-sonnet-4-5"},
        "resilience": {"retry": {"base_backoff_s": 0.01, "max_backoff_s": 0.02, "max_retries": 2}},
    }


def log_lines(run: Running, path: Path) -> list[dict[str, Any]]:
    """Every access log line so far (flushed now rather than on its timer)."""
    assert run.worker.access_log is not None
    run.lt.call(run.worker.access_log.flush)
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
