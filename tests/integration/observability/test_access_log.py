"""Access log lines of a running Junction: success, upstream failure, retry, disconnect."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.integration.proxy.harness import Running
from tests.integration.proxy.rawhttp import RawConn
from tests.support.h1server import ScriptedHttp1Server, stall

from .support import ANTHROPIC, admin, failing_first, log_lines, message, post, scripted_config


def logged(tmp_path: Path, fmt: str = "json") -> dict[str, Any]:
    return {"access_log": True, "access_log_file": str(tmp_path / "access.log"), "format": fmt}


def test_a_success_has_every_field(
    junction_factory: Callable[..., Running], tmp_path: Path
) -> None:
    run = junction_factory(log=logged(tmp_path))
    r = post(run, message(stream=True), **{"x-request-id": "req-success-1"})
    assert r.status_code == 200
    (line,) = log_lines(run, tmp_path / "access.log")
    assert line["request_id"] == "req-success-1"
    assert line["dialect"] == "anthropic" and line["protocol"] == "HTTP/1.1"
    assert line["method"] == "POST" and line["path"] == "/v1/messages"
    assert line["status"] == 200 and line["flags"] == "-"
    assert line["provider"] == "mock" and line["model"] == "claude-sonnet-4-5"
    assert line["deployment"] == "default" and line["route"] == "default"
    assert line["attempts"] == 1 and line["retries"] == 0 and line["upstream_status"] == 200
    assert line["breaker"] == "closed"
    assert 0 < line["ttfb_ms"] <= line["duration_ms"]
    assert line["bytes_in"] > 0 and line["bytes_out"] == len(r.content)
    assert line["input_tokens"] > 0 and line["output_tokens"] > 0
    expected = (line["input_tokens"] * 3 + line["output_tokens"] * 15) / 1e6
    assert abs(line["cost_usd"] - expected) < 1e-8
    assert line["cached_tokens"] in (None, 0)
    assert line["cache"] is None and line["key"] is None


def test_an_upstream_failure_is_flagged(
    junction_factory: Callable[..., Running], tmp_path: Path
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cfg = {
        "providers": [
            {
                "name": "down",
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{port}",
                "api_key": "k",
                "models": ["claude-sonnet-4-5"],
            }
        ],
        "router": {"default": "down,claude-sonnet-4-5"},
        "resilience": {"retry": {"base_backoff_s": 0.01, "max_backoff_s": 0.02}},
    }
    run = junction_factory(log=logged(tmp_path), **cfg)
    r = post(run, message())
    assert r.status_code >= 500
    (line,) = log_lines(run, tmp_path / "access.log")
    assert line["status"] == r.status_code
    assert "UF" in line["flags"].split(",")
    assert line["provider"] == "down" and line["upstream_status"] is None
    assert line["attempts"] == 2 and line["retries"] == 1  # the default: one retry
    assert line["input_tokens"] is None and line["cost_usd"] == 0


def test_a_retried_request_counts_its_attempts(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
    tmp_path: Path,
) -> None:
    server = upstream(failing_first(1, status=529))
    run = junction_factory(log=logged(tmp_path), **scripted_config(server))
    assert post(run, message()).status_code == 200
    (line,) = log_lines(run, tmp_path / "access.log")
    assert line["status"] == 200 and "RT" in line["flags"]
    assert line["attempts"] == 2 and line["retries"] == 1 and line["upstream_status"] == 200
    assert line["input_tokens"] == 50 and line["cached_tokens"] == 20
    assert line["output_tokens"] == 7
    # Sonnet 4.5: $3 input, $0.30 cache reads, $15 output per million tokens.
    assert abs(line["cost_usd"] - (30 * 3 + 20 * 0.3 + 7 * 15) / 1e6) < 1e-12


def test_a_client_that_goes_away_is_flagged_dc(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
    tmp_path: Path,
) -> None:
    server = upstream(stall())
    run = junction_factory(log=logged(tmp_path), **scripted_config(server))
    conn = RawConn(run.port)
    body = orjson.dumps(message())
    conn.request("POST", "/v1/messages", list(ANTHROPIC.items()), body)
    deadline = time.monotonic() + 5
    while not server.requests:  # the provider got the request: the stream is in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    conn.sock.close()
    while run.lt.call(lambda: run.worker.counters.active_streams):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (line,) = log_lines(run, tmp_path / "access.log")
    assert "DC" in line["flags"].split(",")
    assert line["status"] == 0 and line["ttfb_ms"] is None
    assert line["attempts"] == 1 and line["upstream_status"] is None


def test_the_text_format_is_one_readable_line(
    junction_factory: Callable[..., Running], tmp_path: Path
) -> None:
    run = junction_factory(log=logged(tmp_path, "text"))
    assert post(run, message(), **{"x-request-id": "req-text-1"}).status_code == 200
    assert run.worker.access_log is not None
    run.lt.call(run.worker.access_log.flush)
    (line,) = (tmp_path / "access.log").read_text().splitlines()
    fields = line.split(" ")
    assert fields[0].endswith("Z") and fields[1] == "req=req-text-1"
    assert fields[2:6] == ["POST", "/v1/messages", "200", "anthropic>mock/claude-sonnet-4-5"]
    assert "tries=1" in fields and "flags=-" in fields and "breaker=closed" in fields


def test_a_cache_hit_is_logged_and_counted(
    junction_factory: Callable[..., Running], tmp_path: Path
) -> None:
    run = junction_factory(log=logged(tmp_path), cache={"policy": "all"})
    first = post(run, message("cache me"))
    second = post(run, message("cache me"))
    assert first.status_code == second.status_code == 200
    assert second.headers["x-junction-cache"] == "hit-l1"
    miss, hit = log_lines(run, tmp_path / "access.log")
    assert miss["cache"] == "miss" and miss["attempts"] == 1
    assert hit["cache"] == "hit-l1" and hit["attempts"] == 0 and hit["status"] == 200
    assert hit["provider"] is None and hit["ttfb_ms"] is None  # answered by Junction itself
    assert hit["input_tokens"] == 0 and hit["cost_usd"] == 0  # no provider was paid
    metrics = admin(run, "/metrics").text
    assert 'junction_cache_requests_total{result="hit-l1"} 1' in metrics
    assert 'junction_cache_requests_total{result="miss"} 1' in metrics
    assert "\njunction_cache_l1_entries 1\n" in metrics
