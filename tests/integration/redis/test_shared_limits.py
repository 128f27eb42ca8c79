"""Limits shared through a real redis-server by two Junction workers: requests per minute,
concurrency slots (taken and given back), tokens and spend counted from the provider's usage;
reloads; the admin listener's view."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import yaml

from proxy.limits.redis import RedisLimiter
from proxy.limits.spend import day_index
from tests.integration.proxy.harness import Running

from .server import RedisServer

CI_KEY = "jx-ci-bot-7f3a9c1e5b2d4068"
ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def sections(
    server: RedisServer, prefix: str, limits: dict[str, Any], **redis: Any
) -> dict[str, Any]:
    return {
        "auth": {"keys": [{"name": "ci-bot", "key": CI_KEY, "limits": limits}]},
        "redis": {"url": server.url, "key_prefix": prefix, **redis},
    }


def messages(run: Running, **kw: Any) -> httpx.Response:
    headers = {**ANTHROPIC, "x-api-key": CI_KEY, **kw.pop("headers", {})}
    return httpx.post(
        f"{run.url}/v1/messages", json=kw.pop("body", MSG), headers=headers, timeout=10
    )


def chat(run: Running) -> httpx.Response:
    headers = {"authorization": f"Bearer {CI_KEY}"}
    return httpx.post(f"{run.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def limits_stats(run: Running) -> dict[str, Any]:
    doc = httpx.get(f"http://127.0.0.1:{run.admin_port}/stats", timeout=5).json()
    return doc["limits"]  # type: ignore[no-any-return]


def test_requests_per_minute_are_shared_by_two_workers(
    junctions: Callable[..., Running], redis_server: RedisServer, prefix: str
) -> None:
    cfg = sections(redis_server, prefix, {"requests_per_minute": 4})
    a, b = junctions(**cfg), junctions(**cfg)
    statuses = [messages(a).status_code, messages(b).status_code, chat(a).status_code]
    statuses.append(messages(b).status_code)
    assert statuses == [200] * 4
    for run in (a, b, a, b):
        r = messages(run)
        assert r.status_code == 429
        assert 14 <= int(r.headers["retry-after"]) <= 15  # 4 per minute: one every 15 s
        assert r.json()["error"] == {
            "type": "rate_limit_error",
            "message": "rate limit exceeded for API key 'ci-bot': 4 requests per minute; "
            f"retry after {r.headers['retry-after']} s",
        }
    r = chat(b)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    with redis_server.client() as client:
        assert client.exists(f"{prefix}key:ci-bot:rpm:4")
    for run in (a, b):
        doc = limits_stats(run)
        assert doc["backend"] == "redis" and doc["redis"]["state"] == "closed"
        assert doc["fallbacks_total"] == 0 and doc["redis_errors_total"] == 0


def test_a_concurrency_slot_is_shared_and_given_back(
    junctions: Callable[..., Running], redis_server: RedisServer, prefix: str
) -> None:
    cfg = sections(redis_server, prefix, {"concurrent": 1})
    a, b = junctions(**cfg), junctions(**cfg)
    client = redis_server.client()
    leases = f"{prefix}key:ci-bot:conc"
    slow: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: slow.append(messages(a, headers={"x-mock-latency-ms": "400"}))
    )
    first.start()
    wait_for(lambda: client.zcard(leases) == 1)
    r = messages(b)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "1 concurrent requests" in r.json()["error"]["message"]
    first.join(10)
    assert slow[0].status_code == 200
    wait_for(lambda: client.zcard(leases) == 0)  # released through the script
    assert messages(b).status_code == 200
    # An error answer gives its slot back too.
    assert messages(a, headers={"x-mock-fail": "status:400"}).status_code == 400
    wait_for(lambda: client.zcard(leases) == 0)
    assert messages(a).status_code == 200
    client.close()


def test_tokens_reported_by_the_provider_count_on_every_worker(
    junctions: Callable[..., Running], redis_server: RedisServer, prefix: str
) -> None:
    cfg = sections(redis_server, prefix, {"tokens_per_minute": 3000})
    a, b = junctions(**cfg), junctions(**cfg)
    heavy = {"x-mock-output-tokens": "4000"}
    body = {**MSG, "max_tokens": 5000, "stream": True}
    assert messages(a, body=body, headers=heavy).status_code == 200
    # The stream reported 4,000 output tokens: the shared bucket is in debt (its arrival time
    # more than a minute ahead) once the correction lands.
    with redis_server.client() as client:
        wait_for(lambda: float(client.get(f"{prefix}key:ci-bot:tpm:3000") or 0) > time.time() + 60)
    r = messages(b, body=body, headers=heavy)
    assert r.status_code == 429
    assert "3000 tokens per minute" in r.json()["error"]["message"]


def test_spend_is_shared_until_the_end_of_the_utc_day(
    junctions: Callable[..., Running], redis_server: RedisServer, prefix: str
) -> None:
    # claude-sonnet-4-5 costs $15 per million output tokens: 4,000 of them are $0.06.
    cfg = sections(redis_server, prefix, {"spend_per_day_usd": 0.05})
    a, b = junctions(**cfg), junctions(**cfg)
    body = {**MSG, "max_tokens": 5000}
    assert messages(a, body=body, headers={"x-mock-output-tokens": "4000"}).status_code == 200
    key = f"{prefix}key:ci-bot:day:{day_index(time.time())}"
    with redis_server.client() as client:
        wait_for(lambda: float(client.get(key) or 0) >= 0.06)
    r = messages(b)
    assert r.status_code == 429
    assert "$0.05 spend per day (UTC)" in r.json()["error"]["message"]
    to_midnight = (day_index(time.time()) + 1) * 86_400 - time.time()
    assert abs(int(r.headers["retry-after"]) - to_midnight) <= 2


def test_a_reload_keeps_the_redis_limiter_or_replaces_and_closes_it(
    junctions: Callable[..., Running], redis_server: RedisServer, prefix: str
) -> None:
    cfg = sections(redis_server, prefix, {"requests_per_minute": 1})
    run = junctions(**cfg)
    assert messages(run).status_code == 200
    first = run.worker.holder.current.limiter
    assert run.lt.call(run.worker.reload)
    assert run.worker.holder.current.limiter is first  # same Redis settings: kept
    assert messages(run).status_code == 429
    # A new prefix is another Redis limiter (a fresh bucket); the old one is closed.
    changed = {**cfg, "redis": {**cfg["redis"], "key_prefix": prefix + "v2:"}}
    path = run.config_path
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **changed}))
    assert run.lt.call(run.worker.reload)
    second = run.worker.holder.current.limiter
    assert isinstance(first, RedisLimiter) and isinstance(second, RedisLimiter)
    assert second is not first and second.fallback is first.fallback
    wait_for(lambda: first.closed)
    assert messages(run).status_code == 200
    # Without `redis:` the local limiter (the same one, state kept) is back.
    local = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "redis"}
    path.write_text(yaml.safe_dump(local))
    assert run.lt.call(run.worker.reload)
    assert run.worker.holder.current.limiter is first.fallback
    wait_for(lambda: second.closed)
    assert limits_stats(run) == {"backend": "local", "active": True}


def test_drained_workers_leave_no_redis_connection(
    junctions: Callable[..., Running], redis_server: RedisServer, prefix: str
) -> None:
    cfg = sections(redis_server, prefix, {"requests_per_minute": 100, "concurrent": 5})
    a, b = junctions(**cfg), junctions(**cfg)
    for _ in range(3):
        assert messages(a).status_code == 200 and messages(b).status_code == 200
    with redis_server.client() as client:
        own = client.client_id()
        assert len([c for c in client.client_list() if c["id"] != str(own)]) >= 2
        a.drain()
        b.drain()
        wait_for(lambda: [c["id"] for c in client.client_list()] == [str(own)])
