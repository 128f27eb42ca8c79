"""Outlier ejection per deployment, rule by rule, and its invariants under hypothesis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.resilience.outcome import Outcome
from proxy.resilience.outlier import OutlierDetector

from .helpers import outlier_config

E5, LOCAL, OK = Outcome.SERVER_ERROR, Outcome.CONNECT_FAILURE, Outcome.SUCCESS


def make(hosts: int = 4, **overrides: Any) -> OutlierDetector:
    return OutlierDetector("p", [f"d{i}" for i in range(hosts)], outlier_config(**overrides))


def feed(d: OutlierDetector, host: str, outcome: Outcome, now: float, times: int = 1) -> None:
    for _ in range(times):
        d.on_result(host, outcome, now)


def test_consecutive_5xx_eject() -> None:
    d = make(consecutive_5xx=3)
    feed(d, "d0", E5, 0, 2)
    feed(d, "d0", Outcome.CLIENT_ERROR, 0)  # an answer that is not a 5xx resets the run
    feed(d, "d0", E5, 0, 2)
    assert not d.ejected("d0", 0)
    feed(d, "d0", E5, 0)
    assert d.ejected("d0", 0) and not d.ejected("d1", 0)
    assert d.host("d0").reason == "3 consecutive 5xx"  # type: ignore[union-attr]


def test_local_failures_count_apart_from_5xx() -> None:
    d = make(consecutive_5xx=3, consecutive_local_failures=3)
    feed(d, "d0", LOCAL, 0, 2)
    feed(d, "d0", E5, 0)  # an upstream answer: the connection works, the local run ends
    feed(d, "d0", Outcome.TIMEOUT, 0)
    feed(d, "d0", Outcome.RESET, 0)
    assert not d.ejected("d0", 0)
    feed(d, "d0", E5, 0)  # the 5xx run went on through the local failures: 2 of 3
    assert not d.ejected("d0", 0)
    feed(d, "d0", E5, 0)
    assert d.ejected("d0", 0)
    feed(d, "d1", LOCAL, 0, 2)
    feed(d, "d1", Outcome.RATE_LIMITED, 0)  # any answer ends a local run
    feed(d, "d1", Outcome.TIMEOUT, 0, 2)
    assert not d.ejected("d1", 0)
    feed(d, "d1", Outcome.RESET, 0)
    assert d.ejected("d1", 0)
    assert d.host("d1").reason == "3 consecutive local-origin failures"  # type: ignore[union-attr]


@pytest.mark.parametrize("outcome", [Outcome.ABANDONED])
def test_abandoned_attempts_do_not_count(outcome: Outcome) -> None:
    d = make(consecutive_5xx=2)
    feed(d, "d0", E5, 0)
    feed(d, "d0", outcome, 0, 10)
    feed(d, "d0", E5, 0)
    assert d.ejected("d0", 0)


def test_ejection_expires_and_grows_with_each_ejection() -> None:
    d = make(consecutive_5xx=1, base_ejection_s=30, max_ejection_s=100)
    feed(d, "d0", E5, 0)
    assert d.ejected("d0", 29.9) and not d.ejected("d0", 30)
    feed(d, "d0", E5, 30)  # right after: 2 x 30
    assert d.ejected("d0", 89.9) and not d.ejected("d0", 90)
    feed(d, "d0", E5, 90)  # 3 x 30
    assert not d.ejected("d0", 180)
    feed(d, "d0", E5, 180)  # 4 x 30, capped at 100
    assert d.ejected("d0", 279.9) and not d.ejected("d0", 280)
    assert d.host("d0").ejections_total == 4  # type: ignore[union-attr]


def test_the_multiplier_decays_while_in_service() -> None:
    d = make(consecutive_5xx=1, base_ejection_s=30, max_ejection_s=300)
    for now in (0, 30, 90):  # ejected for 30, 60, 90
        feed(d, "d0", E5, now)
    assert d.host("d0").ejections == 3  # type: ignore[union-attr]
    feed(d, "d0", E5, 180 + 65)  # back in service 65 s: two steps down, then one up
    assert d.host("d0").ejections == 2  # type: ignore[union-attr]
    assert not d.ejected("d0", 245 + 60)


def test_failures_while_ejected_do_not_extend_it() -> None:
    d = make(consecutive_5xx=1, base_ejection_s=30)
    feed(d, "d0", E5, 0)
    feed(d, "d0", E5, 10, 5)  # in-flight attempts that started before
    assert not d.ejected("d0", 30)
    assert d.host("d0").ejections_total == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("hosts", "percent", "max_out"),
    [
        (4, 50, 2),
        (3, 50, 1),
        (10, 10, 1),
        (10, 25, 2),
        (1, 50, 1),
        (2, 20, 1),
        (5, 100, 5),
        (4, 0, 0),
    ],
)
def test_max_ejection_percent(hosts: int, percent: float, max_out: int) -> None:
    d = make(hosts, consecutive_5xx=1, max_ejection_percent=percent)
    assert d.max_ejected() == max_out
    for i in range(hosts):
        feed(d, f"d{i}", E5, 0)
    assert d.ejected_count(0) == max_out
    assert d.ejections_refused_total == hosts - max_out
    # Ejections expire, and a refused host can be ejected once there is room.
    if max_out:
        assert d.ejected_count(30) == 0
        feed(d, f"d{hosts - 1}", E5, 30)
        assert d.ejected(f"d{hosts - 1}", 30)


def test_disabled_never_ejects() -> None:
    d = make(enabled=False, consecutive_5xx=1)
    feed(d, "d0", E5, 0, 10)
    assert not d.ejected("d0", 0)


def test_unknown_host_is_ignored() -> None:
    d = make(consecutive_5xx=1)
    feed(d, "nope", E5, 0)
    assert not d.ejected("nope", 0) and d.ejected_count(0) == 0


def test_reconfigure_keeps_remaining_hosts() -> None:
    d = make(2, consecutive_5xx=1)
    feed(d, "d0", E5, 0)
    kept = d.host("d0")
    d.reconfigure(["d0", "d9"], outlier_config(consecutive_5xx=1))
    assert d.host("d0") is kept and d.ejected("d0", 1)
    assert d.hosts == ("d0", "d9")
    d.reconfigure(["d0", "d9"], outlier_config(enabled=False))
    assert not d.ejected("d0", 1)


def test_snapshot() -> None:
    d = make(2, consecutive_5xx=2)
    feed(d, "d0", E5, 0, 2)
    feed(d, "d1", LOCAL, 0)
    assert d.snapshot(10) == {
        "enabled": True,
        "hosts": 2,
        "ejected": 1,
        "max_ejected": 1,
        "ejections_refused_total": 0,
        "deployments": {
            "d0": {
                "ejected": True,
                "ejected_remaining_s": 20.0,
                "ejection_multiplier": 1,
                "ejections_total": 1,
                "consecutive_5xx": 0,
                "consecutive_local_failures": 0,
                "last_ejection_reason": "2 consecutive 5xx",
            },
            "d1": {
                "ejected": False,
                "ejected_remaining_s": 0.0,
                "ejection_multiplier": 0,
                "ejections_total": 0,
                "consecutive_5xx": 0,
                "consecutive_local_failures": 1,
                "last_ejection_reason": None,
            },
        },
    }


# -- properties --------------------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.integers(0, 7),  # host
        st.sampled_from(list(Outcome)),
        st.sampled_from([0.0, 0.0, 1.0, 10.0, 40.0]),  # clock move before the result
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 8),
    st.sampled_from([0.0, 10.0, 34.0, 50.0, 100.0]),
    st.integers(1, 4),
    st.integers(1, 4),
    steps,
)
def test_never_more_ejected_than_allowed_and_times_are_bounded(
    hosts: int,
    percent: float,
    c5xx: int,
    clocal: int,
    script: list[tuple[int, Outcome, float]],
) -> None:
    d = make(
        hosts,
        consecutive_5xx=c5xx,
        consecutive_local_failures=clocal,
        base_ejection_s=30,
        max_ejection_s=120,
        max_ejection_percent=percent,
    )
    allowed = 0 if percent == 0 else max(1, int(hosts * percent / 100))
    now = 0.0
    totals = {f"d{i}": 0 for i in range(hosts)}
    for index, outcome, dt in script:
        now += dt
        name = f"d{index % hosts}"
        d.on_result(name, outcome, now)
        host = d.host(name)
        assert host is not None
        if host.ejections_total != totals[name]:  # ejected just now
            assert host.ejections_total == totals[name] + 1
            assert outcome.failure
            length = host.ejected_until - now
            assert length == pytest.approx(min(120.0, 30.0 * host.ejections))
            totals[name] = host.ejections_total
        assert d.ejected_count(now) <= allowed
        assert d.ejected_count(now + 120.0) == 0  # every ejection ends by time


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10), st.floats(0.0, 29.0))
def test_back_to_back_ejections_grow_to_the_cap(times: int, gap: float) -> None:
    d = make(1, consecutive_5xx=1, base_ejection_s=30, max_ejection_s=200)
    now, lengths = 0.0, []
    for _ in range(times):
        feed(d, "d0", E5, now)
        host = d.host("d0")
        assert host is not None
        lengths.append(host.ejected_until - now)
        now = host.ejected_until + gap  # back in service less than base_ejection_s
    assert lengths == pytest.approx([min(200.0, 30.0 * k) for k in range(1, times + 1)])
