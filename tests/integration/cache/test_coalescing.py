"""Identical concurrent misses share one upstream call: non-streaming followers get the stored
answer, streaming ones the leader's events as they arrive (with their own id)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running

from .helpers import ANTHROPIC, AUTH, KEY_A, cache_stats, msg, sse_events, unique

LATENCY_MS = "1500"  # the leader's upstream call is still running when the last one arrives


async def _fire(
    run: Running, bodies: list[dict[str, Any]], headers: dict[str, str]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=run.url, limits=limits, timeout=20) as client:
        h = {**ANTHROPIC, "x-api-key": KEY_A, **headers}
        return await asyncio.gather(
            *(client.post("/v1/messages", json=b, headers=h) for b in bodies)
        )


def test_100_identical_concurrent_requests_make_one_upstream_call(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = msg(unique())
    bodies = [{**body, "stream": i % 2 == 1} for i in range(100)]
    responses = asyncio.run(
        _fire(run, bodies, {"x-mock-latency-ms": LATENCY_MS, "x-mock-tokens-per-s": "200"})
    )
    assert [r.status_code for r in responses] == [200] * 100
    assert mock.requests_total == 1
    ids = set()
    texts = set()
    for b, r in zip(bodies, responses, strict=True):
        assert r.headers["x-junction-cache"] == "miss"
        if b["stream"]:
            events = sse_events(r.text)
            assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
            ids.add(events[0][1]["message"]["id"])
            texts.add(
                "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
            )
        else:
            ids.add(r.json()["id"])
            texts.add(r.json()["content"][0]["text"])
    assert len(ids) == 100  # every client got its own id
    assert len(texts) == 1
    stats = cache_stats(run)
    assert stats["misses_total"] == 1 and stats["coalesced_total"] == 99
    assert stats["stores_total"] == 1 and stats["flights_active"] == 0


def test_followers_go_upstream_themselves_when_the_leader_fails(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={}, resilience={"retry": {"max_retries": 0}})
    body = msg(unique())
    responses = asyncio.run(
        _fire(run, [body] * 5, {"x-mock-latency-ms": "300", "x-mock-fail": "status:400"})
    )
    assert [r.status_code for r in responses] == [400] * 5
    assert mock.requests_total == 5  # each follower asked for itself
    assert cache_stats(run)["stores_total"] == 0


def test_a_follower_waits_at_most_coalesce_wait_s(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={"coalesce_wait_s": 0.1})
    body = msg(unique())
    responses = asyncio.run(_fire(run, [body] * 3, {"x-mock-latency-ms": "800"}))
    assert [r.status_code for r in responses] == [200] * 3
    assert mock.requests_total == 3
    assert cache_stats(run)["coalesced_total"] == 0


def test_coalescing_off(junctions: Callable[..., Running], mock: MockProvider) -> None:
    run = junctions(auth=AUTH, cache={"coalesce": False})
    responses = asyncio.run(_fire(run, [msg(unique())] * 4, {"x-mock-latency-ms": "300"}))
    assert [r.status_code for r in responses] == [200] * 4
    assert mock.requests_total == 4


def test_streaming_followers_joining_mid_stream_get_every_event(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = {**msg(unique()), "stream": True}
    headers = {**ANTHROPIC, "x-api-key": KEY_A, "x-mock-tokens-per-s": "40"}

    async def scenario() -> tuple[str, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=run.url, timeout=20) as client:
            async with client.stream("POST", "/v1/messages", json=body, headers=headers) as lead:
                chunks = lead.aiter_text()
                first = await chunks.__anext__()  # the leader's stream has begun
                followers = [
                    asyncio.ensure_future(client.post("/v1/messages", json=body, headers=headers))
                    for _ in range(10)
                ]
                rest = "".join([c async for c in chunks])
            return first + rest, list(await asyncio.gather(*followers))

    leader_text, followers = asyncio.run(scenario())
    assert mock.requests_total == 1
    lead_events = sse_events(leader_text)
    assert lead_events[-1][0] == "message_stop"
    for r in followers:
        events = sse_events(r.text)
        assert [n for n, _ in events] == [n for n, _ in lead_events]
        assert events[0][1]["message"]["id"] != lead_events[0][1]["message"]["id"]
        assert events[1:] == lead_events[1:]
    assert cache_stats(run)["coalesced_total"] == 10


def test_http2_streams_of_one_connection_coalesce_and_hit(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = msg(unique())

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        h = {**ANTHROPIC, "x-api-key": KEY_A, "x-mock-latency-ms": "500"}
        async with httpx.AsyncClient(base_url=run.url, http1=False, http2=True) as client:
            bodies = [{**body, "stream": i % 2 == 0} for i in range(20)]
            first = await asyncio.gather(
                *(client.post("/v1/messages", json=b, headers=h) for b in bodies)
            )
            later = await client.post("/v1/messages", json=body, headers=h)
            return list(first), later

    first, later = asyncio.run(scenario())
    assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in first)
    assert mock.requests_total == 1
    assert later.headers["x-junction-cache"] == "hit-l1"
    assert later.json()["content"] == first[1].json()["content"]


def test_live_followers_end_in_band_when_the_leader_breaks_mid_stream(
    junctions: Callable[..., Running], mock: MockProvider
) -> None:
    run = junctions(auth=AUTH, cache={})
    body = {**msg(unique()), "stream": True}
    headers = {
        **ANTHROPIC,
        "x-api-key": KEY_A,
        "x-mock-tokens-per-s": "40",
        "x-mock-fail": "reset-mid-stream",
    }

    async def scenario() -> tuple[str, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=run.url, timeout=20) as client:
            async with client.stream("POST", "/v1/messages", json=body, headers=headers) as lead:
                chunks = lead.aiter_text()
                first = await chunks.__anext__()
                followers = [
                    asyncio.ensure_future(client.post("/v1/messages", json=body, headers=headers))
                    for _ in range(3)
                ]
                rest = "".join([c async for c in chunks])
            return first + rest, list(await asyncio.gather(*followers))

    leader_text, followers = asyncio.run(scenario())
    assert sse_events(leader_text)[-1][0] == "error"
    for r in followers:
        assert r.status_code == 200
        events = sse_events(r.text)
        assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert mock.requests_total == 1
    stats = cache_stats(run)
    assert stats["stores_total"] == 0 and stats["coalesced_total"] == 0
