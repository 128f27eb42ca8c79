"""Every failure mode once, through real clients, plus the seeded failure rate."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from .helpers import KEY, anthropic_body, openai_body, provider, run, sse_events

USER = [{"role": "user", "content": "hi"}]


def fail(mode: str) -> dict[str, str]:
    return {"x-mock-fail": mode}


def test_status_failures_carry_dialect_bodies_and_retry_after() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            r = await c.post("/v1/messages", json=anthropic_body(), headers=fail("status:429"))
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "rate_limit_error"
            r = await c.post("/v1/chat/completions", json=openai_body(), headers=fail("status:429"))
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            r = await c.post("/v1/messages", json=anthropic_body(), headers=fail("status:529"))
            assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
            r = await c.post("/v1/messages", json=anthropic_body(), headers=fail("status:500"))
            assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"
            r = await c.post("/v1/chat/completions", json=openai_body(), headers=fail("status:503"))
            assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
            r = await c.post(
                "/v1/chat/completions", json=openai_body(), headers={"x-mock-status": "502"}
            )
            assert r.status_code == 502 and "error" in r.json()
            r = await c.post("/v1/messages", json=anthropic_body(), headers={"x-mock-fail": "nope"})
            assert r.status_code == 400 and "fail mode" in r.json()["error"]["message"]
            assert mock.failures_injected == 6

    run(main())


def test_sdks_map_529_and_429() -> None:
    async def main() -> None:
        async with provider() as mock:
            a = anthropic.AsyncAnthropic(base_url=mock.base_url, api_key=KEY, max_retries=0)
            async with a:
                with pytest.raises(anthropic.OverloadedError):
                    await a.messages.create(
                        model="m", max_tokens=9, messages=USER, extra_headers=fail("status:529")
                    )
            o = openai.AsyncOpenAI(base_url=mock.base_url + "/v1", api_key=KEY, max_retries=0)
            async with o:
                with pytest.raises(openai.RateLimitError):
                    await o.chat.completions.create(
                        model="m",
                        messages=USER,
                        extra_headers=fail("status:429"),
                    )

    run(main())


def test_reset_is_a_connection_error() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            with pytest.raises(httpx.TransportError):
                await c.post("/v1/messages", json=anthropic_body(), headers=fail("reset"))
            assert mock.requests_total == 1  # the request was read before the abort

    run(main())


def test_reset_mid_stream_after_some_events() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            got = b""
            with pytest.raises(httpx.TransportError):
                async with c.stream(
                    "POST",
                    "/v1/messages",
                    json=anthropic_body(stream=True),
                    headers=fail("reset-mid-stream"),
                ) as r:
                    assert r.status_code == 200
                    async for part in r.aiter_raw():
                        got += part
            names = [name for name, _ in sse_events(got)]
            assert names[0] == "message_start" and "message_stop" not in names

    run(main())


def test_stall_and_stall_mid_stream_are_bounded_by_client_timeouts() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.post(
                    "/v1/messages", json=anthropic_body(), headers=fail("stall"), timeout=0.3
                )
            got = b""
            with pytest.raises(httpx.ReadTimeout):
                async with c.stream(
                    "POST",
                    "/v1/chat/completions",
                    json=openai_body(stream=True),
                    headers=fail("stall-mid-stream"),
                    timeout=0.3,
                ) as r:
                    async for part in r.aiter_raw():
                        got += part
            assert got.startswith(b"data: {") and b"[DONE]" not in got
            assert mock.connections_open >= 1  # the stalled connections are still held

    run(main())


def test_overloaded_in_stream_raises_in_the_anthropic_sdk() -> None:
    async def main() -> None:
        async with provider() as mock:
            a = anthropic.AsyncAnthropic(base_url=mock.base_url, api_key=KEY, max_retries=0)
            async with a:
                with pytest.raises(anthropic.APIStatusError) as info:
                    async with a.messages.stream(
                        model="m",
                        max_tokens=50,
                        messages=USER,
                        extra_headers=fail("overloaded-in-stream"),
                    ) as stream:
                        await stream.get_final_message()
                assert "overloaded" in str(info.value).lower()
            async with httpx.AsyncClient(base_url=mock.base_url) as c:
                r = await c.post(
                    "/v1/chat/completions",
                    json=openai_body(stream=True),
                    headers=fail("overloaded-in-stream"),
                )
                assert r.status_code == 200
                events = sse_events(r.content)
                assert '"error"' in events[-1][1] and "[DONE]" not in r.text
                plain = await c.post(
                    "/v1/messages", json=anthropic_body(), headers=fail("overloaded-in-stream")
                )
                assert plain.status_code == 529

    run(main())


def test_garbage_and_bad_json() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post("/v1/messages", json=anthropic_body(), headers=fail("garbage"))
            r = await c.post("/v1/messages", json=anthropic_body(), headers=fail("bad-json"))
            assert r.status_code == 200
            with pytest.raises(ValueError):
                r.json()

    run(main())


def test_fail_rate_is_seeded_and_applies_to_generation_only() -> None:
    async def count_failures(seed: int) -> list[int]:
        async with (
            provider(fail_rate=0.5, fail_mode="status:503", seed=seed) as mock,
            httpx.AsyncClient(base_url=mock.base_url) as c,
        ):
            statuses = []
            for _ in range(40):
                r = await c.post("/v1/chat/completions", json=openai_body())
                statuses.append(r.status_code)
            assert (await c.get("/v1/models")).status_code == 200
            return statuses

    async def main() -> None:
        first = await count_failures(7)
        assert first == await count_failures(7)
        assert set(first) == {200, 503}
        assert 8 <= first.count(503) <= 32

    run(main())
