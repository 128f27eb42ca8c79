"""Raw HTTP behaviour: probes, error shapes, ids, keep-alive, pipelining, limits, recording."""

from __future__ import annotations

import asyncio
import re

import httpx

from .helpers import anthropic_body, openai_body, provider, run


def test_head_and_get_root() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            head = await c.head("/")
            assert head.status_code == 200 and head.content == b""
            get = await c.get("/")
            assert get.status_code == 200 and get.json()["status"] == "ok"
            assert head.headers["content-length"] == get.headers["content-length"]

    run(main())


def test_unknown_path_404_in_dialect_of_the_path() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            a = await c.post("/v1/messages/batches", json={})
            assert a.status_code == 404
            assert a.json()["type"] == "error"
            assert a.json()["error"]["type"] == "not_found_error"
            assert a.headers["request-id"] == a.json()["request_id"]
            o = await c.post("/v1/embeddings", json={})
            assert o.status_code == 404
            assert o.json()["error"]["type"] == "invalid_request_error"
            assert "request-id" not in o.headers
            wrong_method = await c.get("/v1/chat/completions")
            assert wrong_method.status_code == 405

    run(main())


def test_bad_json_and_missing_fields_are_400_in_dialect() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            a = await c.post("/v1/messages?beta=true", content=b"{not json")
            assert a.status_code == 400
            assert a.json()["error"]["type"] == "invalid_request_error"
            o = await c.post("/v1/chat/completions", content=b"[1, 2")
            assert o.status_code == 400
            assert o.json()["error"]["type"] == "invalid_request_error"
            body = anthropic_body()
            del body["model"]
            r = await c.post("/v1/messages", json=body)
            assert r.status_code == 400 and "model" in r.json()["error"]["message"]
            r = await c.post("/v1/messages", json=anthropic_body(messages=[]))
            assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
            body = anthropic_body()
            del body["max_tokens"]
            assert (await c.post("/v1/messages", json=body)).status_code == 400
            body = openai_body()
            del body["messages"]
            r = await c.post("/v1/chat/completions", json=body)
            assert r.status_code == 400 and "error" in r.json()
            r = await c.post("/v1/chat/completions", json=[openai_body()])
            assert r.status_code == 400

    run(main())


def test_request_id_echoed_or_generated() -> None:
    async def main() -> None:
        async with provider() as mock, httpx.AsyncClient(base_url=mock.base_url) as c:
            echoed = await c.post(
                "/v1/messages", json=anthropic_body(), headers={"x-request-id": "abc-123"}
            )
            assert echoed.headers["x-request-id"] == "abc-123"
            assert echoed.headers["request-id"] == "abc-123"
            first = await c.post("/v1/chat/completions", json=openai_body())
            second = await c.post("/v1/chat/completions", json=openai_body())
            assert first.headers["x-request-id"].startswith("req_mock_")
            assert first.headers["x-request-id"] != second.headers["x-request-id"]
            assert first.json()["id"] != second.json()["id"]  # fresh ids for identical bodies
            assert first.json()["choices"] == second.json()["choices"]

    run(main())


def test_keep_alive_hundred_requests_one_connection() -> None:
    async def main() -> None:
        limits = httpx.Limits(max_connections=1)
        async with (
            provider() as mock,
            httpx.AsyncClient(base_url=mock.base_url, limits=limits) as c,
        ):
            for i in range(100):
                path = "/v1/messages" if i % 2 else "/v1/chat/completions"
                body = anthropic_body() if i % 2 else openai_body(stream=i % 4 == 0)
                r = await c.post(path, json=body)
                assert r.status_code == 200
            assert mock.connections_accepted == 1
            assert mock.requests_total == 100
            assert {rec.connection_id for rec in mock.recorded} == {1}
            assert mock.per_path == {"/v1/messages": 50, "/v1/chat/completions": 50}

    run(main())


