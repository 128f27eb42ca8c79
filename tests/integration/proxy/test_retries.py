"""Retries of the last candidate: backoff, the provider's reset hints, the retry budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.h1server import ReceivedRequest, ScriptedHttp1Server, ServerConnection

from .harness import LoopThread, Running

ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
OK = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",'
    b'"content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn",'
    b'"usage":{"input_tokens":3,"output_tokens":1}}'
)
OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def failing_first(n: int, status: int, headers: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
    """Answers ``status`` to the first ``n`` requests, then 200."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        if len(responder.seen) < n:  # type: ignore[attr-defined]
            responder.seen.append(time.monotonic())  # type: ignore[attr-defined]
            await conn.send_response(
                status, [(b"content-type", b"application/json"), *headers], OVERLOADED
            )
        else:
            responder.seen.append(time.monotonic())  # type: ignore[attr-defined]
            await conn.send_response(200, [(b"content-type", b"application/json")], OK)

    responder.seen = []  # type: ignore[attr-defined]
    return responder


@pytest.fixture
def upstream(lt: LoopThread) -> Iterator[Callable[..., ScriptedHttp1Server]]:
    started: list[ScriptedHttp1Server] = []

    def make(responder: Any) -> ScriptedHttp1Server:
        server = lt.run(ScriptedHttp1Server(responder).start())
        started.append(server)
        return server

    yield make
    for s in started:
        lt.run(s.stop())


def config(server: ScriptedHttp1Server, **retry: Any) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "p",
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{server.port}",
                "api_key": "k",
                "models": ["claude-sonnet-4-5"],
            }
        ],
        "router": {"default": "p,claude-sonnet-4-5"},
        "resilience": {"retry": {"base_backoff_s": 0.05, **retry}},
    }


def post(run: Running) -> httpx.Response:
    return httpx.post(f"{run.url}/v1/messages", json=MSG, headers=ANTHROPIC, timeout=10)


def test_a_529_is_retried_once_with_backoff_and_succeeds(
    junction_factory: Callable[..., Running], upstream: Callable[..., ScriptedHttp1Server]
) -> None:
    responder = failing_first(1, 529, [])
    server = upstream(responder)
    run = junction_factory(**config(server))
    resp = post(run)
    assert resp.status_code == 200 and resp.json()["content"][0]["text"] == "hello"
    assert len(server.requests) == 2


def test_retry_after_within_the_cap_is_honoured(
    junction_factory: Callable[..., Running], upstream: Callable[..., ScriptedHttp1Server]
) -> None:
    responder = failing_first(1, 429, [(b"retry-after", b"0.4")])
    server = upstream(responder)
    run = junction_factory(**config(server))
    assert post(run).status_code == 200
    first, second = responder.seen
    assert second - first >= 0.38  # waited what the provider asked, not the 50 ms backoff


def test_retry_after_beyond_the_cap_goes_back_to_the_client(
    junction_factory: Callable[..., Running], upstream: Callable[..., ScriptedHttp1Server]
) -> None:
    server = upstream(failing_first(5, 429, [(b"retry-after", b"30")]))
    run = junction_factory(**config(server, max_backoff_s=5.0))
    resp = post(run)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "30"
    assert len(server.requests) == 1


def test_retries_stop_at_max_retries(
    junction_factory: Callable[..., Running], upstream: Callable[..., ScriptedHttp1Server]
) -> None:
    server = upstream(failing_first(10, 503, []))
    run = junction_factory(**config(server, max_retries=2))
    resp = post(run)
    assert resp.status_code == 503
    assert len(server.requests) == 3


def test_an_empty_retry_budget_allows_no_retry(
    junction_factory: Callable[..., Running], upstream: Callable[..., ScriptedHttp1Server]
) -> None:
    server = upstream(failing_first(1, 529, []))
    run = junction_factory(**config(server, budget_ratio=0.0, budget_min_concurrent=0))
    assert post(run).status_code == 529
    assert len(server.requests) == 1
    budget = run.lt.call(lambda: run.worker.holder.current.retry_budget)
    assert budget.refused == 1 and budget.active_retries == 0 and budget.active_requests == 0
