"""Metrics are also pushed by OTLP over HTTP when the config names an endpoint (a scripted
collector): periodically while running, and once more on drain, with the same values as
``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE

from tests.integration.proxy.harness import Running
from tests.support.h1server import ScriptedHttp1Server, respond

from .support import message, post


def _attrs(point: Any) -> dict[str, str]:
    return {a.key: a.value.string_value for a in point.attributes}


def test_metrics_are_pushed_to_the_configured_endpoint(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    collector = upstream(respond(200, body=b""))
    run = junction_factory(
        metrics={
            "otlp_endpoint": f"http://127.0.0.1:{collector.port}/v1/metrics",
            "otlp_interval_s": 0.2,
        },
        tracing={"service_name": "junction-test"},
    )
    for _ in range(3):
        assert post(run, message()).status_code == 200
    deadline = time.monotonic() + 10
    while not collector.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert collector.requests, "no periodic push within 10 s"
    run.drain()  # one last push
    last = collector.requests[-1]
    assert last.path == b"/v1/metrics"
    assert last.header(b"content-type") == b"application/x-protobuf"
    export = ExportMetricsServiceRequest.FromString(last.body)
    (resource,) = export.resource_metrics
    attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert attrs["service.name"] == "junction-test"
    metrics = {m.name: m for scope in resource.scope_metrics for m in scope.metrics}
    requests = metrics["junction_requests"]  # junction_requests_total on /metrics
    assert requests.sum.is_monotonic
    assert requests.sum.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
    by_code = {_attrs(p)["code"]: p.as_double for p in requests.sum.data_points}
    assert by_code == {"200": 3.0}
    duration = metrics["junction_request_duration_seconds"]
    assert duration.unit == "s"
    (point,) = duration.histogram.data_points
    assert _attrs(point)["provider"] and point.count == 3 == sum(point.bucket_counts)
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1 and point.sum > 0
    assert not point.HasField("min")  # not kept by Junction: left out, not made up
    active = metrics["junction_streams_active"].gauge  # read from the worker's live state
    assert [p.as_int or p.as_double for p in active.data_points] == [0]
    pushes = {
        _attrs(p)["outcome"]: p.as_int
        for p in metrics["junction_otlp_metric_pushes"].sum.data_points
    }
    assert pushes["ok"] >= 1 and pushes["failed"] == 0  # the earlier pushes, counted
