"""The streaming scenarios: Claude Code-sized streams (passthrough and translated) and
thousands of long-lived streams held at once, through benchmarks/stream_load.py."""

from __future__ import annotations

import time
from typing import Any

import orjson

from benchmarks.procs import BenchError, rss_kb
from benchmarks.suite import BENCH, LOAD_CPU, REPO, Suite, Target, median_spread
from benchmarks.workload import OPENAI_MODEL, Bodies

STREAM_RATE = 10.0  # new Claude Code-sized streams per second
# Long-lived streams: short answers paced slowly, so thousands are open at once.
HOLD_TOKENS, HOLD_TOKENS_PER_S = 40, 4.0  # 10 s per stream
HOLD_COUNTS = (1_000, 5_000)
SAMPLE_PERIOD_S = 0.25


def _stream(
    suite: Suite,
    t: Target,
    title: str,
    body: bytes,
    *,
    url: str | None = None,
    dialect: str = "anthropic",
    headers: list[tuple[str, str]] | None = None,
    rate: float = STREAM_RATE,
    warmup: float | None = None,
    duration: float | None = None,
    stream_timeout: float = 15.0,
    sample_rss: bool = False,
) -> dict[str, Any]:
    """One stream_load run; Junction's (or a peer's) RSS is sampled while it lasts."""
    a = suite.args
    out = suite.logs / f"st-{len(suite.commands)}.json"
    body_file = suite.logs / f"stbody-{len(body)}.json"
    body_file.write_bytes(body)
    warmup = a.warmup + 1.0 if warmup is None else warmup
    duration = a.duration if duration is None else duration
    argv = [
        suite.py,
        str(BENCH / "stream_load.py"),
        "--url",
        url or t.url(),
        "--dialect",
        dialect,
        "--rate",
        f"{rate:g}",
        "--warmup",
        f"{warmup:g}",
        "--duration",
        f"{duration:g}",
        "--stream-timeout",
        f"{stream_timeout:g}",
        "--body-file",
        str(body_file),
        "--json-out",
        str(out),
        "--quiet",
        "--watch-every",
        "10",
    ]
    for k, v in headers if headers is not None else t.headers:
        argv += ["--header", f"{k}: {v}"]
    full = ["taskset", "-c", str(LOAD_CPU), *argv] if suite.cpus_ok else argv
    suite.record(full)
    print(f"  .. {title} {t.name}", flush=True)
    rss_idle = rss_kb(t.pid) if t.pid else 0
    gen = suite.services.start(f"gen-{len(suite.commands)}", full, REPO)
    peak = rss_idle
    limit = time.monotonic() + warmup + duration + stream_timeout + 30
    while gen.popen.poll() is None:
        if time.monotonic() > limit:
            suite.services.stop(gen)
            raise BenchError(f"{title}: the stream generator did not stop by itself")
        if sample_rss and t.pid:
            peak = max(peak, rss_kb(t.pid))
        time.sleep(SAMPLE_PERIOD_S)
    suite.services.stop(gen)
    if not out.exists():
        raise BenchError(f"{title} {t.name}: stream generator failed\n{gen.stderr_tail()}")
    r: dict[str, Any] = orjson.loads(out.read_bytes())
    keep = (
        "measured_streams",
        "outcomes",
        "failed",
        "by_status",
        "events_per_s_in_window",
        "concurrency",
        "generator_cpu_percent_in_window",
    )
    res = {k: r.get(k) for k in keep}
    for k in ("ttft_ms", "gap_ms", "head_ms"):
        res[k] = r.get(k)
    if sample_rss and t.pid:
        res["rss_idle_kb"], res["rss_peak_kb"] = rss_idle, peak
        top = (r.get("concurrency") or {}).get("max") or 0
        if top:
            res["kb_per_stream"] = round((peak - rss_idle) / top, 2)
    return res


def _stream_repeat(suite: Suite, t: Target, title: str, body: bytes, **kw: Any) -> dict[str, Any]:
    runs = [_stream(suite, t, f"{title} #{i + 1}", body, **kw) for i in range(suite.args.runs)]
    ok = [r for r in runs if (r.get("ttft_ms") or {}).get("count")]
    out: dict[str, Any] = {
        "runs": len(runs),
        "failed": median_spread([r["failed"] or 0 for r in runs]),
    }
    if not ok:
        out["by_status"] = runs[0].get("by_status")
        return out
    for key in ("ttft_ms", "gap_ms"):
        for p in ("p50", "p99"):
            vals = [r[key][p] for r in ok if r.get(key, {}).get("count")]
            if vals:
                out[f"{key[:-3]}_{p}"] = median_spread(vals)
    mid = sorted(ok, key=lambda r: r["ttft_ms"]["p99"])[len(ok) // 2]
    out["ttft_curve"] = mid["ttft_ms"].get("curve")
    out["gap_curve"] = (mid.get("gap_ms") or {}).get("curve")
    out["concurrency_max"] = (mid.get("concurrency") or {}).get("max")
    return out


def stream(suite: Suite, t: Target, b: Bodies) -> dict[str, Any]:
    return _stream_repeat(suite, t, "CC-sized stream", b.cc)


def translate(suite: Suite, t: Target, b: Bodies) -> dict[str, Any]:
    if t.name == "direct":  # the mock's OpenAI endpoint, sent what Junction sends it
        headers = [("authorization", "Bearer bench"), ("content-type", "application/json")]
        return _stream_repeat(
            suite,
            t,
            "translated stream",
            b.cc_openai_direct,
            url=t.url("/v1/chat/completions"),
            dialect="openai",
            headers=headers,
        )
    body = b.cc_openai_model
    if t.name in ("junction", "ccr"):  # an explicit provider,model, as Claude Code's /model
        body = body.replace(
            f'"model":"{OPENAI_MODEL}"'.encode(),
            f'"model":"mock-openai,{OPENAI_MODEL}"'.encode(),
            1,
        )
    return _stream_repeat(suite, t, "translated stream", body)


def streams(suite: Suite, t: Target, b: Bodies) -> dict[str, Any]:
    """Thousands of long-lived slow streams held open: RSS per stream and event gaps."""
    length_s = HOLD_TOKENS / HOLD_TOKENS_PER_S
    pace = [
        ("x-mock-output-tokens", str(HOLD_TOKENS)),
        ("x-mock-tokens-per-s", f"{HOLD_TOKENS_PER_S:g}"),
    ]
    out: dict[str, Any] = {}
    counts = (200, 1_000) if suite.args.quick else HOLD_COUNTS
    for n in counts:
        r = _stream(
            suite,
            t,
            f"{n} long-lived streams",
            b.hold,
            headers=[*t.headers, *pace],
            rate=n / length_s,
            warmup=length_s,
            duration=min(suite.args.duration, 5.0),
            stream_timeout=length_s + 15,
            sample_rss=True,
        )
        out[str(n)] = r
    return out
