"""L2 in a real redis-server: shared by two workers, purged by tenant, bounded by entry size;
Redis killed or paused under load costs no request and at most the Redis timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running
from tests.integration.redis.server import RedisServer

from .helpers import AUTH, KEY_B, cache_stats, messages, msg, unique, verdict, wait_for

TIMEOUT_MS = 50
OPEN_S = 0.3
MARGIN_S = 0.25  # what a request may take beyond the Redis timeout (loaded 2-core machine)


def sections(
    server: RedisServer, prefix: str, open_s: float = OPEN_S, **cache: Any
) -> dict[str, Any]:
    return {
        "auth": AUTH,
        "redis": {
            "url": server.url,
            "key_prefix": prefix,
            "timeout_ms": TIMEOUT_MS,
            "breaker": {"consecutive_failures": 3, "open_s": open_s},
        },
        "cache": cache,
    }


def cache_keys(server: RedisServer, prefix: str) -> list[str]:
    with server.client() as client:
        return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}cache:*"))


def test_l2_is_shared_by_workers_and_fills_l1(
    junctions: Callable[..., Running], mock: MockProvider, redis_server: RedisServer, prefix: str
) -> None:
    one = junctions(**sections(redis_server, prefix, ttl_s=120))
    two = junctions(**sections(redis_server, prefix, ttl_s=120))
    body = msg(unique())
    assert verdict(messages(one, body)) == "miss"
    wait_for(lambda: len(cache_keys(redis_server, prefix)) == 1)
    [key] = cache_keys(redis_server, prefix)
    assert key.startswith(f"{prefix}cache:team-a:") and len(key.rsplit(":", 1)[1]) == 64
    with redis_server.client() as client:
        assert 100_000 < client.pttl(key) <= 120_000
    hit = messages(two, body)
    assert verdict(hit) == "hit-l2" and hit.status_code == 200
    assert verdict(messages(two, body)) == "hit-l1"
    assert mock.requests_total == 1
    stats = cache_stats(two)
    assert stats["hits_l2_total"] == 1 and stats["hits_l1_total"] == 1
    assert stats["l2"]["state"] == "closed"
    # Another tenant does not see it, even in L2.
    assert verdict(messages(two, body, key=KEY_B)) == "miss"
    wait_for(lambda: len(cache_keys(redis_server, prefix)) == 2)
    # A purge of one tenant reaches L2: the other worker's next lookup misses there.
    admin = f"http://127.0.0.1:{one.admin_port}/admin/cache"
    doc = httpx.post(admin, params={"tenant": "team-a"}, timeout=5).json()
    assert doc["l2_purged"] == 1 and doc["l1_purged"] == 1
    assert [k.split(":")[-2] for k in cache_keys(redis_server, prefix)] == ["team-b"]
    assert verdict(messages(one, body)) == "miss"


def test_entries_above_the_size_limit_are_not_stored(
    junctions: Callable[..., Running], mock: MockProvider, redis_server: RedisServer, prefix: str
) -> None:
    run = junctions(**sections(redis_server, prefix, max_entry_bytes=600))
    body = msg(unique(), max_tokens=400)
    long = {"x-mock-output-tokens": "200"}
    assert [verdict(messages(run, body, **long)) for _ in range(2)] == ["miss", "miss"]
    stats = cache_stats(run)
    assert stats["not_stored_total"] == 2 and stats["stores_total"] == 0
    assert cache_keys(redis_server, prefix) == []


def _timed(run: Running, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r = messages(run, body)
    return r, time.monotonic() - start


def test_redis_killed_mid_run_costs_no_request(
    junctions: Callable[..., Running],
    mock: MockProvider,
    own_redis: RedisServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="junction.cache")
    run = junctions(**sections(own_redis, prefix, open_s=30))  # stays open for the test
    stored = msg(unique())
    assert verdict(messages(run, stored)) == "miss"
    wait_for(lambda: len(cache_keys(own_redis, prefix)) == 1)
    own_redis.kill()
    for _ in range(10):
        r, took = _timed(run, msg(unique()))  # L1 misses: each asks L2 (until the breaker)
        assert r.status_code == 200 and verdict(r) == "miss"
        assert took < TIMEOUT_MS / 1000 + MARGIN_S
    assert verdict(messages(run, stored)) == "hit-l1"  # L1 does not need Redis
    stats = cache_stats(run)
    assert stats["l2"]["state"] == "open"
    assert stats["l2"]["errors_total"] == 3  # then the breaker stopped paying the timeout
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "L2 lookups are misses" in warnings[0]


def test_redis_paused_costs_at_most_the_timeout_and_comes_back(
    junctions: Callable[..., Running], mock: MockProvider, own_redis: RedisServer, prefix: str
) -> None:
    run = junctions(**sections(own_redis, prefix, open_s=1.0))
    messages(run, msg(unique()))  # connects the pool while Redis answers
    own_redis.pause()
    took = []
    for _ in range(12):
        r, seconds = _timed(run, msg(unique()))
        assert r.status_code == 200
        took.append(seconds)
    assert max(took) < TIMEOUT_MS / 1000 + MARGIN_S
    stats = cache_stats(run)
    assert stats["l2"]["state"] != "closed" and stats["l2"]["errors_total"] <= 4
    own_redis.resume()
    time.sleep(1.05)  # the breaker's open time (real time: the worker's clock)
    body = msg(unique())
    assert verdict(messages(run, body)) == "miss"  # the probe reaches Redis again
    wait_for(lambda: cache_stats(run)["l2"]["state"] == "closed")
    wait_for(lambda: len(cache_keys(own_redis, prefix)) >= 1)
