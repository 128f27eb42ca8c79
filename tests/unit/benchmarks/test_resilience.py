"""The resilience bench's pure parts: the configs it gives Junction, LiteLLM and
claude-code-router, the figures and tables it draws from run summaries the real report code
produced, and its counting mocks over loopback."""

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from benchmarks.pacing import RunStats
from benchmarks.report import RunSetup, summarize
from benchmarks.resilience_bench import goals_met, render, render_weighted
from benchmarks.resilience_peers import (
    DEPLOYMENTS,
    PeerPorts,
    ccr_failover_config,
    figures,
    gateways,
    junction_config,
    litellm_config,
    peer_rate,
    render_peers,
)
from benchmarks.workload import BODY, MODEL
from proxy.config.loader import load_config_dict
from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[3]
PORTS = PeerPorts.from_base(21000)


def load(latencies_ms: list[float], failed: int = 0, timeouts: int = 0) -> dict[str, Any]:
    """A loadgen summary: `latencies_ms` answered (the first `failed` of them with a 500)."""
    stats = RunStats()
    for i, ms in enumerate(latencies_ms):
        stats.latency.record(round(ms * 1e6))
        stats.completed += 1
        stats.completed_in_window += 1
        stats.total_responses += 1
        if i < failed:
            stats.status_errors[500] = stats.status_errors.get(500, 0) + 1
        else:
            stats.ok += 1
    stats.timeouts = timeouts
    stats.sent = len(latencies_ms) + timeouts
    setup = RunSetup("http://127.0.0.1:1/v1/messages", False, 64, 0.0, 10.0, 30.0, 30.0)
    return summarize(setup, stats, generator_cpu_s=0.1, elapsed_s=10.0)


def args(**over: Any) -> argparse.Namespace:
    base = {
        "rate": 1000,
        "duration": 20.0,
        "runs": 2,
        "connections": 256,
        "strategy": "least_outstanding",
        "weighted_runs": 2,
        "peer_runs": 2,
        "peer_duration": 15.0,
        "peer_connections": 64,
        "peers": ["litellm", "ccr"],
    }
    return argparse.Namespace(**(base | over))


# -- configs --------------------------------------------------------------------------------


def test_junction_config_is_valid_and_routes_the_model_to_the_three_deployments() -> None:
    text = junction_config(PORTS, "least_outstanding")
    config = load_config_dict(yaml.safe_load(text), env={})
    providers = {p.name: p for p in config.providers}
    assert [d.base_url for d in providers["mock"].deployments] == [
        f"http://127.0.0.1:{PORTS.deployment(d)}" for d in DEPLOYMENTS
    ]
    # the warm-up's own provider, reached as `warm,<model>`, on the fourth deployment
    assert providers["warm"].base_url == f"http://127.0.0.1:{PORTS.warm}"
    assert config.upstream.response_header_timeout_s == 1.0


def test_litellm_config_has_one_group_of_three_deployments_with_the_first_byte_timeout() -> None:
    cfg = yaml.safe_load(litellm_config(PORTS))
    group = [m for m in cfg["model_list"] if m["model_name"] == MODEL]
    assert [m["litellm_params"]["api_base"] for m in group] == [
        f"http://127.0.0.1:{PORTS.deployment(d)}" for d in DEPLOYMENTS
    ]
    assert all(m["litellm_params"]["timeout"] == 1 for m in group)
    assert all(m["litellm_params"]["stream_timeout"] == 1 for m in group)
    warm = [m for m in cfg["model_list"] if m["model_name"] == "warmup"]
    assert [m["litellm_params"]["api_base"] for m in warm] == [f"http://127.0.0.1:{PORTS.warm}"]
    router = cfg["router_settings"]
    assert router["num_retries"] == 2 and router["allowed_fails"] == 3
    assert router["cooldown_time"] == 30 and router["routing_strategy"] == "simple-shuffle"
    assert cfg["general_settings"]["master_key"].startswith("sk-")


def test_ccr_config_sends_everything_to_the_primary_and_falls_back_to_the_others() -> None:
    cfg = ccr_failover_config(PORTS, "d2")
    assert cfg["Router"] == {"default": f"d2,{MODEL}"}
    assert cfg["fallback"] == {"default": [f"d0,{MODEL}", f"d1,{MODEL}"]}
    providers = {p["name"]: p for p in cfg["Providers"]}  # type: ignore[attr-defined]
    assert providers["d1"]["api_base_url"] == f"http://127.0.0.1:{PORTS.d1}/v1/messages"
    assert providers["warm"]["api_base_url"] == f"http://127.0.0.1:{PORTS.warm}/v1/messages"
    assert cfg["PORT"] == PORTS.peers.ccr


def test_ports_do_not_overlap() -> None:
    bound = list(PORTS.bound().values())
    assert len(set(bound)) == len(bound)


def test_peer_rate_is_half_the_ceiling_in_steps_of_five() -> None:
    assert [peer_rate(x) for x in (75.0, 61.0, 80.0, 4.0)] == [40, 30, 40, 10]


def test_the_stalled_primary_is_measured_once_and_without_a_healthy_run() -> None:
    gws = {g.key: g for g in gateways(["litellm", "ccr"])}
    assert gws["ccr-d2"].once and not gws["ccr-d2"].healthy
    assert gws["litellm"].warm_model == "warmup" and gws["junction"].warm_model == f"warm,{MODEL}"
    assert [g.key for g in gateways([])] == ["junction"]


