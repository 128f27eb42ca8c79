"""Junction's metrics: what each finished stream adds, and what is read at scrape time.

`ProxyMetrics.on_stream_done` runs once per stream, where the access log record is written,
and does as little as it can: one histogram row keyed by (dialect, route, code, provider,
model) takes the duration, and the request count and the duration histogram are that row
added up two ways when ``/metrics`` is scraped; tokens and cost are read from the usage
totals (proxy/observability/usage.py), which count them anyway. Everything that is state
rather than an event — connections, in-flight streams, upstream pools, breakers, outlier
ejections, limiter counters — is read from where it lives at scrape time
(`add_worker_gauges`). Event-loop lag is measured by `LoopLagMonitor`.

Label sets are chosen for bounded cardinality: provider and model come from the config (or an
explicit "provider,model" request the config allows), ``key`` is a configured key's name
(never the key), ``route`` a scenario or alias name, ``code`` the HTTP status. Each family is
bounded by `proxy.observability.metrics.MAX_SERIES` on top.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from proxy.limits.redis import limits_stats
from proxy.observability.metrics import (
    GaugeSamples,
    Histogram,
    HistogramView,
    Labels,
    Registry,
)
from proxy.observability.usage import UsageTotals

if TYPE_CHECKING:
    from proxy.http.info import StreamInfo
    from proxy.server.worker import Worker

# Seconds. Request durations run from milliseconds (a local reply) to minutes (a long
# generation); the first token comes within a second or two, or something is wrong.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TTFT_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
LOOP_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
NONE: Final = "none"
_CODES: Final = {code: str(code) for code in range(100, 600)}
_BREAKER_STATES: Final = ("closed", "open", "half_open")
# Rows of the per-stream histograms remembered per (dialect, route, status, provider, model):
# one lookup per stream instead of building and looking up each family's label tuple.
MAX_REMEMBERED_SERIES: Final = 4096
SeriesKey = tuple[str, str, int, str, str]


class ProxyMetrics:
    """The families a worker exports (docs/observability.md lists them)."""

    def __init__(self, usage: UsageTotals, registry: Registry | None = None) -> None:
        r = self.registry = registry if registry is not None else Registry()
        self.usage = usage
        # [streams row, ttft row (fetched at the first TTFT)]; None: not fetched, or the family
        # is full and the update goes through observe() (which counts it under "other")
        self._rows: dict[SeriesKey, list[list[float] | None]] = {}
        self.streams = r.hidden_histogram(
            "junction_streams", DURATION_BUCKETS, ("dialect", "route", "code", "provider", "model")
        )
        r.gauge(
            "junction_requests_total",
            "Downstream requests finished, by client dialect, route and status code.",
            lambda: self.streams.counts((0, 1, 2)),
            ("dialect", "route", "code"),
            kind="counter",
        )
        r.add(
            HistogramView(
                "junction_request_duration_seconds",
                "Time from the request head to the end of the response.",
                self.streams,
                ("provider", "model"),
            )
        )
        self.ttft = r.histogram(
            "junction_time_to_first_token_seconds",
            "Time from the request head to the first streamed content sent to the client "
            "(successful event streams only).",
            TTFT_BUCKETS,
            ("provider", "model"),
        )
        r.gauge(
            "junction_tokens_total",
            "Tokens the providers reported, by type (input includes cached).",
            self._tokens,
            ("provider", "model", "key", "type"),
            kind="counter",
        )
        r.gauge(
            "junction_cost_usd_total",
            "Cost in USD of the reported usage at the configured prices.",
            lambda: [(k, row.cost_usd) for k, row in self.usage.rows.items()],
            ("provider", "model", "key"),
            kind="counter",
        )
        r.gauge(
            "junction_scenario_tokens_total",
            "Tokens the providers reported, by routing scenario (default, background, title,"
            " subagent, compact, ...) and type.",
            self._scenario_tokens,
            ("scenario", "type"),
            kind="counter",
        )
        r.gauge(
            "junction_scenario_cost_usd_total",
            "Cost in USD of the reported usage, by routing scenario.",
            lambda: [((name,), row.cost_usd) for name, row in self.usage.scenarios.items()],
            ("scenario",),
            kind="counter",
        )
        self.attempts = r.counter(
            "junction_upstream_attempts_total",
            "Upstream attempts by how they ended (success, server_error, timeout, ...).",
            ("provider", "model", "outcome"),
        )
        self.retries = r.counter(
            "junction_upstream_retries_total",
            "Upstream attempts after the first of a request (retries and fallbacks).",
        )
        self.flags = r.counter(
            "junction_response_flags_total",
            "Requests by Envoy-style response flag (UF, UT, URX, RL, DC, FB, RT, ...).",
            ("flag",),
        )
        self.cache = r.counter(
            "junction_cache_requests_total",
            "Response cache lookups by result.",
            ("result",),
        )
        self.loop_lag = r.histogram(
            "junction_event_loop_lag_seconds",
            "How late the event loop ran a timer (a busy or blocked loop delays every request).",
            LOOP_LAG_BUCKETS,
        )

    def on_stream_done(self, info: StreamInfo) -> None:
        provider = info.upstream_provider or NONE
        model = info.upstream_model or NONE
        key = (info.dialect, info.route, info.status, provider, model)
        rows = self._rows.get(key)
        if rows is None:
            if len(self._rows) >= MAX_REMEMBERED_SERIES:
                self._rows.clear()
            rows = self._rows[key] = [self.streams.series(self._stream_labels(key)), None]
        duration = info.end_s - info.start_s
        row = rows[0]
        if row is not None:
            self.streams.observe_row(row, duration)
        else:
            self.streams.observe(self._stream_labels(key), duration)
        tries = info.tries
        if tries:
            for t in tries:
                self.attempts.inc((t.provider, t.model, t.outcome))
            if len(tries) > 1:
                self.retries.inc((), len(tries) - 1)
            if tries[-1].ttfb_s and info.status < 300 and info.response_started_s:
                ttft = info.response_started_s - info.start_s
                row = rows[1]
                if row is None:
                    row = rows[1] = self.ttft.series((provider, model))
                if row is not None:
                    self.ttft.observe_row(row, ttft)
                else:
                    self.ttft.observe((provider, model), ttft)
        for flag in info.flags:
            self.flags.inc((flag,))
        if info.cache:
            self.cache.inc((info.cache,))

    @staticmethod
    def _stream_labels(key: SeriesKey) -> tuple[str, ...]:
        dialect, route, status, provider, model = key
        return (dialect or NONE, route or NONE, _CODES.get(status, "other"), provider, model)

    def _scenario_tokens(self) -> GaugeSamples:
        out: list[tuple[Labels, float]] = []
        for name, row in self.usage.scenarios.items():
            out.append(((name, "input"), row.input_tokens))
            out.append(((name, "output"), row.output_tokens))
            out.append(((name, "cached"), row.cached_tokens))
        return out

    def _tokens(self) -> GaugeSamples:
        out: list[tuple[Labels, float]] = []
        for (provider, model, key), row in self.usage.rows.items():
            out.append(((provider, model, key, "input"), row.input_tokens))
            out.append(((provider, model, key, "output"), row.output_tokens))
            out.append(((provider, model, key, "cached"), row.cached_tokens))
        return out

    def add_worker_gauges(self, worker: Worker, clock: Callable[[], float]) -> None:
        """Families read from the worker's live state when scraped."""
        r = self.registry
        pid = str(os.getpid())
        r.gauge("junction_worker_info", "This worker (each worker serves its own /metrics).",
                lambda: [((pid,), 1)], ("pid",))  # fmt: skip
        r.gauge(
            "junction_downstream_connections",
            "Open downstream connections.",
            lambda: [((), len(worker.conns.conns))],
        )
        r.gauge(
            "junction_downstream_connections_total",
            "Downstream connections accepted.",
            lambda: [((), worker.conns.accepted_total)],
            kind="counter",
        )
        r.gauge(
            "junction_downstream_connections_rejected_total",
            "Downstream connections refused at server.max_connections.",
            lambda: [((), worker.conns.rejected_total)],
            kind="counter",
        )
        r.gauge(
            "junction_streams_active",
            "Requests in flight.",
            lambda: [((), worker.counters.active_streams)],
        )
        r.gauge(
            "junction_access_log_dropped_lines_total",
            "Access-log lines dropped because the log sink could not keep up.",
            lambda: [((), worker.access_log.writer.dropped_lines if worker.access_log else 0)],
            kind="counter",
        )
        r.gauge(
            "junction_upstream_connections",
            "Upstream pool connections by state.",
            lambda: _pool(worker, ("open", "idle", "connecting")),
            ("state",),
        )
        r.gauge(
            "junction_upstream_read_batching",
            "1 while the worker is overloaded and batches streamed answers' reads.",
            lambda: [((), int(worker.client.reads.active))],
        )
        r.gauge(
            "junction_upstream_read_holds_total",
            "Reads of streamed answers deferred by read batching.",
            lambda: [((), worker.client.reads.holds_total)],
            kind="counter",
        )
        r.gauge(
            "junction_upstream_exchanges",
            "Upstream exchanges: active, or pending for a pool connection.",
            lambda: _exchanges(worker),
            ("state",),
        )
        for field, help_text in (
            ("connects_total", "Upstream connections opened."),
            ("connect_failures_total", "Upstream connection attempts that failed."),
            ("overflows_total", "Upstream requests refused because a pool queue was full."),
        ):
            r.gauge(
                f"junction_upstream_{field}",
                help_text,
                _upstream_counter(worker, field),
                kind="counter",
            )
        r.gauge(
            "junction_breaker_state",
            "Circuit breaker state per candidate (1 for the current state).",
            lambda: _breakers(worker, clock()),
            ("provider", "deployment", "model", "state"),
        )
        r.gauge(
            "junction_outlier_ejected",
            "1 while a deployment is ejected by outlier detection.",
            lambda: _ejections(worker, clock()),
            ("provider", "deployment"),
        )
        r.gauge(
            "junction_limits_redis_errors_total",
            "Redis errors of the shared limits backend (0 with the local backend).",
            _limits_counter(worker, "redis_errors_total"),
            kind="counter",
        )
        r.gauge(
            "junction_limits_fallbacks_total",
            "Limit decisions taken locally because Redis was unavailable.",
            _limits_counter(worker, "fallbacks_total"),
            kind="counter",
        )
        r.gauge(
            "junction_cache_l1_entries",
            "Responses held in this worker's L1 cache (absent without a cache section).",
            lambda: _cache_l1(worker, "entries"),
        )
        r.gauge(
            "junction_cache_l1_bytes",
            "Bytes held in this worker's L1 cache.",
            lambda: _cache_l1(worker, "bytes"),
        )
        r.gauge(
            "junction_cache_l1_evictions_total",
            "L1 entries evicted to stay within its bounds.",
            lambda: _cache_l1(worker, "evictions_total"),
            kind="counter",
        )
        r.gauge(
            "junction_config_reloads_total",
            "Config reloads by result.",
            lambda: [
                (("success",), worker.reloads_total),
                (("failure",), worker.reload_failures_total),
            ],
            ("result",),
            kind="counter",
        )


