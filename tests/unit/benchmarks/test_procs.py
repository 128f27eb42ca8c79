"""The benchmark's process plumbing, on real processes and sockets."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from benchmarks.procs import BenchError, Services, cpu_sample, port_is_free, process_tree, rss_kb


def test_a_bound_port_is_busy_and_a_released_one_is_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)


def test_cpu_and_memory_readings_of_a_process_tree(tmp_path: Path) -> None:
    services = Services(tmp_path)
    child = services.start(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path
    )
    try:
        assert child.pid in process_tree(os.getpid())
        before = cpu_sample(os.getpid())
        sum(i * i for i in range(300_000))
        after = cpu_sample(os.getpid())
        assert after.sched_ns > before.sched_ns
        assert rss_kb(os.getpid()) > rss_kb(child.pid) > 0
    finally:
        services.stop_all()
    assert child.popen.poll() is not None and services.started == []


def test_a_server_that_dies_before_listening_is_reported_with_its_stderr(tmp_path: Path) -> None:
    services = Services(tmp_path)
    script = "import sys; sys.stderr.write('config error: no providers\\n'); sys.exit(2)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = services.start("junction", [sys.executable, "-c", script], tmp_path)
    with pytest.raises(BenchError) as info:
        services.wait_ready(dead, port, timeout_s=10)
    message = str(info.value)
    assert "exited with code 2" in message and "config error: no providers" in message
    services.stop_all()


def test_a_server_that_never_listens_times_out_clearly(tmp_path: Path) -> None:
    services = Services(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mute = services.start(
        "junction", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path
    )
    try:
        with pytest.raises(BenchError, match="did not listen on port"):
            services.wait_ready(mute, port, timeout_s=0.3)
    finally:
        services.stop_all()
    assert mute.popen.poll() is not None
