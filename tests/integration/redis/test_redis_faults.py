"""Redis failing under a running Junction: killed, paused with SIGSTOP, refusing with
fail_closed. A request never fails and never waits past the timeout because of Redis; an
outage logs one warning; the breaker brings Redis back after its open time."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.proxy.harness import Running

from .server import RedisServer
from .test_shared_limits import (
    ANTHROPIC,
    CI_KEY,
    MSG,
    chat,
    limits_stats,
    messages,
    sections,
    wait_for,
)

OPEN_S = 0.3  # the breaker's open time in these tests
TIMEOUT_MS = 50
# What a request may take beyond the Redis timeout (the mock answers in a few ms).
MARGIN_S = 0.1


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "junction.limits" and r.levelno == logging.WARNING
    ]


def redis_cfg(
    server: RedisServer, prefix: str, limits: dict[str, Any], **redis: Any
) -> dict[str, Any]:
    return sections(
        server,
        prefix,
        limits,
        timeout_ms=TIMEOUT_MS,
        breaker={"consecutive_failures": 3, "open_s": OPEN_S},
        **redis,
    )


def test_redis_killed_mid_run_falls_back_to_local_limits_with_one_warning(
    junctions: Callable[..., Running],
    own_redis: RedisServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="junction.limits")
    run = junctions(**redis_cfg(own_redis, prefix, {"requests_per_minute": 3}))
    assert [messages(run).status_code for _ in range(2)] == [200, 200]  # through Redis
    own_redis.kill()
    # The local limiter decides now, from its own (fresh) state: 3 more, then 429.
    statuses = [messages(run).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    time.sleep(OPEN_S + 0.05)
    assert chat(run).status_code == 429  # a probe that fails again: still local
    [warning] = warnings_logged(caplog)  # one line for the whole outage
    assert f"Redis at {own_redis.url} failed" in warning
    assert "until it answers again, limits are decided locally, per worker" in warning
    doc = limits_stats(run)
    assert doc["fallbacks_total"] == 6 and doc["outages_total"] == 1
    assert doc["redis_errors_total"] >= 4  # three to open the breaker, then the probe
    assert doc["redis"]["state"] == "open"
    # Back on the same port, empty: after the open time the next request probes it and
    # shared limits resume (a fresh bucket there).
    own_redis.start()
    time.sleep(OPEN_S + 0.05)
    assert messages(run).status_code == 200
    assert limits_stats(run)["redis"]["state"] == "closed"
    with own_redis.client() as client:
        assert client.exists(f"{prefix}key:ci-bot:rpm:3")
    back = [
        r.getMessage()
        for r in caplog.records
        if r.name == "junction.limits" and r.levelno == logging.INFO
    ]
    assert len(back) == 1 and "6 decisions were made without it" in back[0]
    assert len(warnings_logged(caplog)) == 1


def test_redis_paused_never_holds_a_request_past_the_timeout(
    junctions: Callable[..., Running],
    own_redis: RedisServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = {"requests_per_minute": 1000, "concurrent": 50}
    run = junctions(**redis_cfg(own_redis, prefix, limits))
    headers = {**ANTHROPIC, "x-api-key": CI_KEY}
    timeout_s = TIMEOUT_MS / 1000

    def timed(client: httpx.Client) -> float:
        start = time.monotonic()
        assert client.post("/v1/messages", json=MSG, headers=headers).status_code == 200
        return time.monotonic() - start

    with httpx.Client(base_url=run.url, timeout=10) as client:
        # Connections made, scripts loaded; what a request takes with Redis answering.
        healthy = [timed(client) for _ in range(5)]
        own_redis.pause()
        try:
            paused = [timed(client) for _ in range(8)]
            doc = limits_stats(run)
        finally:
            own_redis.resume()
        assert doc["redis"]["state"] == "open" and doc["fallbacks_total"] == 8
        # No request waits longer than the timeout. The first ones wait it out, until three
        # failed calls (theirs, or the background releases of earlier requests) open the
        # breaker; from then on nothing waits for Redis at all.
        assert max(paused) < timeout_s + MARGIN_S, paused
        waited = [t >= timeout_s * 0.9 for t in paused]
        assert 1 <= sum(waited) <= 3 and waited[0] and not any(waited[3:]), paused
        assert max(paused[3:]) < timeout_s, paused
        time.sleep(OPEN_S + 0.05)
        timed(client)  # the probe: Redis answers, the breaker closes
        doc = limits_stats(run)
    assert doc["redis"]["state"] == "closed" and doc["fallbacks_total"] == 8
    assert doc["redis_errors_total"] >= 3
    assert len(warnings_logged(caplog)) == 1
    shown = {"healthy": healthy, "paused": paused}
    print(f"\nlatency (s): { {k: [round(t, 4) for t in v] for k, v in shown.items()} }")


def test_fail_closed_answers_503_in_the_clients_dialect_while_redis_is_down(
    junctions: Callable[..., Running],
    own_redis: RedisServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    run = junctions(
        **redis_cfg(own_redis, prefix, {"requests_per_minute": 100}, fail_closed=True),
        log={"access_log": True},
    )
    assert messages(run).status_code == 200
    own_redis.kill()
    for _ in range(4):  # through the failing calls, then with the breaker open
        r = messages(run)
        assert r.status_code == 503
        body = r.json()
        assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
        assert "rate limits cannot be checked" in body["error"]["message"]
    r = chat(run)
    assert r.status_code == 503
    assert (r.json()["error"]["type"], r.json()["error"]["code"]) == ("server_error", "overloaded")
    [warning] = warnings_logged(caplog)
    assert "limited requests are refused with 503" in warning
    doc = limits_stats(run)
    assert doc["unavailable_total"] == 5 and doc["fallbacks_total"] == 5
    access_log = run.worker.access_log
    assert access_log is not None
    run.lt.call(access_log.flush)
    out, _ = capfd.readouterr()
    records = [json.loads(line) for line in out.splitlines() if line.startswith('{"ts"')]
    assert [(x["status"], x["flags"]) for x in records[1:]] == [(503, "RLSE")] * 5
    own_redis.start()
    time.sleep(OPEN_S + 0.05)
    assert messages(run).status_code == 200
    wait_for(lambda: limits_stats(run)["redis"]["state"] == "closed")
