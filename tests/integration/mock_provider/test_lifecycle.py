"""Start/stop hygiene and the command line."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from proxy.mock_provider import MockOptions, MockProvider

from .helpers import anthropic_body, provider, run

ROOT = Path(__file__).resolve().parents[3]


def test_stop_closes_held_connections_and_timers() -> None:
    async def main() -> None:
        mock = MockProvider(MockOptions(port=0, tokens_per_s=5.0))
        port = await mock.start()
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _, writer in stalled:
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nx-mock-fail: stall\r\ncontent-length: 2\r\n\r\n{}"
            )
        async with (
            httpx.AsyncClient(base_url=mock.base_url) as c,
            c.stream("POST", "/v1/messages", json=anthropic_body(stream=True)) as r,
        ):
            await r.aiter_raw().__anext__()  # the paced stream has started
            await asyncio.wait_for(mock.stop(), 5)
            assert mock.connections_open == 0
        for reader, writer in stalled:
            assert await asyncio.wait_for(reader.read(-1), 5) == b""  # closed, nothing sent
            writer.close()
        assert mock.connections_accepted == 4
        await mock.stop()  # idempotent

    run(main(), uvloop=True)


def test_ephemeral_ports_and_two_providers_side_by_side() -> None:
    async def main() -> None:
        async with provider() as a, provider() as b:
            assert a.port != b.port and a.port > 0
            async with httpx.AsyncClient() as c:
                assert (await c.get(a.base_url + "/")).status_code == 200
                assert (await c.get(b.base_url + "/")).status_code == 200
            assert a.requests_total == b.requests_total == 1

    run(main())


def test_cli_prints_port_serves_and_exits_zero_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.mock_provider", "--port", "0", "--output-tokens", "3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match, line
        r = httpx.post(match.group(1) + "/v1/messages", json=anthropic_body(), timeout=5)
        assert r.json()["usage"]["output_tokens"] == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_rejects_bad_options() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "proxy.mock_provider", "--fail-mode", "explode"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2 and "fail mode" in proc.stderr
