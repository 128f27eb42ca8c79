"""HealthBook: the health check selection runs, feedback, reload carry-over and its bound."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import load_config
from proxy.resilience.health import HealthBook
from proxy.resilience.outcome import Outcome
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.selection import BREAKER_OPEN, Selector, failure_status
from proxy.routing.types import Candidate, Requirements, Route, Target

from .helpers import candidate, provider, resilience

E5 = Outcome.SERVER_ERROR


def attempt(book: HealthBook, cand: Candidate, outcome: Outcome, now: float) -> bool:
    """One attempt; False when the book refused it."""
    ticket = book.on_start(cand, now)
    if ticket is None:
        return False
    book.on_result(cand, ticket, outcome, now)
    return True


def test_a_candidate_never_tried_is_healthy() -> None:
    p = provider("p", 2)
    book = HealthBook(resilience(), [p], now=0)
    assert book.healthy(candidate(p), 0) and book.checker(0)(candidate(p))
    assert book.tracked == 0  # reads make no entries


def test_an_open_breaker_makes_it_unhealthy_and_refuses_starts() -> None:
    p = provider("p", 2)
    book = HealthBook(
        resilience({"consecutive_failures": 2, "open_s": 5}, {"enabled": False}), [p], now=0
    )
    a, b = candidate(p, "m"), candidate(p, "other")
    attempt(book, a, E5, 0)
    assert book.healthy(a, 0)
    attempt(book, a, E5, 0)
    assert not book.healthy(a, 0) and not book.checker(0)(a)
    assert book.on_start(a, 1) is None
    assert book.healthy(b, 0)  # another model on the same deployment works
    assert book.healthy(a, 5)  # half-open: one probe may go
    assert attempt(book, a, Outcome.SUCCESS, 5)
    assert attempt(book, a, Outcome.SUCCESS, 5)
    breaker = book.breaker(a.key)
    assert breaker is not None and breaker.state.value == "closed"


def test_an_ejected_deployment_is_unhealthy_for_every_model() -> None:
    p = provider("p", 2)
    book = HealthBook(resilience({"consecutive_failures": 100}, {"consecutive_5xx": 3}), [p], now=0)
    a = candidate(p, "m")
    for _ in range(3):
        attempt(book, a, E5, 0)
    never_tried = candidate(p, "other-model")
    assert not book.healthy(a, 1) and not book.healthy(never_tried, 1)
    assert book.on_start(never_tried, 1) is None
    assert book.healthy(candidate(p, "m", deployment=1), 1)
    assert book.healthy(a, 30) and book.healthy(never_tried, 30)  # the ejection ended


def test_client_errors_never_take_the_only_deployment_out() -> None:
    # LiteLLM cools down a lone deployment after one 404; Junction must not.
    p = provider("solo", 1)
    book = HealthBook(
        resilience({"consecutive_failures": 1, "min_calls": 1}, {"consecutive_5xx": 1}), [p], now=0
    )
    c = candidate(p)
    for status_outcome in [Outcome.CLIENT_ERROR] * 50 + [Outcome.RATE_LIMITED] * 50:
        assert attempt(book, c, status_outcome, 0)
    assert book.healthy(c, 0)


def test_selection_rejects_unhealthy_candidates_with_breaker_open() -> None:
    a, b = provider("a"), provider("b")
    book = HealthBook(resilience({"consecutive_failures": 1}), [a, b], now=0)
    route = Route("default", (Target(a, "m"), Target(b, "m")))
    selector = Selector([route], clock=lambda: 0.0, rng=random.Random(0))
    ca = selector.candidates(route)[0]
    attempt(book, ca, Outcome.CONNECT_FAILURE, 0)
    sel = selector.select(route, Requirements(10, 10), healthy=book.checker(0))
    assert [c.key for c in sel.ordered] == ["b/d0/m"]
    assert [(c.key, why) for c, why in sel.rejected] == [("a/d0/m", BREAKER_OPEN)]
    attempt(book, sel.ordered[0], Outcome.TIMEOUT, 0)
    none = selector.select(route, Requirements(10, 10), healthy=book.checker(0))
    assert none.ordered == () and failure_status(none) == 503


def test_reload_carries_state_over_by_key() -> None:
    p1 = provider("p", ("east", "west"))
    gone = provider("gone", 1)
    cfg = resilience({"consecutive_failures": 2}, {"consecutive_5xx": 2})
    old = HealthBook(cfg, [p1, gone], now=0)
    east, west = candidate(p1, "m", 0), candidate(p1, "m", 1)
    for _ in range(2):
        attempt(old, east, E5, 0)
    attempt(old, candidate(gone), E5, 0)
    in_flight = old.on_start(west, 0)
    assert in_flight is not None
    # The new config: "west" stays, "east" is renamed away, "gone" is gone, thresholds change.
    p2 = provider("p", ("west", "north"))
    new = HealthBook(resilience({"consecutive_failures": 1}), [p2], now=1, previous=old)
    assert new.breaker("p/east/m") is None and new.breaker("gone/d0/m") is None
    kept = new.breaker("p/west/m")
    assert kept is old.breaker("p/west/m") and kept is not None
    assert kept.config.consecutive_failures == 1
    # The request still running on the old config reports into the shared state.
    old.on_result(west, in_flight, Outcome.RESET, 2)
    west2 = candidate(p2, "m", 0)
    assert not new.healthy(west2, 2)
    assert new.detector("p") is old.detector("p")


def test_reload_keeps_an_open_breaker_open() -> None:
    p = provider("p")
    cfg = resilience({"consecutive_failures": 1, "open_s": 10})
    old = HealthBook(cfg, [p], now=0)
    attempt(old, candidate(p), E5, 0)
    new = HealthBook(cfg, [provider("p")], now=1, previous=old)
    c = candidate(provider("p"))
    assert not new.healthy(c, 5) and new.healthy(c, 10)


def test_bounded_and_idle_entries_go_first() -> None:
    p = provider("p")
    book = HealthBook(
        resilience({"consecutive_failures": 1}, {"enabled": False}), [p], now=0, max_keys=8
    )
    sick = candidate(p, "sick")
    attempt(book, sick, E5, 0)  # the oldest entry, but not idle
    for i in range(100):
        attempt(book, candidate(p, f"m{i}"), Outcome.SUCCESS, 0)
        assert book.tracked <= 8
    assert book.evicted_total == 93
    assert not book.healthy(sick, 1)  # still remembered


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(0, 2), st.sampled_from(list(Outcome)), st.floats(0, 3)
        ),
        max_size=80,
    )
)
def test_a_reload_changes_nothing_observable(script: list[tuple[int, int, Outcome, float]]) -> None:
    cfg = resilience(
        {"consecutive_failures": 2, "min_calls": 2, "window_calls": 4}, {"consecutive_5xx": 2}
    )
    providers = [provider("a", 2), provider("b", 1)]
    book = HealthBook(cfg, providers, now=0)
    cands = [
        candidate(p, m, d) for p in providers for d in range(len(p.deployments)) for m in ("x", "y")
    ]
    now = 0.0
    for i, _, outcome, dt in script:
        now += dt
        attempt(book, cands[i % len(cands)], outcome, now)
    reloaded = HealthBook(cfg, [provider("a", 2), provider("b", 1)], now=now, previous=book)
    assert reloaded.snapshot(now) == book.snapshot(now)
    for c in cands:
        assert reloaded.healthy(c, now) == book.healthy(c, now)
        assert reloaded.healthy(c, now + 1000) == book.healthy(c, now + 1000)


def test_snapshot() -> None:
    p = provider("p")
    book = HealthBook(resilience({"consecutive_failures": 1, "open_s": 5}), [p], now=0)
    attempt(book, candidate(p), Outcome.TIMEOUT, 0)
    snap = book.snapshot(1)
    assert snap["tracked"] == 1 and snap["max_tracked"] == 4096 and snap["evicted_total"] == 0
    breakers = snap["breakers"]
    assert isinstance(breakers, dict)
    view = breakers["p/d0/m"]
    assert (view["provider"], view["deployment"], view["model"]) == ("p", "d0", "m")
    assert view["healthy"] is False and view["state"] == "open" and view["open_remaining_s"] == 4.0
    clusters = snap["clusters"]
    assert isinstance(clusters, dict)
    assert clusters["p"]["deployments"]["d0"]["consecutive_local_failures"] == 1
    one = book.candidate_snapshot(candidate(p, "never"), 1)
    assert one["healthy"] is True and one["breaker"]["state"] == "closed"  # type: ignore[index]


def test_outcome_uses_the_configured_slow_threshold() -> None:
    book = HealthBook(resilience({"slow_call_s": 2.0}), [provider("p")], now=0)
    assert book.outcome(200, None, 2.5) is Outcome.SLOW
    assert book.outcome(200, None, 1.5) is Outcome.SUCCESS
    assert book.outcome(404, None, 9.0) is Outcome.CLIENT_ERROR


CONFIG = """\
providers:
  - name: p
    dialect: openai
    deployments:
      - {name: east, base_url: "https://east.test"}
      - {name: west, base_url: "https://west.test"}
    models: [m]
router:
  default: p,m
resilience:
  breaker: {consecutive_failures: %d}
"""


def test_runtime_builds_and_carries_the_book(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text(CONFIG % 2)
    clock = [100.0]
    old = RuntimeConfig.from_config(load_config(path, env={}), clock=lambda: clock[0])
    first = old.selector.candidates(old.routes["default"])[0]
    for _ in range(2):
        attempt(old.health, first, E5, 100)
    assert not old.health.healthy(first, 100)
    path.write_text(CONFIG % 7)
    new = RuntimeConfig.from_config(load_config(path, env={}), previous=old, clock=lambda: clock[0])
    again = new.selector.candidates(new.routes["default"])[0]
    assert again.key == first.key and not new.health.healthy(again, 100)
    breaker = new.health.breaker(again.key)
    assert breaker is not None and breaker.config.consecutive_failures == 7
    fresh = RuntimeConfig.from_config(load_config(path, env={}))
    assert fresh.health.healthy(again, 100)