# -- figures and tables -----------------------------------------------------------------------


def peer_run(lat: list[float], counts: dict[str, int], **kw: int) -> dict[str, Any]:
    return {"load": load(lat, **kw), "counts": counts}


def test_figures_count_attempts_at_the_deployments_not_the_warm_up() -> None:
    run = peer_run([1.0] * 90, {"d0": 100, "d1": 20, "d2": 0, "warm": 90}, failed=0, timeouts=10)
    f = figures(run)
    assert f["success_pct"] == 90.0
    assert f["attempts_per_request"] == 1.2
    assert f["share_d0"] is not None and round(f["share_d0"]) == 83


def test_figures_of_a_run_without_answers_have_no_latency() -> None:
    f = figures(peer_run([], {"d0": 0, "d1": 0, "d2": 30}, timeouts=30))
    assert f["success_pct"] == 0.0 and f["p99_ms"] is None and f["attempts_per_request"] == 1.0


def test_render_peers_table() -> None:
    healthy = {"d0": 10, "d1": 10, "d2": 10}
    result = {
        "rate": 35,
        "ceiling": 71.0,
        "runs": {
            "junction": {
                "healthy": [peer_run([1.0] * 30, healthy)] * 2,
                "faulty": [peer_run([1.0] * 30, {"d0": 30, "d1": 1, "d2": 0})] * 2,
            },
            "ccr-d2": {"faulty": [peer_run([], {"d0": 0, "d1": 0, "d2": 30}, timeouts=30)]},
        },
        "skipped": {"litellm": "pip install litellm[proxy] failed"},
        "versions": {"ccr": "2.0.0"},
        "gateways": [
            {"key": "junction", "label": "Junction", "kind": "junction"},
            {"key": "ccr-d2", "label": "ccr, primary d2", "kind": "ccr"},
        ],
    }
    text = render_peers(result, args())
    assert "**Offered rate: 35 req/s, not 1,000.**" in text
    assert "served at most 71 req/s here with healthy deployments (closed loop, 32" in text
    assert "gets about half of that, 35 req/s," in text
    assert "| Junction | all healthy | 100 (100 to 100) |" in text
    assert "| 33 / 33 / 33 |" in text and "| 97 / 3 / 0 |" in text
    assert "| ccr, primary d2 | d1 50 % 500s, d2 stalled | 0 | n/a | n/a | n/a | 1 |" in text
    assert "| litellm | not measured: pip install litellm[proxy] failed |" in text
    assert "at this rate: Junction 1.00x (goals met); ccr, primary d2 0 % success (goals" in text


def junction_run(lat: list[float], failed: int = 0, refused: int = 0) -> dict[str, Any]:
    return {
        "load": load(lat, failed=failed),
        "attempts": len(lat) * 1.1,
        "requests": len(lat),
        "retries": 1,
        "budget": {"refused_total": refused},
        "stats": {},
        "breakers": {"mock/d1": {"state": "open", "healthy": False}},
        "ejections": {},
    }


def test_goals_and_the_weighted_section() -> None:
    good = {"healthy": [junction_run([1.0] * 100)] * 2, "faulty": [junction_run([1.5] * 100)] * 2}
    slow = [junction_run([1.0] * 97 + [1000.0] * 3, failed=1, refused=4)] * 2
    bad = {"healthy": good["healthy"], "faulty": slow}
    assert goals_met(good) and not goals_met(bad)
    main = render(good, args())
    assert main.startswith("# Resilience under faults")
    assert "p99 faulty / healthy: **1.50x** (goal at most 2x)." in main
    assert "breakers mock/d1: open; retry budget refusals 0." in main
    text = render_weighted(good, bad, args(), "08:54 UTC")
    assert text.startswith("## The same with `--strategy weighted --runs 2` (same session, 08:54")
    assert "goals are met (1.50x p99)" in text
    assert "p99 (1,000 ms) is the 1 s first-byte timeout" in text
    assert "refused 4 fallbacks in the last run (1 % errors). Goals missed" in text
    rare = [junction_run([1.0] * 997 + [1000.0] * 3)] * 2
    text = render_weighted(good, {"healthy": good["healthy"], "faulty": rare}, args(), "")
    assert "under 1 % of requests wait that 1 s (p99 1 ms, p99.9 1,000 ms)" in text


# -- the counting mocks, live -----------------------------------------------------------------


def post(port: int) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/messages",
        data=BODY.encode(),
        headers={"content-type": "application/json", "x-api-key": "k"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as e:
        return e.code


def test_counting_mocks_fail_as_told_and_count_what_each_received(tmp_path: Path) -> None:
    ok, failing = free_ports(2)
    counts = tmp_path / "counts.json"
    argv = [sys.executable, "-m", "benchmarks.counting_mocks", "--counts", str(counts)]
    argv += ["--deployment", "ok", str(ok), "0", "status:500"]
    argv += ["--deployment", "bad", str(failing), "1", "status:503"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", failing), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert [post(ok) for _ in range(3)] == [200, 200, 200]
        assert post(failing) == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert json.loads(counts.read_text()) == {"ok": 3, "bad": 1}
