"""HTTP/2 (cleartext prior knowledge and TLS with ALPN) and HTTP/1.1 over TLS."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import hyperframe.frame
import pytest
import trustme

from proxy.mock_provider import MockProvider

from .harness import Running

MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_junction(
    junction_factory: Callable[..., Running], ca: trustme.CA, tmp_path: Path
) -> tuple[Running, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    run = junction_factory(
        listen={
            "host": "127.0.0.1",
            "port": 0,
            "tls": {"cert_file": str(cert_file), "key_file": str(key_file)},
        }
    )
    return run, str(ca_file)


async def _fifty(client: httpx.AsyncClient, url: str) -> list[httpx.Response]:
    async def one(i: int) -> httpx.Response:
        return await client.post(
            url + "/v1/messages", json=MSG, headers={**HEADERS, "x-request-id": f"s{i}"}
        )

    return await asyncio.gather(*(one(i) for i in range(50)))


def test_h2c_prior_knowledge_50_concurrent_streams(junction: Running, mock: MockProvider) -> None:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            return await _fifty(client, junction.url)

    responses = asyncio.run(go())
    assert all(r.status_code == 200 for r in responses)
    assert all(r.http_version == "HTTP/2" for r in responses)
    assert sorted(r.headers["x-request-id"] for r in responses) == sorted(
        f"s{i}" for i in range(50)
    )
    assert all(r.json()["type"] == "message" for r in responses)
    assert junction.stats()["downstream"]["connections_total"] == 1  # type: ignore[index]


def test_tls_alpn_h2_50_concurrent_streams(tls_junction: tuple[Running, str]) -> None:
    run, ca_file = tls_junction

    async def go() -> list[httpx.Response]:
        ctx = ssl.create_default_context(cafile=ca_file)
        async with httpx.AsyncClient(http2=True, verify=ctx, timeout=10) as client:
            return await _fifty(client, f"https://127.0.0.1:{run.port}")

    responses = asyncio.run(go())
    assert all(r.status_code == 200 and r.http_version == "HTTP/2" for r in responses)


def test_tls_http11_when_client_offers_only_http11(tls_junction: tuple[Running, str]) -> None:
    run, ca_file = tls_junction
    ctx = ssl.create_default_context(cafile=ca_file)
    with httpx.Client(verify=ctx, timeout=10) as client:
        r = client.post(f"https://127.0.0.1:{run.port}/v1/messages", json=MSG, headers=HEADERS)
    assert r.status_code == 200 and r.http_version == "HTTP/1.1"


def test_h2_streamed_response_and_window_that_never_opens(
    junction: Running, mock: MockProvider
) -> None:
    """A client whose stream window stays shut: the proxy holds a bounded amount and pauses
    the upstream rather than buffering the whole answer."""
    sock = socket.create_connection(("127.0.0.1", junction.port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()  # default 64 KiB windows, never reopened below
    body = json.dumps({**MSG, "stream": True, "max_tokens": 4000}).encode()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":path", "/v1/messages"),
            (":scheme", "http"),
            (":authority", "x"),
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
            ("x-mock-output-tokens", "4000"),
            ("content-length", str(len(body))),
        ],
    )
    conn.send_data(1, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    status = None
    got_data = 0
    sock.settimeout(1.0)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    got_data += len(ev.data)
            sock.sendall(conn.data_to_send())
    except TimeoutError:
        pass
    assert status == b"200"
    assert 0 < got_data <= 65535  # exactly what the window allowed, nothing more
    # The stream is still open and the exchange is alive, just paused.
    assert junction.upstream_stats()["exchanges_active"] == 1
    # Reset it: the proxy cancels the upstream exchange.
    conn.reset_stream(1)
    sock.sendall(conn.data_to_send())
    for _ in range(100):
        if junction.upstream_stats()["exchanges_active"] == 0:
            break
        asyncio.run(asyncio.sleep(0.02))
    assert junction.upstream_stats()["exchanges_active"] == 0
    sock.close()


def test_h2_drain_sends_goaway_and_lets_open_stream_finish(
    junction: Running, mock: MockProvider
) -> None:
    import threading

    sock = socket.create_connection(("127.0.0.1", junction.port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = json.dumps({**MSG, "stream": True}).encode()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":path", "/v1/messages"),
            (":scheme", "http"),
            (":authority", "x"),
            ("content-type", "application/json"),
            ("x-mock-tokens-per-s", "40"),
            ("x-mock-output-tokens", "20"),
            ("content-length", str(len(body))),
        ],
    )
    conn.send_data(1, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    drainer = threading.Thread(target=junction.drain)
    # Frames are read with hyperframe: the h2 library refuses every frame after a GOAWAY,
    # while a conforming client keeps reading the streams the GOAWAY lets finish.
    buf = b""
    goaway_last = None
    ended = False
    data = b""
    while not ended:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 9:
            frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            if isinstance(frame, hyperframe.frame.DataFrame) and frame.stream_id == 1:
                if not data:
                    drainer.start()  # drain while the stream is running
                data += frame.data
                ended = "END_STREAM" in frame.flags
            elif isinstance(frame, hyperframe.frame.GoAwayFrame):
                goaway_last = frame.last_stream_id
            elif isinstance(frame, hyperframe.frame.HeadersFrame) and "END_STREAM" in frame.flags:
                ended = True
    drainer.join(30)
    assert goaway_last == 1
    assert ended and b"event: message_stop" in data
    sock.close()
