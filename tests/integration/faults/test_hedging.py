"""Hedged streaming requests (``router.<route>.hedge``) against real slow upstreams: the
first answer is kept, the other attempt cancelled, and nothing is left behind."""

from __future__ import annotations

import time
from typing import Any

from tests.support.faultproxy import closed_port

from .clients import ask, completed
from .rig import Rig, provider, target

ROUTE = "x-junction-route"


def _hedged(rig: Rig, first: dict[str, Any], second: dict[str, Any], **hedge: Any) -> Any:
    return rig.junction(
        [first, second],
        [target(first), target(second)],
        upstream={"response_header_timeout_s": 10.0},
        router={"default": {"targets": [target(first), target(second)], "hedge": hedge}},
    )


def test_a_late_first_byte_is_hedged_and_the_faster_answer_kept(rig: Rig) -> None:
    slow = rig.mock(latency_ms=2000)
    fast = rig.mock()
    run = _hedged(rig, provider("slow", slow.port), provider("fast", fast.port), delay_s=0.2)
    started = time.monotonic()
    r = ask(run, stream=True)
    took = time.monotonic() - started
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert r.headers[ROUTE].startswith("fast,")
    assert 0.2 <= took < 1.5  # not the slow provider's 2 s
    assert slow.recorder.requests_total == 1 and fast.recorder.requests_total == 1
    rig.assert_settled(run)


def test_the_primary_answering_first_cancels_the_hedge(rig: Rig) -> None:
    primary = rig.mock(latency_ms=500)
    slower = rig.mock(latency_ms=3000)
    run = _hedged(
        rig, provider("primary", primary.port), provider("slower", slower.port), delay_s=0.1
    )
    started = time.monotonic()
    r = ask(run, stream=True)
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert r.headers[ROUTE].startswith("primary,")
    assert time.monotonic() - started < 2.0
    assert slower.recorder.requests_total == 1  # the hedge was sent, then cancelled
    rig.assert_settled(run)


def test_the_primary_failing_adopts_the_running_hedge(rig: Rig) -> None:
    failing = rig.mock(latency_ms=400, fail_rate=1.0, fail_mode="status:500", retry_after_s=0)
    backup = rig.mock(latency_ms=700)
    run = _hedged(
        rig, provider("failing", failing.port), provider("backup", backup.port), delay_s=0.1
    )
    started = time.monotonic()
    r = ask(run, stream=True)
    took = time.monotonic() - started
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert r.headers[ROUTE].startswith("backup,")
    assert took < 1.4  # the hedge's head start counted: no fresh fallback after 0.4 s
    assert backup.recorder.requests_total == 1  # not a second request to the backup
    rig.assert_settled(run)


def test_a_failing_hedge_leaves_the_primary_running(rig: Rig) -> None:
    slowish = rig.mock(latency_ms=600)
    run = _hedged(
        rig, provider("primary", slowish.port), provider("dead", closed_port()), delay_s=0.1
    )
    r = ask(run, stream=True)
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert r.headers[ROUTE].startswith("primary,")
    assert slowish.recorder.requests_total == 1
    rig.assert_settled(run)


def test_whole_answers_are_not_hedged(rig: Rig) -> None:
    slow = rig.mock(latency_ms=800)
    fast = rig.mock()
    run = _hedged(rig, provider("slow", slow.port), provider("fast", fast.port), delay_s=0.1)
    r = ask(run)  # not streamed
    assert r.status_code == 200 and r.headers[ROUTE].startswith("slow,")
    assert fast.recorder.requests_total == 0
    rig.assert_settled(run)
