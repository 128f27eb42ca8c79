"""The benchmark suite's pure parts, its peers' configs checked by the peers themselves, and
its report and plots drawn from run summaries the real generator code produced."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.h2load import parse_h2load
from benchmarks.pacing import RunStats
from benchmarks.peers import Ports, ccr_config, haproxy_launch, nginx_launch
from benchmarks.report import RunSetup, summarize
from benchmarks.scenarios import _summary, junction_config
from benchmarks.suite import median_spread, parse_args
from benchmarks.suite_md import render
from benchmarks.workload import Bodies

H2LOAD_OUTPUT = """\
finished in 3.00s, 2537.50 req/s, 1.15MB/s
requests: 7612 total, 7612 started, 7612 done, 7600 succeeded, 10 failed, 2 errored, 0 timeout
status codes: 7600 2xx, 0 3xx, 0 4xx, 10 5xx
                     min         max         mean         sd        +/- sd
time for request:   305us     23.63ms     12.58ms      2.08ms    76.16%
"""


def run(latencies_ms: list[float], rps_window_s: float = 2.0) -> dict[str, Any]:
    stats = RunStats()
    for ms in latencies_ms:
        stats.latency.record(round(ms * 1e6))
        stats.completed += 1
        stats.completed_in_window += 1
        stats.total_responses += 1
    stats.ok = stats.completed
    setup = RunSetup("http://127.0.0.1:1/v1/messages", True, 32, 0.0, rps_window_s, None, None)
    out = summarize(setup, stats, generator_cpu_s=0.1, elapsed_s=rps_window_s)
    out["cpu_us_per_request"] = 50.0
    return out


def test_parse_h2load_units() -> None:
    got = parse_h2load(H2LOAD_OUTPUT)
    assert got == {
        "rps": 2537.5,
        "succeeded": 7600,
        "failed": 12,
        "mean_ms": 12.58,
        "max_ms": 23.63,
    }


def test_median_and_spread_of_runs() -> None:
    runs = [run([1.0] * 100), run([2.0] * 300), run([9.0] * 200)]
    s = _summary(runs)
    assert s["rps"] == {"median": 100.0, "min": 50.0, "max": 150.0, "n": 3}
    assert s["p99"]["median"] == pytest.approx(2.0, rel=0.01)
    assert s["p99"]["max"] == pytest.approx(9.0, rel=0.01)
    # the curve shown is the median run's, monotonic in the percentile
    values = [v for _, v in s["curve"]]
    assert values == sorted(values) and values[-1] == pytest.approx(2.0, rel=0.01)
    assert median_spread([3.0]) == {"median": 3.0, "min": 3.0, "max": 3.0, "n": 1}


def test_args_quick_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    a = parse_args(["--quick", "--scenarios", "small,h2", "--peers", "none"])
    assert (a.runs, a.duration, a.scenarios, a.peers) == (1, 2.0, ["small", "h2"], [])
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "small,nope"])
    assert "unknown scenarios: nope" in capsys.readouterr().err


def test_bodies_claude_code_sized() -> None:
    b = Bodies.build()
    cc = orjson.loads(b.cc)
    assert 100 * 1024 <= len(b.cc) < 120 * 1024 and cc["stream"] is True and cc["tools"]
    direct = orjson.loads(b.cc_openai_direct)  # what Junction sends the OpenAI endpoint
    assert direct["model"] == "gpt-4o-mini" and direct["stream"] is True
    assert direct["messages"][0]["role"] == "system"


def test_junction_config_loads(tmp_path: Path) -> None:
    from proxy.config.loader import load_config

    class FakeSuite:  # only the ports are read
        ports = Ports.from_base(20000)

    path = tmp_path / "j.yaml"
    path.write_text(junction_config(FakeSuite(), workers=2))  # type: ignore[arg-type]
    cfg = load_config(path, env={})
    assert cfg.server.workers == 2 and cfg.listen.port == FakeSuite.ports.junction
    assert {p.name for p in cfg.providers} == {"mock", "mock-openai", "mock-ha"}


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_nginx_accepts_its_config(tmp_path: Path) -> None:
    launch = nginx_launch(tmp_path, Ports.from_base(20000))
    assert not isinstance(launch, str), launch
    conf = launch.argv[launch.argv.index("-c") + 1]
    done = subprocess.run(
        [*launch.argv[:-2], "-t", "-c", conf], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_accepts_its_config(tmp_path: Path) -> None:
    launch = haproxy_launch(tmp_path, Ports.from_base(20000))
    assert not isinstance(launch, str), launch
    cfg = launch.argv[-1]
    done = subprocess.run(
        [launch.argv[0], "-c", "-f", cfg], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ccr_config_routes_to_the_mock() -> None:
    ports = Ports.from_base(20000)
    cfg = ccr_config(ports)
    providers = {p["name"]: p for p in cfg["Providers"]}  # type: ignore[attr-defined]
    assert providers["mock"]["api_base_url"] == f"http://127.0.0.1:{ports.mock}/v1/messages"
    assert cfg["Router"] == {"default": "mock,claude-sonnet-4-5"} and cfg["PORT"] == ports.ccr


def test_report_and_plots(tmp_path: Path) -> None:
    from benchmarks.plots import draw_plots

    small = {
        "direct": _summary([run([0.5] * 400)]),
        "junction": _summary([run([2.0] * 100)]),
        "nginx": _summary([run([0.8] * 400)]),
        "litellm": _summary([run([300.0] * 1)]),
    }
    sweep = {
        n: {"points": [{"offered": 10_000.0, **_summary([run([ms] * 100)])}]}
        for n, ms in (("direct", 0.2), ("junction", 0.9))
    }
    results: dict[str, Any] = {
        "machine": {"background_busy_percent": {"cpu0": 0.0}},
        "settings": {"runs": 1, "pinned": True},
        "targets": {"ccr": {"status": "npm install failed\n(log: x)"}},
        "scenarios": {
            "small": small,
            "sweep": sweep,
            "translate": {"nginx": {"skipped": "cannot translate dialects"}},
            "profile": {
                "junction": {
                    "samples": 100,
                    "idle_samples": 7,
                    "rps_while_sampled": 40.0,
                    "self": [["libc.so.6:write", 30.0]],
                    "total": [["native:router.RouterFilter._attempt", 33.5]],
                }
            },
        },
    }
    plots = draw_plots(results, tmp_path)
    assert {p.name for p in plots} == {
        "small_percentiles.png",
        "open_10k_percentiles.png",
        "throughput_vs_p99.png",
    }
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in plots)
    md = render(results)
    # Junction 50 req/s, LiteLLM 0.5: 100x; nginx 200: a quarter
    assert "| small requests ≥ 100x LiteLLM proxy | 100.00x | yes |" in md
    assert "| small requests ≥ ⅓ of nginx | 0.25x | **no** |" in md
    assert "Hot spots (py-spy, self time; data path ?): `libc.so.6:write` 30.0 %." in md
    assert "by total time: `native:router.RouterFilter._attempt` 33.5 %." in md
    assert "| 30.0 | `libc.so.6:write` | | 33.5 | `native:router.RouterFilter._attempt` |" in md
    assert "Samples of threads waiting for work (7) are left out" in md
    assert "| added p99 at 10,000 req/s ≤ 1 ms | 0.700 ms | yes |" in md
    assert "| claude-code-router | npm install failed (log: x) |" in md
    assert "| nginx | cannot translate dialects |" in md


def test_profile_self_and_total_shares() -> None:
    from benchmarks.profile import frame_name, summarize_collapsed

    text = (
        "<module> (/work/main/proxy/__main__.py:3);run (uvloop/__init__.py:82);"
        "data_received (/work/main/proxy/server/http1.py:120);"
        "loads (/x/lib/python3.11/site-packages/orjson/__init__.py:10) 30\n"
        "<module> (/work/main/proxy/__main__.py:3);run (uvloop/__init__.py:82);"
        "data_received (/work/main/proxy/server/http1.py:121) 10\n"
        "garbage line\n"
    )
    got = summarize_collapsed(text)
    assert got["samples"] == 40
    assert got["self"][0] == ["site-packages/orjson/__init__.py:loads", 75.0]
    assert ["proxy/server/http1.py:data_received", 25.0] in got["self"]
    # totals count Junction's own functions only, and not those under every sample
    assert got["total"] == []
    assert frame_name("f (a.py)") == "a.py:f" and frame_name("odd") == "odd"


def test_profile_names_compiled_frames_and_leaves_idle_samples_out() -> None:
    from benchmarks.profile import frame_name, summarize_collapsed

    root = "Runner.run (asyncio/runners.py:118);uv_run (core.c:464);"
    text = (
        # a compiled call chain ending in a write syscall (wrapper frames are duplicates)
        f"{root}CPyPy_connection___DownstreamConnection___data_received (__native__native.c:1);"
        "CPyDef_connection___DownstreamConnection___data_received (__native__native.c:2);"
        "CPyDef_upstream___http1___Http1Connection___bind (__native__native.c:3);"
        "write (libc.so.6) 6\n"
        f"{root}CPyDef_connection___DownstreamConnection___data_received (__native__native.c:2);"
        "0x7f6ef265b732 (libc.so.6) 2\n"
        # the loop waiting in epoll and the log writer waiting for lines: idle, not CPU
        f"{root}uv__io_poll (linux.c:1);epoll_wait (libc.so.6) 50\n"
        "Thread.run (threading.py:982);Condition.wait (threading.py:327);"
        "pthread_cond_timedwait (libc.so.6) 40\n"
    )
    got = summarize_collapsed(text)
    assert got["samples"] == 8 and got["idle_samples"] == 90
    assert got["self"][0] == ["libc.so.6:write", 75.0]
    assert ["libc.so.6:?", 25.0] in got["self"]
    assert ["native:upstream.http1.Http1Connection.bind", 75.0] in got["total"]
    # under every counted sample: left out of the totals
    names = [name for name, _ in got["total"]]
    assert "native:connection.DownstreamConnection.data_received" not in names
    assert not any("CPyPy" in name for name in names)
    assert frame_name("uv__read (stream.c:1154)") == "stream.c:uv__read"


def test_sweep_rates_follow_each_targets_maximum() -> None:
    from benchmarks.scenarios import sweep_rates

    assert sweep_rates(12_345.0, slow=False, quick=False) == [
        3100.0,
        6200.0,
        9300.0,
        10_000.0,
        11_000.0,
    ]
    assert sweep_rates(400.0, slow=True, quick=False) == [100.0, 200.0, 300.0, 360.0]
    assert sweep_rates(None, slow=False, quick=True) == [2_000.0, 10_000.0]


@pytest.mark.timeout(180)
def test_suite_end_to_end_small(tmp_path: Path) -> None:
    """The real command, Junction alone: mock and Junction start, the generator runs, and
    results.json, RESULTS.md and the plots are written; every process is gone afterwards."""
    import random
    import sys

    from benchmarks.procs import port_is_free

    base = next(
        b
        for b in (random.randrange(30_000, 40_000) for _ in range(50))
        if all(port_is_free(p) for p in range(b, b + 13))
    )
    argv = [
        sys.executable,
        "-m",
        "benchmarks",
        "--scenarios",
        "small",
        "--peers",
        "none",
        "--runs",
        "1",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--port-base",
        str(base),
        "--out",
        str(tmp_path),
    ]
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    results = orjson.loads((tmp_path / "results.json").read_bytes())
    small = results["scenarios"]["small"]
    assert small["direct"]["rps"]["median"] > 0 and small["junction"]["rps"]["median"] > 0
    assert small["junction"]["errors"]["median"] == 0
    assert "| Junction | " in (tmp_path / "RESULTS.md").read_text()
    assert (tmp_path / "plots" / "small_percentiles.png").exists()
    assert all(port_is_free(p) for p in range(base, base + 13))


def test_long_lived_streams_show_the_peers_beside_the_gap_goal() -> None:
    def held(gap_p99: float, peak_mb: float) -> dict[str, Any]:
        return {
            "5000": {
                "concurrency": {"max": 5100},
                "failed": 0,
                "gap_ms": {"p50": 250.6, "p99": gap_p99},
                "rss_idle_kb": 50 * 1024,
                "rss_peak_kb": int(peak_mb * 1024),
                "kb_per_stream": 12.0,
            }
        }

    results: dict[str, Any] = {
        "machine": {},
        "settings": {"runs": 1},
        "targets": {},
        "scenarios": {
            "streams": {
                "direct": held(253.0, 120.0),
                "junction": held(255.5, 125.0),
                "nginx": held(254.0, 60.0),
                "haproxy": held(256.25, 70.0),
                "litellm": {"skipped": "not run: it takes under 100 requests/s"},
            }
        },
    }
    md = render(results)
    assert (
        "| event gaps added ≤ 2 ms p99 at 5,000 streams | 2.50 ms (p99 255.5 through Junction,"
        " 253.0 direct; added by nginx 1.00 ms, haproxy 3.25 ms) | **no** |"
    ) in md
    assert "| nginx | 5000 | 5100 | 50.0 | 60.0 | 12.0 | 250.60 | 254.00 | 0 |" in md
    assert "| LiteLLM proxy | not run: it takes under 100 requests/s |" + " |" * 7 in md
    # Without the peers, the goal row names none.
    for name in ("nginx", "haproxy", "litellm"):
        del results["scenarios"]["streams"][name]
    assert "253.0 direct) | **no** |" in render(results)


def test_quiet_or_shared_is_judged_on_measured_busy_time() -> None:
    results: dict[str, Any] = {
        "machine": {
            "background_busy_percent": {"cpu0": 1.0, "cpu1": 0.0},
            "background_busy_percent_after": {"cpu0": 0.0, "cpu1": 0.0},
            "loadavg_start": [1.5, 0.9, 0.7],  # the native build just before the run
        },
        "settings": {"runs": 1},
        "targets": {},
        "scenarios": {},
    }
    assert "The machine was quiet: cores busy" in render(results)
    assert "[RESULTS-translation.md](RESULTS-translation.md)" in render(results)  # issue 3
    results["machine"]["background_busy_percent_after"]["cpu1"] = 25.0
    assert "**Provisional figures** (the machine was shared with other work)" in render(results)