def _pool(worker: Worker, states: tuple[str, ...]) -> GaugeSamples:
    stats = worker.client.stats()
    return [((s,), stats[f"connections_{s}"]) for s in states]


def _exchanges(worker: Worker) -> GaugeSamples:
    stats = worker.client.stats()
    return [(("active",), stats["exchanges_active"]), (("pending",), stats["exchanges_pending"])]


def _upstream_counter(worker: Worker, field: str) -> Callable[[], GaugeSamples]:
    return lambda: [((), worker.client.stats()[field])]


def _limits_counter(worker: Worker, field: str) -> Callable[[], GaugeSamples]:
    def collect() -> GaugeSamples:
        value = limits_stats(worker.holder.current.limiter).get(field, 0)
        return [((), value if isinstance(value, int | float) else 0)]

    return collect


def _cache_l1(worker: Worker, field: str) -> GaugeSamples:
    cache = worker.holder.current.cache
    if cache is None:
        return []
    l1 = cache.snapshot()["l1"]
    return [((), l1[field])]


def _breakers(worker: Worker, now: float) -> GaugeSamples:
    health = worker.holder.current.health
    out: list[tuple[Labels, float]] = []
    for key, provider, deployment, model in health.tracked_keys():
        breaker = health.breaker(key)
        if breaker is None:
            continue
        state = breaker.state_at(now).value
        for s in _BREAKER_STATES:
            out.append(((provider, deployment, model, s), 1 if s == state else 0))
    return out


def _ejections(worker: Worker, now: float) -> GaugeSamples:
    runtime = worker.holder.current
    out: list[tuple[Labels, float]] = []
    for provider in runtime.providers.values():
        detector = runtime.health.detector(provider.name)
        for deployment in provider.deployments:
            ejected = detector is not None and detector.ejected(deployment.name, now)
            out.append(((provider.name, deployment.name), 1 if ejected else 0))
    return out


class LoopLagMonitor:
    """Asks the loop to run a timer every ``interval_s`` and records how late it ran."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float],
        interval_s: float,
        histogram: Histogram,
    ) -> None:
        self._loop = loop
        self._clock = clock
        self._interval_s = interval_s
        self._histogram = histogram
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._due = self._clock() + self._interval_s
        self._timer = self._loop.call_later(self._interval_s, self._tick)

    def _tick(self) -> None:
        now = self._clock()
        self._histogram.observe((), max(now - self._due, 0.0))
        self._due = now + self._interval_s
        self._timer = self._loop.call_later(self._interval_s, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
