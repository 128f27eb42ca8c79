"""Drain, reload, signals and workers: Junction as a real process and in-process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from proxy.mock_provider import MockProvider
from tests.support.ports import free_ports

from .harness import ENV, Running, base_config
from .rawhttp import RawConn

STREAM_MSG = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()
HEADERS = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def test_drain_lets_running_stream_finish(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    c.request(
        "POST",
        "/v1/messages",
        [*HEADERS, ("x-mock-tokens-per-s", "40"), ("x-mock-output-tokens", "30")],
        STREAM_MSG,
    )
    first = c.sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    result: dict[str, Any] = {}

    def drain() -> None:
        junction.drain()
        result["drained"] = True

    t = threading.Thread(target=drain)
    t.start()
    time.sleep(0.1)
    # Readiness fails and no new connection is accepted while draining.
    r = httpx.get(f"http://127.0.0.1:{junction.admin_port}/readyz", timeout=5)
    assert r.status_code == 503
    rest = c.read_all_raw()
    t.join(30)
    assert result.get("drained")
    body = first + rest
    assert b"event: message_stop" in body  # finished, then the connection was closed
    try:
        socket.create_connection(("127.0.0.1", junction.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused


def test_client_disconnect_mid_stream_cancels_upstream(
    junction: Running, mock: MockProvider
) -> None:
    c = RawConn(junction.port)
    c.request(
        "POST",
        "/v1/messages",
        [*HEADERS, ("x-mock-tokens-per-s", "5"), ("x-mock-output-tokens", "100")],
        STREAM_MSG,
    )
    assert c.sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert junction.upstream_stats()["exchanges_active"] == 1
    c.close()
    deadline = time.monotonic() + 3
    stats = junction.upstream_stats()
    while time.monotonic() < deadline:
        stats = junction.upstream_stats()
        if stats["exchanges_active"] == 0 and stats["connections_open"] == 0:
            break
        time.sleep(0.02)
    assert stats["exchanges_active"] == 0
    assert stats["connections_open"] == 0  # an HTTP/1.1 exchange cut mid-body is not reused
    assert junction.stats()["downstream"]["streams_active"] == 0  # type: ignore[index]


def _spawn(config_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config_path), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _models(port: int) -> list[str]:
    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
    return [m["id"] for m in r.json()["data"]]


def test_sighup_reload_keeps_old_config_when_new_is_bad(mock: MockProvider, tmp_path: Path) -> None:
    port, admin = free_ports(2)
    cfg = base_config(mock.port, listen={"port": port}, admin={"port": admin})
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _spawn(path)
    try:
        wait_port(port)
        assert _models(port)[0] == "claude-sonnet-4-5"
        path.write_text("providers: [\n")  # broken YAML
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = httpx.get(f"http://127.0.0.1:{admin}/stats", timeout=5).json()
            if st["config"]["reload_failures_total"] == 1:
                break
            time.sleep(0.05)
        assert st["config"]["reload_failures_total"] == 1
        assert _models(port)[0] == "claude-sonnet-4-5"  # still serving the old config
        cfg["router"] = {"default": "mock,claude-haiku-4-5"}
        path.write_text(yaml.safe_dump(cfg))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _models(port)[0] != "claude-haiku-4-5":
            time.sleep(0.05)
        assert _models(port)[0] == "claude-haiku-4-5"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_workers_share_the_port_and_exit_cleanly(mock: MockProvider, tmp_path: Path) -> None:
    port, admin = free_ports(2)
    cfg = base_config(mock.port, listen={"port": port}, admin={"port": admin})
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _spawn(path, "--workers", "2")
    try:
        wait_port(port)
        pids = set()
        for _ in range(40):
            with httpx.Client(timeout=5) as client:  # a new connection each time
                pids.add(client.get(f"http://127.0.0.1:{admin}/stats").json()["pid"])
                r = client.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    headers=dict(HEADERS),
                    content=STREAM_MSG.replace(b'"stream": true', b'"stream": false'),
                )
                assert r.status_code == 200
            if len(pids) == 2:
                break
        assert len(pids) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_exit_when_their_supervisor_is_killed(mock: MockProvider, tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no chance to relay a stop: the kernel's parent-death
    signal drains the workers instead of leaving them serving, orphaned, forever."""
    port, admin = free_ports(2)
    cfg = base_config(mock.port, listen={"port": port}, admin={"port": admin})
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _spawn(path, "--workers", "2")
    workers: set[int] = set()
    try:
        wait_port(port)
        deadline = time.monotonic() + 10
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) == 2
        proc.kill()
        proc.wait(5)
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)
