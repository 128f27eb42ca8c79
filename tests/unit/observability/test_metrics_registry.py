"""The metrics registry's text exposition, read back with prometheus_client's parser."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.observability.metrics import Registry


def parsed(registry: Registry) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(registry.render().decode()):
        out[f"{family.name}:{family.type}"] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def test_counters_histograms_and_gauges_round_trip() -> None:
    r = Registry()
    c = r.counter("junction_things_total", "Things.", ("kind",))
    c.inc(("a",))
    c.inc(("a",), 2.5)
    c.inc(('quote" back\\ new\nline',))
    h = r.histogram("junction_wait_seconds", "Waits.", (0.1, 1.0), ("op",))
    for v in (0.05, 0.1, 0.5, 7.0):
        h.observe(("x",), v)
    r.gauge("junction_open", "Open.", lambda: [(("p",), 3.0)], ("pool",))
    doc = parsed(r)
    assert doc["junction_things:counter"] == [
        ("junction_things_total", {"kind": "a"}, 3.5),
        ("junction_things_total", {"kind": 'quote" back\\ new\nline'}, 1.0),
    ]
    buckets = {s[1]["le"]: s[2] for s in doc["junction_wait_seconds:histogram"] if "le" in s[1]}
    assert buckets == {"0.1": 2.0, "1.0": 3.0, "+Inf": 4.0}  # cumulative; le is inclusive
    rest = {s[0]: s[2] for s in doc["junction_wait_seconds:histogram"] if "le" not in s[1]}
    assert rest["junction_wait_seconds_count"] == 4
    assert math.isclose(rest["junction_wait_seconds_sum"], 7.65)
    assert doc["junction_open:gauge"] == [("junction_open", {"pool": "p"}, 3.0)]


def test_unlabelled_series_exist_from_the_start() -> None:
    r = Registry()
    r.counter("junction_events_total", "Events.")
    r.histogram("junction_lag_seconds", "Lag.", (0.01,))
    doc = parsed(r)
    assert doc["junction_events:counter"] == [("junction_events_total", {}, 0.0)]
    assert ("junction_lag_seconds_count", {}, 0.0) in doc["junction_lag_seconds:histogram"]


def test_series_beyond_the_bound_go_to_other() -> None:
    r = Registry(max_series=2)
    c = r.counter("junction_models_total", "Per model.", ("model",))
    for name in ("a", "b", "c", "d", "a"):
        c.inc((name,))
    doc = parsed(r)
    assert {s[1]["model"]: s[2] for s in doc["junction_models:counter"]} == {
        "a": 2.0,
        "b": 1.0,
        "other": 2.0,
    }
    assert doc["junction_metric_series_dropped:counter"] == [
        ("junction_metric_series_dropped_total", {"metric": "junction_models_total"}, 2.0)
    ]


def test_names_and_registration_are_checked() -> None:
    r = Registry()
    with pytest.raises(ValueError, match="_total"):
        r.counter("junction_things", "No suffix.")
    r.counter("junction_once_total", "Once.")
    with pytest.raises(ValueError, match="twice"):
        r.counter("junction_once_total", "Again.")
