"""Renders RESULTS-overhead.md (benchmarks/run.py) from one run (pure: dict in, Markdown out).

Every measured figure comes from the results dict. The goals are the project's targets and the
peer table is quoted, as measured on this kind of machine, from the project's shared notes.
"""

from __future__ import annotations

from typing import Any

GOALS = {
    "rps": 20_000.0,  # per worker
    "added_p50_ms": 0.150,  # at one connection
    "added_p99_ms": 0.500,
    "p99_at_10k_ms": 1.0,
    "rss_idle_mb": 60.0,
    "kb_per_idle_conn": 20.0,
}

PEERS_QUOTED = """\
| proxy | req/s | p50 | p99 | CPU µs per request |
|---|--:|--:|--:|--:|
| nginx 1.22 | 76,900 | 0.36 ms | 1.38 ms | 12.7 |
| haproxy 2.6 | 66,000 | 0.44 ms | 0.77 ms | 15.0 |
| bare uvloop + httptools forwarder (~100 lines) | 49,400 | 0.63 ms | 1.07 ms | 20.0 |
| bare uvloop + h11 forwarder | 8,100 | 3.9 ms | 5.8 ms | 123.5 |
| claude-code-router 2.0 (Node), unpinned, shared cores | ~1,500 | 15–25 ms | 50–150 ms | |
| LiteLLM proxy 1.108, one worker | ~150 | ~200 ms | ~600 ms | ~6,500 |

Framing cost alone per request/response exchange: httptools 1.3 µs, h11 75 µs, h2 ~180 µs;
orjson load+dump of a small body 7 µs. One proxy hop on an idle machine adds ~100 µs p50,
whatever the proxy."""  # noqa: RUF001 (quoted verbatim, en dashes included)

NA = "—"
BUSY_WARNING_PERCENT = 20.0  # of a core, used by other processes before the run started


def _f(value: float | None, digits: int = 3) -> str:
    return NA if value is None else f"{value:,.{digits}f}"


def _lat(run: dict[str, Any] | None, key: str, kind: str = "latency_ms") -> float | None:
    if not run:
        return None
    value = run.get(kind, {}).get(key)
    return None if value is None else float(value)


def _us(ms: float | None) -> float | None:
    return None if ms is None else ms * 1000


def _rps(run: dict[str, Any] | None) -> float | None:
    return float(run["achieved_rps"]) if run else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _met(value: float | None, limit: float, *, at_least: bool = False) -> str:
    if value is None:
        return "not measured"
    if value < 0:  # Junction "removed" latency: the direct run was disturbed, not Junction fast
        return "inconclusive (negative: noise)"
    ok = value >= limit if at_least else value <= limit
    return "yes" if ok else "**no**"


def _errors(run: dict[str, Any] | None) -> str:
    if not run:
        return NA
    e = run["errors"]
    return str(e["total"]) if e["total"] == 0 else f"{e['total']} ({_error_detail(e)})"


def _error_detail(e: dict[str, Any]) -> str:
    parts = [f"{k} {e[k]}" for k in ("non_2xx", "connection", "timeouts", "unsent") if e[k]]
    return ", ".join(parts)


def _cpu(run: dict[str, Any] | None, role: str, key: str = "us_per_request_sched") -> float | None:
    if not run:
        return None
    value = run.get("server_cpu", {}).get(role, {}).get(key)
    return None if value is None else float(value)


def _throughput_section(sc: dict[str, Any]) -> list[str]:
    out = [
        "## a. Max throughput (closed loop, 32 connections)",
        "",
        "a. is the brief's scenario with the mock provider upstream; a'. repeats it with"
        " benchmarks/canned_server.py as the upstream (same core, same port), which costs far less"
        " per request, so that the core shared by the generator and the upstream is less of a"
        " limit.",
        "",
        "| | path | upstream | tool | req/s | p50 ms | p99 ms | errors"
        " | Junction CPU µs/req (schedstat / stat) | upstream CPU µs/req |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    rows = (
        ("a", "direct", "mock", "a_direct", "mock"),
        ("a", "through Junction", "mock", "a_junction", "mock"),
        ("a'", "direct", "canned", "a2_direct", "upstream"),
        ("a'", "through Junction", "canned", "a2_junction", "upstream"),
    )
    for tag, label, upstream, key, role in rows:
        run = sc.get(key)
        junction = NA
        if key.endswith("junction"):
            stat = _cpu(run, "junction", "us_per_request_stat")
            junction = f"{_f(_cpu(run, 'junction'), 1)} / {_f(stat, 1)}"
        out.append(
            f"| {tag} | {label} | {upstream} | loadgen | {_f(_rps(run), 0)}"
            f" | {_f(_lat(run, 'p50'))} | {_f(_lat(run, 'p99'))} | {_errors(run)} | {junction}"
            f" | {_f(_cpu(run, role), 1)} |"
        )
    for label, key in (("direct", "a_wrk_direct"), ("through Junction", "a_wrk_junction")):
        w = sc.get(key)
        if w is None:
            out.append(f"| a | {label} | mock | wrk | not run | | | | | |")
            continue
        errs = w["non_2xx_3xx"] + sum(w["socket_errors"].values())
        out.append(
            f"| a | {label} | mock | wrk | {_f(w['rps'], 0)} | {_f(w['latency_ms'].get('p50'))}"
            f" | {_f(w['latency_ms'].get('p99'))} | {errs} | | |"
        )
    for key in ("a2_junction", "a_junction"):
        cpu = _cpu(sc.get(key), "junction")
        if cpu:
            tag = "a'" if key == "a2_junction" else "a"
            out += [
                "",
                f"Junction's CPU per request in {tag}. implies a single-core capacity of about"
                f" **{1e6 / cpu:,.0f} req/s** (1 s / {cpu:.1f} µs), if its core were the only"
                " limit.",
            ]
            break
    return out


