"""Streaming through Junction against scripted upstreams: timing, backpressure, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from tests.support.h1server import ScriptedHttp1Server, sse, stall, stream_body

from .harness import LoopThread, Running
from .rawhttp import RawConn

MSG = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
).encode()
HEADERS = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]


def start_scripted(lt: LoopThread, responder: Any) -> ScriptedHttp1Server:
    async def go() -> ScriptedHttp1Server:
        return await ScriptedHttp1Server(responder).start()

    return lt.run(go())


def via(
    junction_factory: Callable[..., Running], server: ScriptedHttp1Server, **extra: Any
) -> Running:
    origin = server.origin()
    return junction_factory(
        providers=[
            {
                "name": "scripted",
                "dialect": "anthropic",
                "base_url": f"http://{origin.host}:{origin.port}",
                "api_key": "k",
            }
        ],
        router={"default": "scripted,claude-sonnet-4-5"},
        **extra,
    )


def read_until(c: RawConn, marker: bytes, buf: bytearray) -> None:
    while marker not in buf:
        chunk = c.sock.recv(65536)
        assert chunk, bytes(buf)
        buf += chunk


def test_sse_events_pass_through_before_the_next_exists(
    lt: LoopThread, junction_factory: Callable[..., Running]
) -> None:
    gates = [asyncio.Event() for _ in range(3)]
    events = [f'event: e{i}\ndata: {{"i":{i}}}\n\n'.encode() for i in range(4)]
    server = start_scripted(lt, sse(events, gates=gates))
    run = via(junction_factory, server)
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", HEADERS, MSG)
    buf = bytearray()
    for i in range(4):
        # Event i arrives while the upstream has not yet been allowed to write event i + 1.
        read_until(c, b"event: e%d" % i, buf)
        if i < 3:
            lt.loop.call_soon_threadsafe(gates[i].set)
    read_until(c, b"0\r\n\r\n", buf)
    lt.run(server.stop())


def test_slow_reader_pauses_upstream_and_memory_stays_bounded(
    lt: LoopThread, junction_factory: Callable[..., Running]
) -> None:
    total = 64 * 1024 * 1024
    server = start_scripted(lt, stream_body(total))
    run = via(junction_factory, server)
    c = RawConn(run.port, timeout=20)
    c.request("POST", "/v1/messages", HEADERS, MSG)
    time.sleep(1.0)  # the client reads nothing
    written = lt.call(lambda: sum(conn.bytes_written for conn in server.connections))
    # Socket buffers on both hops plus the proxy's bounded write buffer, nowhere near 64 MiB.
    assert written < 24 * 1024 * 1024, written
    got = 0
    while got < total:
        chunk = c.sock.recv(1 << 20)
        assert chunk
        got += len(chunk)
    assert got >= total
    lt.run(server.stop())


def test_upstream_reset_after_commit_gives_in_band_error(
    lt: LoopThread, junction_factory: Callable[..., Running]
) -> None:
    async def one_event_then_reset(request: Any, conn: Any) -> None:
        await conn.send_head(200, [(b"content-type", b"text/event-stream")])
        await conn.send_chunk(b'event: ping\ndata: {"a":1}\n\n')
        await asyncio.sleep(0.05)  # let the event reach the proxy before the RST
        conn.abort(rst=True)

    server = start_scripted(lt, one_event_then_reset)
    run = via(junction_factory, server)
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", HEADERS, MSG)
    out = c.read_all_raw()
    assert out.startswith(b"HTTP/1.1 200")
    assert b"event: ping" in out
    assert b"event: error" in out and b'"type":"api_error"' in out
    assert b"message_stop" not in out  # never a fabricated stop
    assert out.endswith(b"0\r\n\r\n")
    lt.run(server.stop())


def test_no_response_headers_in_time_is_504(
    lt: LoopThread, junction_factory: Callable[..., Running]
) -> None:
    server = start_scripted(lt, stall())
    run = via(junction_factory, server, upstream={"response_header_timeout_s": 0.3})
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", HEADERS, MSG)
    resp, body = c.response()
    assert resp.status_code == 504
    assert json.loads(body)["error"]["type"] == "timeout_error"
    assert run.upstream_stats()["exchanges_active"] == 0
    lt.run(server.stop())


@pytest.mark.parametrize("gap_s", [0.0])
def test_stream_stall_after_first_event_ends_with_in_band_error(
    lt: LoopThread, junction_factory: Callable[..., Running], gap_s: float
) -> None:
    gate = asyncio.Event()  # never set: the upstream stalls after the first event
    server = start_scripted(
        lt, sse([b"event: a\ndata: {}\n\n", b"event: b\ndata: {}\n\n"], gates=[gate])
    )
    run = via(junction_factory, server, upstream={"stream_idle_timeout_s": 0.3})
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", HEADERS, MSG)
    out = c.read_all_raw()
    assert b"event: a" in out and b"event: b" not in out
    assert b"event: error" in out and b"timeout_error" in out
    assert run.upstream_stats()["exchanges_active"] == 0
    lt.run(server.stop())


def test_read_batching_under_overload_holds_no_first_token_and_loses_nothing(
    junction_factory: Callable[..., Running],
) -> None:
    # Any use of the core counts as overload here: batching is on from the first sample.
    window_s = 0.5
    run = junction_factory(
        upstream={"read_batching": {"start_above": 1e-6, "stop_below": 0.0, "window_s": window_s}}
    )
    deadline = time.monotonic() + 10
    while run.stats()["upstream"]["read_batching"] != 1:
        assert time.monotonic() < deadline, run.stats()
        time.sleep(0.05)
    body = {
        "model": "gpt-4.1",  # served by mock-openai: translated, Anthropic in, OpenAI out
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "count"}],
    }
    headers = {
        "anthropic-version": "2023-06-01",
        "x-mock-tokens-per-s": "50",
        "x-mock-output-tokens": "40",
    }
    started = time.monotonic()
    first_token_s = None
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "POST", run.url + "/v1/messages", json=body, headers=headers, timeout=10
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if first_token_s is None and events[-1]["type"] == "content_block_delta":
                    first_token_s = time.monotonic() - started
    # The first token is never held for a window; the 40 tokens (0.8 s) that follow are.
    assert first_token_s is not None and first_token_s < window_s * 0.8
    assert run.upstream_stats()["read_holds_total"] >= 1
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [e for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) == 40 and all(d["delta"]["type"] == "text_delta" for d in deltas)
    assert events[-2]["usage"]["output_tokens"] == 40


def test_read_batching_follows_a_reload(junction_factory: Callable[..., Running]) -> None:
    always = {"start_above": 1e-6, "stop_below": 0.0, "window_s": 0.5}
    run = junction_factory(upstream={"read_batching": always})

    def batching() -> Any:
        return run.stats()["upstream"]["read_batching"]

    def reload_with(section: dict[str, Any]) -> None:
        cfg = yaml.safe_load(run.config_path.read_text())
        cfg["upstream"] = {"read_batching": section}
        run.config_path.write_text(yaml.safe_dump(cfg))
        assert run.lt.call(run.worker.reload) is True

    def wait_for(want: int) -> None:
        deadline = time.monotonic() + 10
        while batching() != want:
            assert time.monotonic() < deadline, run.stats()
            time.sleep(0.05)

    wait_for(1)
    reload_with({"enabled": False})
    assert batching() == 0 and run.stats()["core_busy"] is None
    reload_with({**always, "window_s": 0.2})
    wait_for(1)
    assert run.lt.call(lambda: run.worker.client.reads.window_s) == 0.2
    assert run.stats()["core_busy"] > 0
