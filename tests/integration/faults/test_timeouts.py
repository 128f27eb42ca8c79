"""Per-provider and per-route timeouts (``providers[].timeouts``, ``router.<route>.timeouts``)
against real slow upstreams: each level overrides the one below it (route, then provider, then
the upstream section), and the total timeout bounds a whole request however its bytes flow."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.faultproxy import Fault, FullBacklog

from .clients import ask, completed, in_band_error
from .rig import CONNECT_TIMEOUT_S, HEADER_TIMEOUT_S, Rig, provider, target

ROUTE = "x-junction-route"
SLOW_S = 3.0  # how late the slow upstream answers: far beyond every limit under test


def _route(targets: list[str], **timeouts: float) -> dict[str, Any]:
    return {"targets": targets, "timeouts": timeouts}


def test_provider_first_byte_timeout_overrides_the_upstream_section(rig: Rig) -> None:
    slow = rig.mock()
    fp = rig.proxy(slow.port, Fault(latency_down_s=SLOW_S))
    backup_mock = rig.mock()
    # The section's limit is far; the primary's own first-byte limit is short.
    primary = provider("primary", fp.port, timeouts={"first_byte_s": 0.2})
    backup = provider("backup", backup_mock.port)
    run = rig.junction(
        [primary, backup],
        [target(primary), target(backup)],
        upstream={"response_header_timeout_s": 30.0},
    )
    started = time.monotonic()
    r = ask(run)
    took = time.monotonic() - started
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert 0.2 <= took < 1.5
    assert slow.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


def test_route_first_byte_timeout_overrides_the_providers(rig: Rig) -> None:
    slow = rig.mock()
    fp = rig.proxy(slow.port, Fault(latency_down_s=SLOW_S))
    primary = provider("primary", fp.port, timeouts={"first_byte_s": 30.0})
    run = rig.junction(
        [primary],
        [target(primary)],
        upstream={"response_header_timeout_s": 30.0},
        resilience={"retry": {"max_retries": 0}},
        router={"default": _route([target(primary)], first_byte_s=0.25)},
    )
    started = time.monotonic()
    r = ask(run)
    took = time.monotonic() - started
    assert r.status_code == 504
    assert 0.25 <= took < 1.5
    rig.assert_settled(run)


def test_provider_connect_timeout(rig: Rig) -> None:
    backlog = FullBacklog()  # SYNs go unanswered: the connect hangs
    try:
        backup_mock = rig.mock()
        primary = provider("primary", backlog.port, timeouts={"connect_s": 0.15})
        backup = provider("backup", backup_mock.port)
        run = rig.junction(
            [primary, backup],
            [target(primary), target(backup)],
            upstream={"connect_timeout_s": 30.0},
        )
        started = time.monotonic()
        r = ask(run)
        took = time.monotonic() - started
        assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
        assert took < 1.5
        rig.assert_settled(run)
    finally:
        backlog.close()


@pytest.mark.parametrize("level", ["route", "provider", "upstream"])
def test_total_timeout_ends_a_stream_that_never_goes_idle(rig: Rig, level: str) -> None:
    # 20 tokens a second: bytes keep coming (the idle timeout never fires), and the 64-token
    # answer would take about 3 s, far longer than the total timeout.
    trickle = rig.mock(tokens_per_s=20.0, output_tokens=400)
    extra: dict[str, Any] = {}
    upstream: dict[str, Any] = {"stream_idle_timeout_s": 5.0}
    if level == "provider":
        extra["timeouts"] = {"total_s": 0.6}
    elif level == "upstream":
        upstream["total_timeout_s"] = 0.6
    primary = provider("primary", trickle.port, **extra)
    sections: dict[str, Any] = {"upstream": upstream}
    if level == "route":
        sections["router"] = {"default": _route([target(primary)], total_s=0.6)}
    run = rig.junction([primary], [target(primary)], **sections)
    started = time.monotonic()
    r = ask(run, stream=True)
    took = time.monotonic() - started
    assert r.status_code == 200
    assert in_band_error(r.text, "anthropic") == "timeout_error"
    assert not completed(r.text, "anthropic")
    assert 0.6 <= took < 0.6 + 1.0
    rig.assert_settled(run)


def test_total_timeout_stops_retries(rig: Rig) -> None:
    """A retry whose backoff would end after the total timeout is not attempted."""
    failing = rig.mock(fail_rate=1.0, fail_mode="status:503", retry_after_s=1)
    primary = provider("primary", failing.port)
    run = rig.junction(
        [primary],
        [target(primary)],
        upstream={"total_timeout_s": 0.5},
        resilience={"retry": {"max_retries": 2}},
    )
    started = time.monotonic()
    r = ask(run)
    assert r.status_code == 503
    assert time.monotonic() - started < 0.5
    assert failing.recorder.requests_total == 1  # retry-after 1 s > what was left
    rig.assert_settled(run)


def test_defaults_are_the_upstream_sections(rig: Rig) -> None:
    """Without timeouts anywhere, the section's first-byte limit applies (as before)."""
    slow = rig.mock()
    fp = rig.proxy(slow.port, Fault(latency_down_s=SLOW_S))
    primary = provider("primary", fp.port)
    run = rig.junction([primary], [target(primary)], resilience={"retry": {"max_retries": 0}})
    started = time.monotonic()
    assert ask(run).status_code == 504
    assert HEADER_TIMEOUT_S <= time.monotonic() - started < HEADER_TIMEOUT_S + 1.0
    assert CONNECT_TIMEOUT_S < 1.0
    rig.assert_settled(run)