async def _raw(port: int, data: bytes, *, until_closed: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(-1) if until_closed else reader.read(65536), 5)
    finally:
        writer.close()
        await writer.wait_closed()


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        async with provider() as mock:
            slow = _post("/v1/messages", b'{"model": "slow"}', "x-mock-latency-ms: 150\r\n")
            fast = _post("/v1/messages", b"{bad")
            stream = _post(
                "/v1/chat/completions",
                b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}',
                "x-mock-sse-gap-ms: 5\r\n",
            )
            last = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            out = await _raw(mock.port, slow + fast + stream + last)
            statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
            assert statuses == [b"400", b"400", b"200", b"200"]
            assert out.index(b"messages: at least one") < out.index(b"invalid JSON")
            assert out.index(b"data: [DONE]") < out.index(b'"service":"junction-mock-provider"')
            assert mock.connections_accepted == 1

    run(main())


def test_http10_and_connection_close() -> None:
    async def main() -> None:
        async with provider() as mock:
            out = await _raw(mock.port, b"GET / HTTP/1.0\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in out
            body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
            req = b"POST /v1/chat/completions HTTP/1.0\r\ncontent-length: %d\r\n\r\n%s"
            out = await _raw(mock.port, req % (len(body), body))
            assert b"transfer-encoding" not in out  # HTTP/1.0: close-delimited
            assert out.endswith(b"data: [DONE]\n\n")

    run(main())


def test_limits_431_413_and_bad_framing_400() -> None:
    async def main() -> None:
        async with provider(max_header_bytes=1024, max_body_bytes=2048) as mock:
            big = b"GET / HTTP/1.1\r\nx-big: " + b"a" * 2000 + b"\r\n\r\n"
            assert (await _raw(mock.port, big)).startswith(b"HTTP/1.1 431 ")
            body = b"x" * 3000
            assert (await _raw(mock.port, _post("/v1/messages", body))).startswith(b"HTTP/1.1 413 ")
            assert (await _raw(mock.port, b"NOT HTTP AT ALL\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
            assert mock.requests_total == 0  # none of them got as far as being recorded

    run(main())


def test_recording_is_bounded_and_bodies_cut() -> None:
    async def main() -> None:
        async with provider(record_limit=5, record_body_bytes=64) as mock:
            async with httpx.AsyncClient(base_url=mock.base_url) as c:
                for i in range(8):
                    await c.post(
                        "/v1/messages?beta=true",
                        json=anthropic_body(metadata={"user_id": "u" * 200}),
                        headers={"x-api-key": f"key-{i}", "anthropic-version": "2023-06-01"},
                    )
            rec = mock.recorded
            assert len(rec) == 5 and mock.requests_total == 8
            assert [r.header("X-Api-Key") for r in rec] == [f"key-{i}" for i in range(3, 8)]
            assert all(len(r.body) == 64 for r in rec)
            assert rec[0].method == "POST" and rec[0].path == "/v1/messages?beta=true"
            assert rec[0].http_version == "1.1"
            mock.clear_recording()
            assert mock.recorded == [] and mock.requests_total == 0

    run(main())


def test_expect_continue_and_idle_timeout() -> None:
    async def main() -> None:
        async with provider(idle_timeout_s=0.2) as mock:
            reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
            body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}'
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
                b"content-length: %d\r\n\r\n" % len(body)
            )
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
                b"HTTP/1.1 100 Continue\r\n\r\n"
            )
            writer.write(body)
            rest = await asyncio.wait_for(reader.read(-1), 5)  # the idle timer closes it
            assert rest.startswith(b"HTTP/1.1 200 OK") and b'"type":"message"' in rest
            writer.close()
            await writer.wait_closed()

    run(main())


def test_half_closed_client_still_gets_its_delayed_answer() -> None:
    async def main() -> None:
        async with provider() as mock:
            reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nx-mock-latency-ms: 50\r\n\r\n")
            writer.write_eof()
            out = await asyncio.wait_for(reader.read(-1), 5)
            assert out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in out
            writer.close()
            await writer.wait_closed()

    run(main(), uvloop=True)
