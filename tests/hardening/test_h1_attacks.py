"""HTTP/1.1 attacks against a live Junction on both codecs (hardening.md §2 A1-A15, B1-B10):
the whole smuggling corpus of the codec unit tests replayed over real sockets, trickled
slowloris and R.U.D.Y. clients, hostile JSON and compressed bodies. Each case asserts the
status, that the connection was closed when it must be, and that the provider got nothing."""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import socket
import time
import tracemalloc
from collections.abc import Callable

import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running
from tests.integration.proxy.rawhttp import RawConn
from tests.unit.protocol.test_http1_smuggling import BAD_CHUNKED, BAD_HEADS, TE, head

MSG = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()


def status_of(out: bytes) -> int:
    assert out.startswith(b"HTTP/1.1 "), out[:200]
    return int(out[9:12])


def exchange(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    """Send raw bytes; read until the server closes (it must, after a framing error)."""
    c = RawConn(port, timeout=timeout)
    c.send_raw(data)
    start = time.monotonic()
    out = c.read_all_raw()
    assert time.monotonic() - start < timeout, "the server did not close the connection"
    c.close()
    return out


def test_smuggling_corpus_is_refused_and_closed(junction: Running, mock: MockProvider) -> None:
    """Every bad head and bad chunked body of the codec tests, over a socket, followed by a
    pipelined request that must never be read (no resync after a framing error)."""
    smuggled = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(MSG)
    # (The HTTP/2 preface is not bad on the live port: it selects HTTP/2, test_h2_frames.py.)
    cases = [(name, data, status) for name, data, status in BAD_HEADS if name != "h2-preface"]
    cases += [(name, head(b"Host: h", TE) + body, status) for name, body, status in BAD_CHUNKED]

    def run_corpus() -> None:
        for name, data, status in cases:
            out = exchange(junction.port, data + smuggled + MSG)
            assert status_of(out) == status, (name, out[:200])
            assert b"\r\nconnection: close\r\n" in out.lower(), name
            assert out.count(b"HTTP/1.1 ") == 1, (name, out)  # the pipelined one was dropped

    run_corpus()  # warms lazily built state (templates, pools, caches)
    tracemalloc.start()
    try:
        run_corpus()
        gc.collect()
        base, _ = tracemalloc.get_traced_memory()
        run_corpus()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Nothing per rejected connection is kept: memory returns to where it was.
    assert after - base < 100_000, after - base
    assert junction.lt.call(lambda: len(junction.worker.conns.conns)) == 0
    assert mock.recorder.requests_total == 0


def test_good_request_then_smuggled_one_forwards_only_the_first(
    junction: Running, mock: MockProvider
) -> None:
    good = (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"anthropic-version: 2023-06-01\r\ncontent-length: %d\r\n\r\n" % len(MSG)
    ) + MSG
    bad = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n" + TE + b"\r\n\r\n"
    c = RawConn(junction.port, timeout=3)
    c.send_raw(good)
    assert c.response()[0].status_code == 200
    c.send_raw(bad + b"0\r\n\r\n" + good)
    out = c.read_all_raw()
    assert status_of(out) == 400 and out.count(b"HTTP/1.1 ") == 1
    c.close()
    # In one read: the bad head fails the whole read; the good one before it is not served.
    out = exchange(junction.port, good + bad + b"0\r\n\r\n" + good)
    assert status_of(out) in (200, 400) and out.count(b"HTTP/1.1 400 ") == 1
    assert mock.recorder.requests_total in (1, 2)
    assert mock.recorder.requests_total == 1 + out.count(b"HTTP/1.1 200 ")


def test_h2c_upgrade_is_never_honoured(junction: Running, mock: MockProvider) -> None:
    """A14: h2c smuggling needs the proxy to switch protocols on an Upgrade header."""
    c = RawConn(junction.port)
    c.send_raw(
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    )
    out = c.sock.recv(65536)
    assert not out.startswith(b"HTTP/1.1 101"), out
    assert status_of(out) == 200  # answered as plain HTTP/1.1: the upgrade is ignored
    c.close()
    assert mock.recorder.requests_total == 0


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_trickling_client_is_cut_at_the_whole_request_deadline(
    junction_factory: Callable[..., Running], http1_codec: str, mock: MockProvider, phase: str
) -> None:
    """B4/B5: one byte every 50 ms never resets the clock; the deadline covers the whole
    head (slowloris) or the whole body (R.U.D.Y.)."""
    run = junction_factory(
        server={"http": http1_codec},
        limits={"request_header_timeout_s": 0.5, "request_body_timeout_s": 0.5},
    )
    s = socket.create_connection(("127.0.0.1", run.port), timeout=5)
    if phase == "body":
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        drip = b"{" + b" " * 999
    else:
        drip = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 200
    start = time.monotonic()
    s.settimeout(0.05)
    out = b""
    for byte in drip:
        try:
            s.sendall(bytes([byte]))
            out += s.recv(4096)
            if out:
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    took = time.monotonic() - start
    s.close()
    assert out.startswith(b"HTTP/1.1 408 "), out
    assert took < 2.0, took  # 0.5 s deadline: the trickle bought nothing
    assert mock.recorder.requests_total == 0


def test_many_silent_connections_are_bounded_and_health_still_answers(
    junction_factory: Callable[..., Running], http1_codec: str
) -> None:
    """B7: connections opened and left silent take at most max_connections slots, and each
    is closed at the header deadline; the admin port keeps answering."""
    run = junction_factory(
        server={"http": http1_codec, "max_connections": 20},
        limits={"request_header_timeout_s": 0.5, "keepalive_timeout_s": 0.5},
    )
    socks = [socket.create_connection(("127.0.0.1", run.port), timeout=3) for _ in range(40)]
    admin = RawConn(run.admin_port)
    admin.request("GET", "/healthz")
    assert admin.response()[0].status_code == 200
    admin.close()
    assert run.lt.call(lambda: len(run.worker.conns.conns)) <= 20
    deadline = time.monotonic() + 5
    while run.lt.call(lambda: len(run.worker.conns.conns)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.lt.call(lambda: len(run.worker.conns.conns)) == 0  # all timed out and closed
    for s in socks:
        s.close()


def post_body(port: int, body: bytes, extra: bytes = b"") -> tuple[int, dict]:  # type: ignore[type-arg]
    c = RawConn(port)
    c.send_raw(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"anthropic-version: 2023-06-01\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )
    resp, out = c.response()
    c.close()
    return resp.status_code, json.loads(out)


HOSTILE_JSON = {
    "deep-array": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "not-utf8": b'{"model": "\xff\xfe", "messages": []}',
    "nan": b'{"model": "claude-sonnet-4-5", "max_tokens": NaN, "messages": []}',
    "infinity": b'{"model": "claude-sonnet-4-5", "max_tokens": Infinity, "messages": []}',
    "lone-surrogate": b'{"model": "\\ud800", "messages": []}',
    "trailing-garbage": MSG + b"garbage",
    "array-top": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.parametrize("body", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_400_in_dialect(junction: Running, mock: MockProvider, body: bytes) -> None:
    """B9: recursion is bounded by the parser, nothing crashes into a 500."""
    status, doc = post_body(junction.port, body)
    assert status == 400, doc
    assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    assert mock.recorder.requests_total == 0


def test_body_over_the_limit_is_413_before_it_is_read(
    junction_factory: Callable[..., Running], http1_codec: str, mock: MockProvider
) -> None:
    run = junction_factory(server={"http": http1_codec}, limits={"max_body_bytes": 10_000})
    c = RawConn(run.port)
    c.send_raw(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n")
    out = c.read_all_raw()  # answered at once: nothing of the 100 MB was awaited
    assert status_of(out) == 413 and b"connection: close" in out.lower()
    c.close()
    # The same body chunked: refused once the running total passes the limit.
    c = RawConn(run.port)
    c.send_raw(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n" + TE + b"\r\n\r\n")
    c.sock.settimeout(0.02)
    out = b""
    # Read between writes: stop sending once the 413 is there.
    for _ in range(20):
        try:
            c.send_raw(b"400\r\n" + b" " * 1024 + b"\r\n")
            out += c.sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if out:
            break
    assert status_of(out) == 413
    c.close()
    assert mock.recorder.requests_total == 0


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br", b"gzip, identity"])
def test_compressed_bodies_are_refused_with_415(
    junction: Running, mock: MockProvider, encoding: bytes
) -> None:
    """B10: never inflated (no decompression bomb) and never forwarded mislabelled."""
    bomb = gzip.compress(b" " * 10_000_000)  # ~10 KB on the wire, 10 MB inflated
    status, doc = post_body(junction.port, bomb, b"content-encoding: " + encoding + b"\r\n")
    assert status == 415
    assert doc["error"]["type"] == "invalid_request_error"
    # A body that is plain JSON but labelled compressed is refused too.
    status, _ = post_body(junction.port, MSG, b"content-encoding: " + encoding + b"\r\n")
    assert status == 415
    assert mock.recorder.requests_total == 0
    status, _ = post_body(junction.port, MSG, b"content-encoding: identity\r\n")
    assert status == 200


@pytest.mark.parametrize("size", [200_000, 2_000_000])
def test_error_reply_reaches_a_client_that_is_still_sending(
    junction_factory: Callable[..., Running], http1_codec: str, mock: MockProvider, size: int
) -> None:
    """Lingering close: the 413 is answered while the client is still pushing its body. The
    server sends FIN and drops what follows instead of closing with unread input, which
    would reset the connection and destroy the reply in the client's receive buffer."""
    run = junction_factory(server={"http": http1_codec}, limits={"max_body_bytes": 10_000})
    s = socket.create_connection(("127.0.0.1", run.port), timeout=5)
    s.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % size)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        s.sendall(b" " * size)  # blind, as an SDK uploading a large request does
    out = b""
    while True:
        chunk = s.recv(65536)  # a reset here would raise: that is the failure being tested
        if not chunk:
            break
        out += chunk
    s.close()
    assert status_of(out) == 413, out
    assert mock.recorder.requests_total == 0