def _low_rate_section(sc: dict[str, Any]) -> list[str]:
    d, j, n = sc.get("b_direct"), sc.get("b_junction"), sc.get("b_nginx")
    out = [
        "## b. Added latency at one connection (open loop, 1,000 req/s, 1 connection)",
        "",
        "| | p50 ms | p99 ms | service p50 ms | service p99 ms | late | errors"
        " | proxy CPU µs/req |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    rows = [("direct to mock", d, None), ("through Junction", j, "junction")]
    if n:
        rows.append(("through nginx (reference)", n, "nginx"))
    for label, run, role in rows:
        cpu = _f(_cpu(run, role), 1) if role else ""
        out.append(
            f"| {label} | {_f(_lat(run, 'p50'))} | {_f(_lat(run, 'p99'))}"
            f" | {_f(_lat(run, 'p50', 'service_ms'))} | {_f(_lat(run, 'p99', 'service_ms'))}"
            f" | {run['late'] if run else NA} | {_errors(run)} | {cpu} |"
        )
    for label, run, bold in (("added by Junction", j, "**"), ("added by nginx", n, "")):
        if run is None and not bold:
            continue
        out.append(
            f"| {bold}{label}{bold} | {bold}{_f(_diff(_lat(run, 'p50'), _lat(d, 'p50')))}{bold}"
            f" | {bold}{_f(_diff(_lat(run, 'p99'), _lat(d, 'p99')))}{bold}"
            f" | {_f(_diff(_lat(run, 'p50', 'service_ms'), _lat(d, 'p50', 'service_ms')))}"
            f" | {_f(_diff(_lat(run, 'p99', 'service_ms'), _lat(d, 'p99', 'service_ms')))}"
            " | | | |"
        )
    if n:
        out += [
            "",
            "nginx runs on Junction's core in the same run, as a reference for what one proxy"
            " hop costs here. At one request per millisecond each proxy's core sleeps between"
            " requests, and on a virtual machine waking it (twice per request: the request, then"
            " the upstream's answer) costs tens of microseconds of CPU, which is why both"
            " proxies spend several times their per-request CPU under full load.",
        ]
    return out


def _rate_section(sc: dict[str, Any]) -> list[str]:
    out = [
        "## c. Open loop, 10,000 req/s over 32 connections",
        "",
        "| path | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | late | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    rows = [("direct to mock", "c_direct"), ("through Junction", "c_junction")]
    if sc.get("c_nginx"):
        rows.append(("through nginx (reference)", "c_nginx"))
    for label, key in rows:
        run = sc.get(key)
        cells = " | ".join(_f(_lat(run, p)) for p in ("p50", "p90", "p99", "p99.9", "max"))
        out.append(
            f"| {label} | {_f(_rps(run), 0)} | {cells}"
            f" | {run['late'] if run else NA} | {_errors(run)} |"
        )
    return out


def _memory_section(mem: dict[str, Any] | None) -> list[str]:
    out = ["## d. Memory (Junction's VmRSS, process tree)", ""]
    if not mem:
        return [*out, "Not measured: Junction did not run."]

    def mb(key: str) -> str:
        return _f(mem[key] / 1024, 1) if key in mem else NA

    return [
        *out,
        "| reading | value |",
        "|---|--:|",
        f"| idle, right after start | {mb('rss_idle_after_start_kb')} MB |",
        f"| after one request on one connection | {mb('rss_before_kb')} MB |",
        f"| with {mem.get('connections', NA)} idle keep-alive connections open"
        f" (one request each) | {mb('rss_after_kb')} MB |",
        f"| **per idle keep-alive connection** | **{_f(mem.get('kb_per_connection'), 1)} KB** |",
        f"| after all load scenarios | {mb('rss_after_load_kb')} MB |",
        "",
        f"Status codes of the {mem.get('connections', NA)} requests: {mem.get('statuses')}.",
    ]


def _goals_section(results: dict[str, Any]) -> list[str]:
    sc = results["scenarios"]
    mem = results.get("memory") or {}
    best = max(
        (sc[k] for k in ("a_junction", "a2_junction") if sc.get(k)),
        key=lambda run: float(run["achieved_rps"]),
        default=None,
    )
    rps = _rps(best)
    cpu = _cpu(best, "junction")
    capacity = 1e6 / cpu if cpu else None
    b_j, b_d = sc.get("b_junction"), sc.get("b_direct")
    add50 = _diff(_lat(b_j, "p50"), _lat(b_d, "p50"))
    add99 = _diff(_lat(b_j, "p99"), _lat(b_d, "p99"))
    p99 = _lat(sc.get("c_junction"), "p99")
    b_n, c_n = sc.get("b_nginx"), sc.get("c_nginx")
    ref50 = _ref(_us(_diff(_lat(b_n, "p50"), _lat(b_d, "p50"))), "µs")
    ref99 = _ref(_us(_diff(_lat(b_n, "p99"), _lat(b_d, "p99"))), "µs")
    ref_c = _ref(_lat(c_n, "p99"), "ms")
    rss = mem.get("rss_idle_after_start_kb")
    rss_mb = rss / 1024 if rss is not None else None
    per_conn = mem.get("kb_per_connection")
    g = GOALS
    return [
        "## Goals",
        "",
        "| goal | measured | met |",
        "|---|--:|:-:|",
        f"| ≥ {g['rps']:,.0f} req/s per worker (closed loop, best of a and a') | {_f(rps, 0)} req/s"
        f" (CPU-implied capacity {_f(capacity, 0)}) | {_met(rps, g['rps'], at_least=True)} |",
        f"| added latency ≤ {g['added_p50_ms'] * 1000:.0f} µs p50 at one connection |"
        f" {_f(_us(add50), 0)} µs{ref50} | {_met(add50, g['added_p50_ms'])} |",
        f"| added latency ≤ {g['added_p99_ms'] * 1000:.0f} µs p99 at one connection |"
        f" {_f(_us(add99), 0)} µs{ref99} | {_met(add99, g['added_p99_ms'])} |",
        f"| p99 ≤ {g['p99_at_10k_ms']:g} ms at 10,000 req/s | {_f(p99)} ms{ref_c}"
        f" | {_met(p99, g['p99_at_10k_ms'])} |",
        f"| ≤ {g['rss_idle_mb']:g} MB RSS idle | {_f(rss_mb, 1)} MB"
        f" | {_met(rss_mb, g['rss_idle_mb'])} |",
        f"| ≤ {g['kb_per_idle_conn']:g} KB per idle keep-alive connection | {_f(per_conn, 1)} KB"
        f" | {_met(per_conn, g['kb_per_idle_conn'])} |",
    ]


def _ref(value: float | None, unit: str) -> str:
    """nginx's figure from the same run, shown beside Junction's."""
    if value is None:
        return ""
    digits = 0 if unit == "µs" else 3
    return f" (nginx: {_f(value, digits)} {unit})"


def _busy(percent_by_core: dict[str, float]) -> str:
    return ", ".join(f"{core} {pct:g} %" for core, pct in percent_by_core.items()) or NA


def _calibration_section(closed: dict[str, Any] | None, opened: dict[str, Any] | None) -> list[str]:
    out = [
        "## The load generator's own ceiling",
        "",
        "Against benchmarks/canned_server.py (a ~60-line uvloop + httptools server that answers"
        " every request with the same bytes) on core 0, generator on core 1, 32 connections:",
        "",
        "| mode | req/s | p50 ms | p99 ms | late | generator CPU µs per response |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for label, run in (("closed loop", closed), ("open loop, 20,000 req/s", opened)):
        if not run:
            out.append(f"| {label} | not measured | | | | |")
            continue
        late = NA if run.get("late") is None else str(run["late"])
        out.append(
            f"| {label} | {_f(_rps(run), 0)} | {_f(_lat(run, 'p50'))} | {_f(_lat(run, 'p99'))}"
            f" | {late} | {_f(run.get('generator_cpu_us_per_request'), 1)} |"
        )
    return out


def _machine_section(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    s = results["settings"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_start"])
    background = _busy(m.get("background_busy_percent", {}))
    background_after = _busy(m.get("background_busy_percent_after", {}))
    pinning = (
        "Junction on core 0; mock provider and load generator on core 1"
        if s["pinned"]
        else "none (fewer than 2 cores or no taskset)"
    )
    load_end = ", ".join(f"{x:.2f}" for x in m.get("loadavg_end", ()))
    return [
        f"Run on {m['date']}.",
        "",
        "| | |",
        "|---|---|",
        f"| nproc | {m['nproc']} |",
        f"| CPU | {m['cpu_model']} |",
        f"| kernel | {m['kernel']} |",
        f"| Python | {m['python']} |",
        f"| uvloop / httptools | {m['uvloop']} / {m['httptools']} |",
        f"| wrk | {m['wrk'] or 'not installed'} |",
        f"| nginx (reference in b. and c.) | {results.get('nginx_version') or 'not measured'} |",
        f"| pinning | {pinning} |",
        f"| load average at start / end | {load} / {load_end} |",
        f"| cores busy before / after the run (other processes, 1 s) | {background}"
        f" / {background_after} |",
        f"| scenario length | {s['duration_s']:g} s measured after {s['warmup_s']:g} s warmup |",
    ]


METHOD = """How the load generator measures (benchmarks/loadgen.py): HTTP/1.1 keep-alive over raw
asyncio.Protocol connections, httptools for response framing, uvloop, one request in flight
per connection (no pipelining), request bytes built once. In open loop, request n is due at
start + n / rate and goes out on connection n mod C as soon as it is due and that connection
is free; its latency counts from the due time, so a stall shows up as queueing delay, not as
fewer samples (no coordinated omission). "late" counts requests whose connection was still
busy when they were due. "service" times count from the actual send. The ticks come from a
timerfd, because uvloop's timers have millisecond granularity. Percentiles come from a
log-linear histogram that overstates by less than 0.8 %; they cover completed requests, while
timeouts and "unsent" requests (due in the window, still queued when the run stopped, which
happens when a server falls far behind) are counted as errors beside them. The achieved rate
counts measured requests that completed inside the window. Junction's CPU
per request is its run time from /proc/PID/schedstat (and, for comparison, utime + stime from
/proc/PID/stat, which the kernel samples at clock ticks) over the whole load run, divided by
the responses the generator received. Other processes may have shared the machine during the
run; the load average and the cores' business before the run give a hint. On this kind of
machine (a VM) a process wake-up costs tens of microseconds, so sparse traffic costs every
process more CPU per request than a saturated run does."""


def render_results(results: dict[str, Any]) -> str:
    sc = results["scenarios"]
    out = [
        "# Benchmark results",
        "",
        "Generated by `bash benchmarks/run.sh` (benchmarks/run.py);"
        " do not edit by hand: every figure below comes from that run.",
        "",
    ]
    out += _machine_section(results)
    m = results["machine"]
    samples = [m.get("background_busy_percent", {}), m.get("background_busy_percent_after", {})]
    if any(pct >= BUSY_WARNING_PERCENT for busy in samples for pct in busy.values()):
        out += [
            "",
            "**Warning: other processes kept a core busy just before or after the run**; they"
            " compete with the pinned processes, so the figures below are likely disturbed."
            " Rerun on a quiet machine for figures to compare.",
        ]
    if results.get("junction_error"):
        out += [
            "",
            "**Junction failed in this benchmark**; figures through it are missing from that"
            " point on:",
            "",
            "```",
            results["junction_error"].strip(),
            "```",
        ]
    for section in (
        _goals_section(results),
        _calibration_section(sc.get("calibration"), sc.get("calibration_open")),
        _throughput_section(sc),
        _low_rate_section(sc),
        _rate_section(sc),
        _memory_section(results.get("memory")),
    ):
        out += ["", *section]
    out += [
        "",
        "## Peers, measured on this kind of machine",
        "",
        "Quoted from the project's shared notes (not measured by this script): a small"
        " non-streaming request through one proxy worker pinned to one core, load generator"
        " and upstream on the other core, 32 connections.",
        "",
        PEERS_QUOTED,
    ]
    out += ["", "## Method", "", METHOD]
    if results.get("errors"):
        out += ["", "## Problems during the run", ""] + [f"- {e}" for e in results["errors"]]
    out += ["", "## Commands run", "", "```", *results.get("commands", []), "```"]
    if results.get("junction_config"):
        out += [
            "",
            "## Junction's config",
            "",
            "```yaml",
            results["junction_config"].rstrip(),
            "```",
        ]
    return "\n".join(out) + "\n"
