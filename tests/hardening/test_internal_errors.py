"""A bug in a filter (an exception escaping a hook) fails its own request with a 500 in the
client's dialect; the connection and, on HTTP/2, its other streams carry on, and nothing
reaches the provider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
FILTERS = [{"use": "tests.hardening.boom_filter:Boom"}]


@pytest.mark.parametrize("header", ["x-boom", "x-boom-data"])
def test_a_filter_exception_is_a_500_in_the_dialect(
    junction_factory: Callable[..., Running], mock: MockProvider, header: str
) -> None:
    run = junction_factory(filters=FILTERS)
    with httpx.Client(base_url=run.url, timeout=5) as client:
        r = client.post("/v1/messages", json=BODY, headers={**HEADERS, header: "1"})
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "api_error"
        assert "boom" not in r.text  # the exception's text stays in the log
        r2 = client.post("/v1/chat/completions", json=BODY, headers={header: "1"})
        assert r2.status_code == 500 and r2.json()["error"]["type"] == "server_error"
        ok = client.post("/v1/messages", json=BODY, headers=HEADERS)
        assert ok.status_code == 200
    assert mock.recorder.requests_total == 1


def test_on_http2_the_other_streams_carry_on(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(filters=FILTERS)

    async def go() -> list[int]:
        async with httpx.AsyncClient(base_url=run.url, http2=True, http1=False, timeout=5) as c:
            bad = c.post("/v1/messages", json=BODY, headers={**HEADERS, "x-boom": "1"})
            good = [c.post("/v1/messages", json=BODY, headers=HEADERS) for _ in range(3)]
            rs = await asyncio.gather(bad, *good)
            assert all(r.http_version == "HTTP/2" for r in rs)
            return [r.status_code for r in rs]

    assert asyncio.run(go()) == [500, 200, 200, 200]
    assert mock.recorder.requests_total == 3
