"""Junction's upstream side against the mock provider over h2c and over TLS (ALPN h2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import trustme

from proxy.mock_provider import MockProvider

from .harness import LoopThread, Running, start_mock

MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


def _provider(url: str, protocol: str, ca_file: str | None = None) -> dict[str, object]:
    p: dict[str, object] = {
        "name": "up",
        "dialect": "anthropic",
        "base_url": url,
        "api_key": "k",
        "protocol": protocol,
    }
    if ca_file:
        p["ca_file"] = ca_file
    return p


async def _concurrent(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(
            *(client.post(url + "/v1/messages", json=MSG, headers=HEADERS) for _ in range(n))
        )


def test_h2c_upstream_multiplexes_on_one_connection(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(
        providers=[_provider(f"http://127.0.0.1:{mock.port}", "h2c")],
        router={"default": "up,claude-sonnet-4-5"},
    )
    responses = asyncio.run(_concurrent(run.url, 30))
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json()["type"] == "message" for r in responses)
    assert {r.http_version for r in mock.recorded} == {"2"}
    assert mock.connections_accepted == 1


def test_tls_upstream_with_ca_file_and_alpn(
    junction_factory: Callable[..., Running], lt: LoopThread, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    tls_mock = start_mock(lt, tls_cert=str(cert_file), tls_key=str(key_file))
    try:
        run = junction_factory(
            providers=[_provider(f"https://127.0.0.1:{tls_mock.port}", "auto", str(ca_file))],
            router={"default": "up,claude-sonnet-4-5"},
        )
        responses = asyncio.run(_concurrent(run.url, 10))
        assert all(r.status_code == 200 for r in responses)
        assert {r.http_version for r in tls_mock.recorded} == {"2"}  # ALPN picked h2

        # Without the CA file the provider's certificate is not trusted: a clean 502.
        bad = junction_factory(
            providers=[_provider(f"https://127.0.0.1:{tls_mock.port}", "auto")],
            router={"default": "up,claude-sonnet-4-5"},
        )
        r = httpx.post(bad.url + "/v1/messages", json=MSG, headers=HEADERS, timeout=10)
        assert r.status_code == 502
        assert r.json()["error"]["type"] == "api_error"
    finally:
        lt.run(tls_mock.stop())


def _proxy_garbage(collect: Callable[[], None]) -> dict[str, int]:
    """Runs ``collect`` with the cyclic collector off, then returns the Junction (and mock)
    objects only that collector could free; the clients' own garbage is left out."""
    import collections
    import gc

    gc.collect()
    gc.disable()
    try:
        collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.startswith("proxy.")
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return dict(found)


def test_closed_h2_connections_leave_no_cyclic_garbage(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    """HTTP/2 on both sides: a client connection that closes, and the upstream connection
    closed by the pool's shutdown, are freed by reference counting alone."""
    run = junction_factory(
        providers=[_provider(f"http://127.0.0.1:{mock.port}", "h2c")],
        router={"default": "up,claude-sonnet-4-5"},
    )

    async def one_client() -> None:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            r = await client.post(run.url + "/v1/messages", json=MSG, headers=HEADERS)
            assert r.status_code == 200 and r.http_version == "HTTP/2"

    asyncio.run(one_client())  # warm pools and caches first

    def clients_then_shutdown() -> None:
        for _ in range(5):
            asyncio.run(one_client())
        run.drain()  # closes the upstream h2c connection too

    assert _proxy_garbage(clients_then_shutdown) == {}
