"""Turns a run's counters into the JSON summary and the human table (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.histogram import LatencyHistogram
from benchmarks.pacing import RunStats

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# The percentile curve the plots draw (x on a log scale of 1 / (1 - p)).
CURVE_PERCENTILES = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)


@dataclass(frozen=True, slots=True)
class RunSetup:
    url: str
    closed_loop: bool
    connections: int
    warmup_s: float
    duration_s: float
    target_rate: float | None  # requests per second asked for (open loop)
    effective_rate: float | None  # after rounding the interval to whole nanoseconds


def _ms(ns: float) -> float:
    return round(ns / 1e6, 4)


def latency_summary(hist: LatencyHistogram) -> dict[str, Any]:
    out: dict[str, Any] = {"count": hist.count}
    for p in PERCENTILES:
        out[f"p{p:g}"] = _ms(hist.percentile(p))
    out["max"] = _ms(hist.max)
    out["mean"] = _ms(hist.mean())
    if hist.count:
        out["curve"] = [[p, _ms(hist.percentile(p))] for p in CURVE_PERCENTILES]
    return out


def summarize(
    setup: RunSetup, stats: RunStats, generator_cpu_s: float, elapsed_s: float
) -> dict[str, Any]:
    non_2xx = sum(stats.status_errors.values())
    summary: dict[str, Any] = {
        "mode": "closed" if setup.closed_loop else "open",
        "url": setup.url,
        "connections": setup.connections,
        "warmup_s": setup.warmup_s,
        "duration_s": setup.duration_s,
        "target_rate": setup.target_rate,
        "effective_rate": setup.effective_rate,
        "sent": stats.sent,
        "requests": stats.completed,
        "ok": stats.ok,
        "achieved_rps": round(stats.completed_in_window / setup.duration_s, 1),
        "errors": {
            "total": non_2xx + stats.connection_errors + stats.timeouts + stats.unsent,
            "non_2xx": non_2xx,
            "by_status": {str(k): v for k, v in sorted(stats.status_errors.items())},
            "connection": stats.connection_errors,
            "timeouts": stats.timeouts,
            "unsent": stats.unsent,
            "connect_failures": stats.connect_failures,
        },
        "late": None if setup.closed_loop else stats.late,
        "latency_ms": latency_summary(stats.latency),
        "service_ms": latency_summary(stats.service),
        "send_lag_ms": None if setup.closed_loop else latency_summary(stats.send_lag),
        "total_responses": stats.total_responses,
        "elapsed_s": round(elapsed_s, 3),
        "generator_cpu_s": round(generator_cpu_s, 3),
        "generator_cpu_us_per_request": (
            round(generator_cpu_s * 1e6 / stats.total_responses, 1)
            if stats.total_responses
            else None
        ),
    }
    return summary


def _row(name: str, lat: dict[str, Any]) -> str:
    cells = "".join(f"{lat[f'p{p:g}']:>10.3f}" for p in PERCENTILES)
    return f"  {name:<26}{cells}{lat['max']:>10.3f}{lat['mean']:>10.3f}"


def render_table(s: dict[str, Any]) -> str:
    if s["mode"] == "closed":
        mode = f"closed loop, {s['connections']} connections"
    else:
        mode = (
            f"open loop, {s['target_rate']:g} req/s over {s['connections']} connections"
            f" (effective {s['effective_rate']:.1f} req/s)"
        )
    e = s["errors"]
    by_status = ", ".join(f"{code}: {n}" for code, n in e["by_status"].items())
    lines = [
        f"target      {s['url']}",
        f"mode        {mode}",
        f"window      {s['duration_s']:g} s measured after {s['warmup_s']:g} s warmup",
        f"requests    {s['requests']} completed, {s['ok']} 2xx"
        f"; {s['achieved_rps']:.1f} req/s completed inside the window",
        f"errors      non-2xx {e['non_2xx']}{f' {by_status}' if by_status else ''}, connection"
        f" {e['connection']}, timeouts {e['timeouts']}, unsent {e['unsent']}"
        f" (connect failures {e['connect_failures']})",
    ]
    if s["late"] is not None:
        lines.append(
            f"late        {s['late']} requests could not be sent on time"
            " (their connection was busy or down when they were due)"
        )
    cpu = s["generator_cpu_us_per_request"]
    if cpu is not None:
        lines.append(f"generator   {cpu:.1f} us CPU per response ({s['generator_cpu_s']:.2f} s)")
    header = "".join(f"{f'p{p:g}':>10}" for p in PERCENTILES)
    lines.append(f"  {'ms':<26}{header}{'max':>10}{'mean':>10}")
    if s["mode"] == "open":
        lines.append(_row("latency (from schedule)", s["latency_ms"]))
        lines.append(_row("service (from send)", s["service_ms"]))
        lines.append(_row("send lag (on-time sends)", s["send_lag_ms"]))
    else:
        lines.append(_row("latency", s["latency_ms"]))
    return "\n".join(lines)
