"""HTTP/2 (cleartext prior knowledge and TLS + ALPN) and TLS HTTP/1.1."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from proxy.mock_provider import MockProvider

from .helpers import anthropic_body, openai_body, provider, run, sse_events


def h2c_client(mock: MockProvider) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=mock.base_url, http1=False, http2=True)


def test_h2c_prior_knowledge() -> None:
    async def main() -> None:
        async with provider() as mock:
            async with httpx.AsyncClient(base_url=mock.base_url, http1=False, http2=True) as c:
                results = await asyncio.gather(
                    *(c.post("/v1/chat/completions", json=openai_body()) for _ in range(5)),
                    c.post("/v1/messages", json=anthropic_body(stream=True)),
                    c.head("/"),
                )
                for r in results:
                    assert r.http_version == "HTTP/2" and r.status_code == 200
                assert sse_events(results[5].content)[-1][0] == "message_stop"
                assert results[6].content == b""
                nf = await c.post("/v1/messages/nope", json={})
                assert nf.status_code == 404 and nf.json()["error"]["type"] == "not_found_error"
            assert mock.connections_accepted == 1
            assert {r.http_version for r in mock.recorded} == {"2"}
            assert mock.recorded[0].header(":method") == "POST"

    run(main())


def test_h2c_large_stream_crosses_flow_control_windows() -> None:
    async def main() -> None:
        async with provider() as mock, h2c_client(mock) as c:
            headers = {"x-mock-output-tokens": "5000"}  # ~1 MB of SSE: beyond 64 KiB windows
            r = await c.post(
                "/v1/messages", json=anthropic_body(stream=True, max_tokens=10000), headers=headers
            )
            events = sse_events(r.content)
            assert events[-1][0] == "message_stop"
            deltas = [d for n, d in events if n == "content_block_delta"]
            assert len(deltas) == 5000

    run(main())


def test_h2c_failures_reset_the_stream_only() -> None:
    async def main() -> None:
        async with provider() as mock, h2c_client(mock) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post(
                    "/v1/messages", json=anthropic_body(), headers={"x-mock-fail": "reset"}
                )
            ok = await c.post("/v1/messages", json=anthropic_body())
            assert ok.status_code == 200
            assert mock.connections_accepted == 1

    run(main())


def test_h2c_can_be_turned_off() -> None:
    async def main() -> None:
        async with provider(h2c=False) as mock, h2c_client(mock) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get("/")

    run(main())


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[str, str, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return str(cert_path), str(key_path), client_ctx


def test_tls_alpn_h2_and_http11(tls_files: tuple[str, str, ssl.SSLContext]) -> None:
    cert, key, client_ctx = tls_files

    async def main() -> None:
        async with provider(tls_cert=cert, tls_key=key) as mock:
            assert mock.base_url.startswith("https://")
            async with httpx.AsyncClient(
                base_url=mock.base_url, verify=client_ctx, http2=True
            ) as c:
                r = await c.post("/v1/messages", json=anthropic_body(stream=True))
                assert r.http_version == "HTTP/2"
                assert sse_events(r.content)[-1][0] == "message_stop"
            async with httpx.AsyncClient(base_url=mock.base_url, verify=client_ctx) as c:
                r = await c.post("/v1/chat/completions", json=openai_body())
                assert r.http_version == "HTTP/1.1" and r.status_code == 200
        async with (
            provider(tls_cert=cert, tls_key=key, tls_h2=False) as mock,
            httpx.AsyncClient(base_url=mock.base_url, verify=client_ctx, http2=True) as c,
        ):
            r = await c.get("/")
            assert r.http_version == "HTTP/1.1"  # h2 not offered through ALPN

    run(main(), uvloop=True)
