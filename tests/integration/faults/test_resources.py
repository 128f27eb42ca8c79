"""Per-provider resource limits (``providers[].resources``) against real slow upstreams: an
attempt over a limit moves to the next candidate or gets a 503 with flag UO at once, and every
slot is given back."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx

from .clients import ask
from .rig import Rig, provider, target

ROUTE = "x-junction-route"
LATENCY_MS = 600  # the slow provider's time to first byte: the first request holds its slot


def _upstreams(run: Any) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{run.admin_port}/admin/upstreams", timeout=5)
    return r.json()  # type: ignore[no-any-return]


def _two_at_once(run: Any) -> tuple[httpx.Response, httpx.Response, float]:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, run)
        time.sleep(0.15)  # the first one is in flight on the slow provider
        started = time.monotonic()
        second = pool.submit(ask, run).result()
        took = time.monotonic() - started
        return first.result(), second, took


def test_max_requests_moves_the_next_request_to_the_fallback(rig: Rig) -> None:
    slow = rig.mock(latency_ms=LATENCY_MS)
    backup_mock = rig.mock()
    primary = provider("primary", slow.port, resources={"max_requests": 1})
    backup = provider("backup", backup_mock.port)
    run = rig.junction(
        [primary, backup],
        [target(primary), target(backup)],
        upstream={"response_header_timeout_s": 5.0},
    )
    first, second, took = _two_at_once(run)
    assert first.status_code == 200 and first.headers[ROUTE].startswith("primary,")
    assert second.status_code == 200 and second.headers[ROUTE].startswith("backup,")
    assert took < LATENCY_MS / 1000  # not queued behind the first
    assert slow.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    doc = _upstreams(run)["resources"]["primary"]
    assert doc["overflows_total"] == 1 and doc["active_requests"] == 0
    rig.assert_settled(run)


def test_max_requests_alone_is_503_uo(rig: Rig) -> None:
    slow = rig.mock(latency_ms=LATENCY_MS)
    primary = provider("primary", slow.port, resources={"max_requests": 1})
    run = rig.junction([primary], [target(primary)], upstream={"response_header_timeout_s": 5.0})
    first, second, took = _two_at_once(run)
    assert first.status_code == 200
    assert second.status_code == 503 and took < LATENCY_MS / 1000
    assert second.json()["error"]["type"] == "overloaded_error"
    assert slow.recorder.requests_total == 1
    assert _upstreams(run)["resources"]["primary"]["active_requests"] == 0
    rig.assert_settled(run)


def test_max_retries_zero_keeps_fallbacks_off_the_provider(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="status:500", retry_after_s=0)
    guarded = rig.mock()
    first = provider("first", failing.port)
    second = provider("second", guarded.port, resources={"max_retries": 0})
    run = rig.junction([first, second], [target(first), target(second)])
    r = ask(run)
    # The second provider takes no fallback traffic: the request fails rather than moving.
    assert r.status_code == 503
    assert guarded.recorder.requests_total == 0
    # ...but serves requests that start on it.
    run2 = rig.junction([second], [target(second)])
    assert ask(run2).status_code == 200
    rig.assert_settled(run)


def test_pool_limits_per_provider(rig: Rig) -> None:
    """max_connections 1 and max_pending_requests 0: a second concurrent request finds the
    one connection busy and no room to wait."""
    slow = rig.mock(latency_ms=LATENCY_MS)
    primary = provider(
        "primary", slow.port, resources={"max_connections": 1, "max_pending_requests": 0}
    )
    run = rig.junction(
        [primary],
        [target(primary)],
        upstream={"response_header_timeout_s": 5.0},
        resilience={"retry": {"max_retries": 0}},
    )
    first, second, took = _two_at_once(run)
    assert first.status_code == 200
    assert second.status_code == 503 and took < LATENCY_MS / 1000
    assert run.upstream_stats()["overflows_total"] == 1
    rig.assert_settled(run)
