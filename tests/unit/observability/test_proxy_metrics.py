"""ProxyMetrics' per-stream families, read back with prometheus_client's parser: the rows it
remembers per (dialect, route, status, provider, model) count exactly what observe() would,
the series bound included."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from proxy.http.info import AttemptRecord, StreamInfo
from proxy.observability.metrics import Registry
from proxy.observability.proxy_metrics import MAX_REMEMBERED_SERIES, ProxyMetrics
from proxy.observability.usage import UsageTotals


def finished(route: str, status: int = 200, model: str = "m", ttft_s: float = 0.2) -> StreamInfo:
    info = StreamInfo(10.0, "HTTP/1.1")
    info.dialect, info.route, info.status = "anthropic", route, status
    info.upstream_provider, info.upstream_model = "p", model
    info.response_started_s, info.end_s = 10.0 + ttft_s, 11.0
    info.tries = [AttemptRecord(10.0, 11.0, "p", "default", model, "k", status, "success", ttft_s)]
    return info


def samples(metrics: ProxyMetrics, family: str) -> list[tuple[str, dict[str, str], float]]:
    for f in text_string_to_metric_families(metrics.registry.render().decode()):
        if f.name == family:
            return [(s.name, s.labels, s.value) for s in f.samples]
    return []


def test_requests_and_ttft_per_label_set_with_the_bound() -> None:
    metrics = ProxyMetrics(UsageTotals(), Registry(max_series=2))
    for route in ("r1", "r2", "r3", "r3", "r1", "r4"):
        metrics.on_stream_done(finished(route))
    metrics.on_stream_done(finished("r1", status=500))  # a new label set: over the bound too
    requests = {(s[1]["route"], s[1]["code"]): s[2] for s in samples(metrics, "junction_requests")}
    assert requests == {("r1", "200"): 2.0, ("r2", "200"): 1.0, ("other", "other"): 4.0}
    dropped = samples(metrics, "junction_metric_series_dropped")
    assert ("junction_metric_series_dropped_total", {"metric": "junction_streams"}, 4.0) in (
        dropped
    )
    ttft = samples(metrics, "junction_time_to_first_token_seconds")
    counts = {s[1]["model"]: s[2] for s in ttft if s[0].endswith("_count")}
    assert counts == {"m": 6.0}  # the 500 has no first token


def test_counts_survive_the_memory_starting_over() -> None:
    metrics = ProxyMetrics(UsageTotals(), Registry(max_series=2 * MAX_REMEMBERED_SERIES))
    for n in range(MAX_REMEMBERED_SERIES + 5):
        metrics.on_stream_done(finished("r1", model=f"m{n % (MAX_REMEMBERED_SERIES + 1)}"))
    metrics.on_stream_done(finished("r1", model="m0"))
    requests = {s[1]["route"]: s[2] for s in samples(metrics, "junction_requests")}
    assert requests == {"r1": MAX_REMEMBERED_SERIES + 6.0}
    ttft = samples(metrics, "junction_time_to_first_token_seconds")
    counts = {s[1]["model"]: s[2] for s in ttft if s[0].endswith("_count")}
    assert (counts["m0"], counts["m3"], counts["m4"]) == (3.0, 2.0, 1.0)
