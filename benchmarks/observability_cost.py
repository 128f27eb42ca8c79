"""Per-request cost of what a finished stream feeds: usage totals, metrics, the access log.

    .venv/bin/python benchmarks/observability_cost.py

Times `StreamObserver.on_stream_done` over a realistic StreamInfo (one attempt, usage
reported, a configured key) with each part on alone and all together, and the same metric
updates done with prometheus_client for comparison. Single-threaded loop; microseconds per
stream, best of several rounds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import yaml

from proxy.config.loader import load_config
from proxy.http.info import AttemptRecord, StreamInfo
from proxy.observability.access_log import AccessLog
from proxy.observability.observer import StreamObserver
from proxy.observability.proxy_metrics import DURATION_BUCKETS, TTFT_BUCKETS, ProxyMetrics
from proxy.observability.usage import UsageTotals
from proxy.routing.runtime import RuntimeConfig

N = 20_000
ROUNDS = 5


def runtime() -> RuntimeConfig:
    cfg = {
        "providers": [
            {
                "name": "anthropic",
                "dialect": "anthropic",
                "base_url": "http://127.0.0.1:9",
                "api_key": "k",
                "models": ["claude-sonnet-4-5"],
            }
        ],
        "router": {"default": "anthropic,claude-sonnet-4-5"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junction.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return RuntimeConfig.from_config(load_config(path, env={}))


def info() -> StreamInfo:
    i = StreamInfo(100.0, "HTTP/1.1")
    i.method, i.path, i.request_id = b"POST", b"/v1/messages", b"b6a8332db28112bb00000007"
    i.dialect, i.status, i.route, i.scenario = "anthropic", 200, "default", "default"
    i.bytes_received, i.bytes_sent = 812, 1433
    i.response_started_s, i.end_s = 100.35, 101.2
    i.upstream_provider, i.upstream_model = "anthropic", "claude-sonnet-4-5"
    i.upstream_deployment, i.upstream_host, i.attempts = "default", "api.example", 1
    i.input_tokens, i.output_tokens, i.cached_tokens = 1200, 300, 0
    i.api_key_name = "ci-bot"
    i.tries = [
        AttemptRecord(
            100.0, 101.2, "anthropic", "default", "claude-sonnet-4-5", "k", 200, "success", 0.3
        )
    ]
    return i


def best_us(observer: StreamObserver, rt: RuntimeConfig) -> float:
    infos = [info() for _ in range(N)]
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for i in infos:
            observer.on_stream_done(i, rt)
        best = min(best, (time.perf_counter() - t0) / N * 1e6)
        if observer.access_log is not None:
            observer.access_log.flush()
    return best


def prometheus_client_us() -> float:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    reg = CollectorRegistry()
    requests = Counter("r", "r", ("dialect", "route", "code"), registry=reg)
    duration = Histogram("d", "d", ("provider", "model"), buckets=DURATION_BUCKETS, registry=reg)
    ttft = Histogram("t", "t", ("provider", "model"), buckets=TTFT_BUCKETS, registry=reg)
    tokens = Counter("k", "k", ("provider", "model", "key", "type"), registry=reg)
    cost = Counter("c", "c", ("provider", "model", "key"), registry=reg)
    attempts = Counter("a", "a", ("provider", "model", "outcome"), registry=reg)
    i = info()
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(N):
            requests.labels(i.dialect, i.route, str(i.status)).inc()
            duration.labels(i.upstream_provider, i.upstream_model).observe(i.end_s - i.start_s)
            ttft.labels(i.upstream_provider, i.upstream_model).observe(0.35)
            tokens.labels(i.upstream_provider, i.upstream_model, "ci-bot", "input").inc(1200)
            tokens.labels(i.upstream_provider, i.upstream_model, "ci-bot", "output").inc(300)
            cost.labels(i.upstream_provider, i.upstream_model, "ci-bot").inc(0.0081)
            attempts.labels(i.upstream_provider, i.upstream_model, "success").inc()
        best = min(best, (time.perf_counter() - t0) / N * 1e6)
    return best


def main() -> None:
    rt = runtime()
    loop = asyncio.new_event_loop()
    try:
        sink = open(os.devnull, "wb")  # noqa: SIM115 - a real file write, discarded
        rows = {
            "usage totals only": StreamObserver(),
            "usage + metrics": StreamObserver(metrics=ProxyMetrics(u := UsageTotals()), usage=u),
            "usage + access log (json)": StreamObserver(access_log=AccessLog(sink, loop)),
            "usage + access log (text)": StreamObserver(access_log=AccessLog(sink, loop, "text")),
            "usage + metrics + access log (json)": StreamObserver(
                metrics=ProxyMetrics(u2 := UsageTotals()),
                usage=u2,
                access_log=AccessLog(sink, loop),
            ),
        }
        for name, observer in rows.items():
            print(f"{name:40s} {best_us(observer, rt):6.2f} us/stream")
        label = "the same with prometheus_client"
        print(f"{label:40s} {prometheus_client_us():6.2f} us/stream (metrics part only)")
    finally:
        sink.close()
        loop.close()


if __name__ == "__main__":
    main()
