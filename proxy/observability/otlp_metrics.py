"""Pushes the worker's metrics by OTLP/HTTP, beside the Prometheus ``/metrics`` page.

How this works: every ``metrics.otlp_interval_s`` a loop timer takes a snapshot of the
registry (`Registry.snapshot`, on the loop that updates it: a few dictionary copies) and hands
it to one exporter thread, which turns it into OpenTelemetry metric data and sends it with
the SDK's OTLP/HTTP exporter (protobuf), so a slow or dead collector never holds the loop.
Snapshots do not queue: while an export is still on its way, the next tick is skipped and
counted (``skipped``). Values are cumulative since the worker started, as on ``/metrics``:
counters become monotonic sums (named without Prometheus' ``_total`` suffix, which OpenTelemetry
names leave out), gauges gauges, histograms explicit-bucket histograms with the same bounds.
The unit comes from the name's suffix (``_seconds`` -> ``s``, ``_bytes`` -> ``By``). On drain
`stop` sends one last snapshot, bounded by the export timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

if TYPE_CHECKING:
    from proxy.observability.metrics import FamilySnapshot, Registry

SCOPE = InstrumentationScope("junction")
_UNITS = (("_seconds", "s"), ("_bytes", "By"))


def _unit(name: str) -> str | None:
    base = name.removesuffix("_total")
    for suffix, unit in _UNITS:
        if base.endswith(suffix):
            return unit
    return None


def to_metric(family: FamilySnapshot, start_ns: int, now_ns: int) -> Metric:
    """One family as OpenTelemetry metric data (cumulative since ``start_ns``)."""
    names = family.labels
    if family.kind == "histogram":
        points = []
        for labels, row in family.rows.items():
            buckets = [int(c) for c in row[:-1]]
            points.append(
                HistogramDataPoint(
                    attributes=dict(zip(names, labels, strict=True)),
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now_ns,
                    count=sum(buckets),
                    sum=row[-1],
                    bucket_counts=buckets,
                    explicit_bounds=[float(b) for b in family.bounds],
                    min=None,  # type: ignore[arg-type]  # not kept: left out of the message
                    max=None,  # type: ignore[arg-type]
                )
            )
        data: Sum | Gauge | Histogram = Histogram(points, AggregationTemporality.CUMULATIVE)
        return Metric(family.name, family.help, _unit(family.name), data)
    numbers = [
        NumberDataPoint(
            attributes=dict(zip(names, labels, strict=True)),
            start_time_unix_nano=start_ns,
            time_unix_nano=now_ns,
            value=value,
        )
        for labels, value in family.samples
    ]
    if family.kind == "counter":
        name = family.name.removesuffix("_total")
        data = Sum(numbers, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        return Metric(name, family.help, _unit(family.name), data)
    return Metric(family.name, family.help, _unit(family.name), Gauge(numbers))


def to_metrics_data(
    snapshot: list[FamilySnapshot], resource: Resource, start_ns: int, now_ns: int
) -> MetricsData:
    metrics = [to_metric(f, start_ns, now_ns) for f in snapshot]
    scope = ScopeMetrics(scope=SCOPE, metrics=metrics, schema_url="")
    return MetricsData([ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")])


class OtlpMetricsPusher:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: Registry,
        endpoint: str,
        *,
        interval_s: float,
        timeout_s: float,
        service_name: str,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._loop = loop
        self._registry = registry
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._clock_ns = clock_ns
        self._start_ns = clock_ns()
        self._resource = Resource.create({"service.name": service_name})
        self._exporter = OTLPMetricExporter(endpoint=endpoint, timeout=timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="junction-otlp")
        self._in_flight: Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()  # counts are read by tests and /metrics off the thread
        self.exported = 0
        self.failed = 0
        self.skipped = 0

    def start(self) -> None:
        self._timer = self._loop.call_later(self._interval_s, self._tick)

    def _tick(self) -> None:
        self._timer = self._loop.call_later(self._interval_s, self._tick)
        if self._in_flight is not None and not self._in_flight.done():
            with self._lock:
                self.skipped += 1
            return
        snapshot = self._registry.snapshot()
        self._in_flight = self._pool.submit(self._export, snapshot, self._clock_ns())

    def _export(self, snapshot: list[FamilySnapshot], now_ns: int) -> bool:
        data = to_metrics_data(snapshot, self._resource, self._start_ns, now_ns)
        try:
            ok = self._exporter.export(data, timeout_millis=self._timeout_s * 1000)
        except Exception:  # a collector that answers garbage must not end the pushes
            ok = MetricExportResult.FAILURE
        with self._lock:
            if ok is MetricExportResult.SUCCESS:
                self.exported += 1
            else:
                self.failed += 1
        return ok is MetricExportResult.SUCCESS

    def stop(self) -> Future[bool]:
        """Stop the timer and send one last snapshot (on the loop); the future says whether
        it was delivered. `close` (off the loop) then ends the thread and the exporter."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return self._pool.submit(self._export, self._registry.snapshot(), self._clock_ns())

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._exporter.shutdown()
