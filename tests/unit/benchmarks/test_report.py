from typing import Any

from benchmarks.pacing import RunStats
from benchmarks.report import RunSetup, render_table, summarize
from benchmarks.results_md import render_results


def run_summary(
    latencies_ms: list[float], *, closed: bool, statuses: dict[int, int]
) -> dict[str, Any]:
    stats = RunStats()
    for ms in latencies_ms:
        stats.latency.record(round(ms * 1e6))
        stats.service.record(round(ms * 1e6))
        stats.completed += 1
        stats.completed_in_window += 1
        stats.total_responses += 1
    stats.ok = stats.completed - sum(statuses.values())
    stats.status_errors = dict(statuses)
    setup = RunSetup(
        "http://127.0.0.1:1/v1/messages",
        closed,
        1,
        0.0,
        2.0,
        None if closed else 1000,
        None if closed else 1000.0,
    )
    return summarize(setup, stats, generator_cpu_s=0.5, elapsed_s=2.0)


def test_summary_counts_and_table() -> None:
    s = run_summary([0.1] * 99 + [5.0], closed=False, statuses={503: 2})
    assert s["requests"] == 100 and s["ok"] == 98 and s["achieved_rps"] == 50.0
    assert s["errors"]["by_status"] == {"503": 2} and s["errors"]["total"] == 2
    assert 0.1 <= s["latency_ms"]["p50"] <= 0.101 and s["latency_ms"]["max"] == 5.0
    assert s["generator_cpu_us_per_request"] == 5000.0
    table = render_table(s)
    assert "non-2xx 2 503: 2" in table and "latency (from schedule)" in table


def base_results(scenarios: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "machine": {
            "date": "d",
            "nproc": 2,
            "cpu_model": "c",
            "kernel": "k",
            "python": "3",
            "uvloop": "u",
            "httptools": "h",
            "wrk": None,
            "loadavg_start": (0.0, 0.0, 0.0),
            "loadavg_end": (0.0, 0.0, 0.0),
            "background_busy_percent": {"cpu0": 1.0},
        },
        "settings": {"duration_s": 2, "warmup_s": 0.5, "pinned": True},
        "scenarios": scenarios,
        "errors": [],
        "commands": ["cmd one"],
        **extra,
    }


def goal_rows(markdown: str) -> list[str]:
    section = markdown.split("## Goals", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "goal" not in line]


def test_goals_use_the_difference_between_paths_and_judge_each_limit() -> None:
    direct = run_summary([0.1] * 98 + [0.4] * 2, closed=False, statuses={})
    junction = run_summary([0.2] * 98 + [1.2] * 2, closed=False, statuses={})
    md = render_results(
        base_results(
            {"b_direct": direct, "b_junction": junction},
            memory={
                "rss_idle_after_start_kb": 30 * 1024,
                "kb_per_connection": 25.0,
                "connections": 1000,
                "rss_before_kb": 1,
                "rss_after_kb": 2,
            },
        )
    )
    rows = goal_rows(md)
    assert "not measured" in rows[0]  # no throughput run
    assert "| 100 µs | yes |" in rows[1]  # p50 0.2 - 0.1 ms
    assert "**no**" in rows[2] and "800 µs" in rows[2]  # p99 1.2 - 0.4 ms > 500 µs
    assert "not measured" in rows[3]
    assert "30.0 MB | yes" in rows[4]
    assert "25.0 KB | **no**" in rows[5]
    assert "cmd one" in md and "76,900" in md  # commands and the quoted peers are there


def test_a_junction_failure_is_stated_and_nothing_is_invented() -> None:
    md = render_results(base_results({}, junction_error="junction exited with code 1"))
    assert "Junction failed in this benchmark" in md and "junction exited with code 1" in md
    assert all("not measured" in row for row in goal_rows(md))


def test_a_negative_added_latency_is_inconclusive_not_a_pass() -> None:
    disturbed_direct = run_summary([0.1] * 98 + [3.0] * 2, closed=False, statuses={})
    junction = run_summary([0.2] * 98 + [1.0] * 2, closed=False, statuses={})
    rows = goal_rows(
        render_results(base_results({"b_direct": disturbed_direct, "b_junction": junction}))
    )
    assert "| 100 µs | yes |" in rows[1]
    assert "-2,000 µs | inconclusive" in rows[2]


def test_the_nginx_reference_is_shown_beside_junction_but_never_judged() -> None:
    direct = run_summary([0.1] * 100, closed=False, statuses={})
    junction = run_summary([0.35] * 100, closed=False, statuses={})
    nginx = run_summary([0.3] * 100, closed=False, statuses={})
    md = render_results(
        base_results(
            {"b_direct": direct, "b_junction": junction, "b_nginx": nginx, "c_nginx": nginx},
            nginx_version="nginx/1.22.1",
        )
    )
    rows = goal_rows(md)
    # Junction's own difference decides the goal; nginx's stands beside it.
    assert "| 250 µs (nginx: 200 µs) | **no** |" in rows[1]
    assert "(nginx: 0.300 ms)" in rows[3] and "not measured" in rows[3]
    low = md.split("## b.", 1)[1].split("\n## ", 1)[0]
    assert "| through nginx (reference) | 0.300 |" in low
    assert "| added by nginx | 0.200 |" in low
    assert "nginx/1.22.1" in md


def test_without_the_nginx_reference_no_nginx_rows_appear() -> None:
    direct = run_summary([0.1] * 100, closed=False, statuses={})
    md = render_results(base_results({"b_direct": direct, "b_junction": direct}))
    assert "added by nginx" not in md and "(nginx:" not in md
    assert "through nginx" not in md
