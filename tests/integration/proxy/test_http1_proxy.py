"""Junction over HTTP/1.1 with both codecs, against the mock provider on loopback."""

from __future__ import annotations

import json
import re
import socket

import pytest

from proxy.mock_provider import MockProvider

from .harness import PROVIDER_KEY, Running
from .rawhttp import RawConn, header

MSG = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()
ANTHROPIC_HEADERS = [
    ("content-type", "application/json"),
    ("anthropic-version", "2023-06-01"),
    ("x-api-key", "client-key-must-not-leak"),
]


def recorded(mock: MockProvider) -> list:  # type: ignore[type-arg]
    return list(mock.recorder.requests)


def test_keepalive_reuse_100_requests_one_upstream_connection(
    junction: Running, mock: MockProvider
) -> None:
    c = RawConn(junction.port)
    for _ in range(100):
        c.request("POST", "/v1/messages?beta=true", ANTHROPIC_HEADERS, MSG)
        resp, body = c.response()
        assert resp.status_code == 200, body
        assert json.loads(body)["type"] == "message"
    c.close()
    assert mock.recorder.requests_total == 100
    assert mock.recorder.connections_accepted == 1
    assert junction.upstream_stats()["connections_open"] == 1


def test_head_and_get_root_answer_200(junction: Running) -> None:
    c = RawConn(junction.port)
    c.request("HEAD", "/")
    resp, body = c.response()
    assert resp.status_code == 200 and body == b""
    c.request("GET", "/")
    resp, body = c.response()
    assert resp.status_code == 200 and json.loads(body)["status"] == "ok"


def test_credentials_swapped_and_hop_by_hop_stripped(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    c.request(
        "POST",
        "/v1/messages",
        [
            *ANTHROPIC_HEADERS,
            ("authorization", "Bearer client-bearer"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "1"),
            ("x-junction-route", "evil"),
            ("x-request-id", "req-abc-123"),
            ("x-keep-me", "yes"),
        ],
        MSG,
    )
    resp, _ = c.response()
    assert resp.status_code == 200
    assert header(resp, "x-request-id") == "req-abc-123"
    seen = recorded(mock)[-1]
    assert seen.header("x-api-key") == PROVIDER_KEY
    assert seen.header("authorization") is None
    assert seen.header("x-drop-me") is None
    assert seen.header("x-junction-route") is None
    assert seen.header("x-keep-me") == "yes"
    assert seen.header("x-request-id") == "req-abc-123"
    assert seen.header("host") == f"127.0.0.1:{mock.port}"
    assert seen.path == "/v1/messages"


def test_request_id_generated_when_missing(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, MSG)
    resp, _ = c.response()
    rid = header(resp, "x-request-id")
    assert rid and len(rid) >= 16
    assert recorded(mock)[-1].header("x-request-id") == rid


def test_pipelined_requests_answered_in_order(junction: Running) -> None:
    c = RawConn(junction.port)
    raw = b""
    for i in range(5):
        raw += (
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"anthropic-version: 2023-06-01\r\nx-request-id: pipe-%d\r\ncontent-length: %d\r\n\r\n"
            % (i, len(MSG))
        ) + MSG
    c.send_raw(raw)
    out = b""
    while out.count(b'"usage"') < 5:
        chunk = c.sock.recv(65536)
        assert chunk, out
        out += chunk
    ids = re.findall(rb"x-request-id: (pipe-\d)", out)
    assert ids == [b"pipe-%d" % i for i in range(5)]
    assert out.count(b"HTTP/1.1 200 OK") == 5


def test_chunked_request_body_reaches_upstream_whole(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    head = (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"anthropic-version: 2023-06-01\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    half = len(MSG) // 2
    body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, MSG[:half], len(MSG) - half, MSG[half:])
    c.send_raw(head + body)
    resp, out = c.response()
    assert resp.status_code == 200, out
    assert json.loads(recorded(mock)[-1].body) == json.loads(MSG)


def test_streamed_response_is_chunked_and_complete(junction: Running) -> None:
    c = RawConn(junction.port)
    stream_body = json.dumps({**json.loads(MSG), "stream": True}).encode()
    c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, stream_body)
    resp, body = c.response()
    assert resp.status_code == 200
    assert header(resp, "transfer-encoding") == "chunked"
    assert header(
        resp,
        "content-type",
    ).startswith("text/event-stream")  # type: ignore[union-attr]
    events = [line for line in body.split(b"\n") if line.startswith(b"event: ")]
    assert events[0] == b"event: message_start" and events[-1] == b"event: message_stop"


def test_unknown_path_is_404_in_client_dialect(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    c.request("POST", "/v1/nope", ANTHROPIC_HEADERS, MSG)
    resp, body = c.response()
    assert resp.status_code == 404
    doc = json.loads(body)
    assert doc["type"] == "error" and doc["error"]["type"] == "not_found_error"
    c.request("POST", "/v1/nope", [("content-type", "application/json")], MSG)
    resp, body = c.response()
    assert resp.status_code == 404
    assert json.loads(body)["error"]["code"] == "model_not_found"
    assert mock.recorder.requests_total == 0


def test_dot_segments_cannot_escape_routes(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    c.request("POST", "/v1/messages/../../admin", ANTHROPIC_HEADERS, MSG)
    resp, _ = c.response()
    assert resp.status_code == 404
    c.request("POST", "/v1/%2e%2e/messages", ANTHROPIC_HEADERS, MSG)
    resp, _ = c.response()
    assert resp.status_code == 400
    assert mock.recorder.requests_total == 0


def test_bad_json_is_400_and_never_forwarded(junction: Running, mock: MockProvider) -> None:
    c = RawConn(junction.port)
    c.request("POST", "/v1/chat/completions", [("content-type", "application/json")], b"{nope")
    resp, body = c.response()
    assert resp.status_code == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    deep = b"[" * 100_000 + b"]" * 100_000
    c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, deep)
    resp, body = c.response()
    assert resp.status_code == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert mock.recorder.requests_total == 0


def test_method_not_allowed(junction: Running) -> None:
    c = RawConn(junction.port)
    c.request("GET", "/v1/messages", ANTHROPIC_HEADERS)
    resp, _body = c.response()
    assert resp.status_code == 405
    assert header(resp, "allow") == "POST"


def test_models_list_in_both_dialects(junction: Running) -> None:
    c = RawConn(junction.port)
    c.request("GET", "/v1/models", [("anthropic-version", "2023-06-01")])
    resp, body = c.response()
    doc = json.loads(body)
    assert resp.status_code == 200 and doc["data"][0]["type"] == "model"
    assert doc["data"][0]["id"] == "claude-sonnet-4-5"
    c.request("GET", "/v1/models")
    resp, body = c.response()
    doc = json.loads(body)
    assert doc["object"] == "list"
    assert {"gpt-4.1", "claude-haiku-4-5"} <= {m["id"] for m in doc["data"]}


def test_openai_client_goes_to_openai_dialect_provider(
    junction: Running, mock: MockProvider
) -> None:
    c = RawConn(junction.port)
    body = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]})
    c.request(
        "POST",
        "/v1/chat/completions",
        [("content-type", "application/json"), ("authorization", "Bearer client")],
        body.encode(),
    )
    resp, out = c.response()
    assert resp.status_code == 200, out
    assert json.loads(out)["object"] == "chat.completion"
    assert recorded(mock)[-1].header("authorization") == "Bearer sk-openai-provider"


def test_header_limits_431_and_body_limit_413(
    junction_factory,
    http1_codec: str,
    mock: MockProvider,  # type: ignore[no-untyped-def]
) -> None:
    run = junction_factory(
        server={"http": http1_codec}, limits={"max_header_bytes": 4096, "max_body_bytes": 1000}
    )
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", [*ANTHROPIC_HEADERS, ("x-big", "a" * 8000)], MSG)
    resp, _ = c.response()
    assert resp.status_code == 431
    assert c.is_closed_by_peer()
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, b"{" + b" " * 2000 + b"}")
    resp, _body = c.response()
    assert resp.status_code == 413
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", [*ANTHROPIC_HEADERS, *[(f"x-h{i}", "v") for i in range(150)]])
    resp, _ = c.response()
    assert resp.status_code == 431
    assert mock.recorder.requests_total == 0


def test_smuggling_shapes_rejected_without_upstream_call(
    junction: Running, mock: MockProvider
) -> None:
    bad = [
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
        b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n"
        b"content-length: 2\r\n\r\nab",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx_api_key: a\r\ncontent-length: 2\r\n\r\n{}",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nhost: y\r\ncontent-length: 2\r\n\r\n{}",
        b"GET / HTTP/1\xf61\r\nhost: x\r\n\r\n",
    ]
    for raw in bad:
        c = RawConn(junction.port)
        c.send_raw(raw)
        out = c.read_all_raw()
        assert out.startswith(b"HTTP/1.1 4") or out.startswith(b"HTTP/1.1 5"), (raw, out)
        assert b"connection: close" in out.lower()
        c.close()
    assert mock.recorder.requests_total == 0


def test_expect_100_continue(junction: Running) -> None:
    s = socket.create_connection(("127.0.0.1", junction.port), timeout=5)
    s.sendall(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"anthropic-version: 2023-06-01\r\nexpect: 100-continue\r\ncontent-length: %d\r\n\r\n"
        % len(MSG)
    )
    first = s.recv(100)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(MSG)
    rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n") :] + s.recv(65536)
    assert rest.startswith(b"HTTP/1.1 200")
    s.close()


def test_upstream_unreachable_is_502_in_dialect(
    junction_factory,
    http1_codec: str,  # type: ignore[no-untyped-def]
) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    run = junction_factory(
        server={"http": http1_codec},
        providers=[
            {
                "name": "gone",
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{port}",
                "api_key": "k",
            }
        ],
        router={"default": "gone,claude-sonnet-4-5"},
    )
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, MSG)
    resp, body = c.response()
    assert resp.status_code == 502
    doc = json.loads(body)
    assert doc["type"] == "error" and doc["error"]["type"] == "api_error"
    assert "Traceback" not in body.decode()


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_slow_request_times_out_with_408(
    junction_factory,
    http1_codec: str,
    phase: str,  # type: ignore[no-untyped-def]
) -> None:
    run = junction_factory(
        server={"http": http1_codec},
        limits={"request_header_timeout_s": 0.3, "request_body_timeout_s": 0.3},
    )
    c = RawConn(run.port, timeout=5)
    if phase == "headers":
        c.send_raw(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n")
    else:
        c.send_raw(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
    out = c.read_all_raw()
    assert out.startswith(b"HTTP/1.1 408"), out


def test_idle_keepalive_connection_closed_after_timeout(
    junction_factory,
    http1_codec: str,  # type: ignore[no-untyped-def]
) -> None:
    run = junction_factory(server={"http": http1_codec}, limits={"keepalive_timeout_s": 0.3})
    c = RawConn(run.port, timeout=5)
    c.request("GET", "/")
    resp, _ = c.response()
    assert resp.status_code == 200
    assert c.read_all_raw() == b""  # closed by the server, no bytes


def test_connection_limit_drops_extra_connections(
    junction_factory,
    http1_codec: str,  # type: ignore[no-untyped-def]
) -> None:
    run = junction_factory(server={"http": http1_codec, "max_connections": 2})
    a, b = RawConn(run.port), RawConn(run.port)
    for c in (a, b):
        c.request("GET", "/")
        assert c.response()[0].status_code == 200
    extra = RawConn(run.port, timeout=5)
    assert extra.is_closed_by_peer()  # dropped at once, no answer
    # The admin port still answers while the data port is full.
    admin = RawConn(run.admin_port)
    admin.request("GET", "/healthz")
    assert admin.response()[0].status_code == 200
    a.close()
    b.close()
    assert run.stats()["downstream"]["connections_rejected_total"] >= 1  # type: ignore[index]


def test_requests_leave_no_cyclic_garbage(junction: Running) -> None:
    """A finished exchange must be freed by reference counting alone: per-request cycles
    made the cyclic collector a visible share of the CPU per request."""
    import gc

    c = RawConn(junction.port)
    for _ in range(20):  # warm pools and caches first
        c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, MSG)
        c.response()
    gc.collect()
    gc.disable()
    try:
        for _ in range(200):
            c.request("POST", "/v1/messages", ANTHROPIC_HEADERS, MSG)
            assert c.response()[0].status_code == 200
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0


def test_closed_connections_leave_no_cyclic_garbage(
    junction_factory,
    http1_codec: str,  # type: ignore[no-untyped-def]
) -> None:
    """A closed connection, downstream or upstream, must be freed by reference counting
    alone. Streams on fresh connections (hundreds a second in a Claude Code fleet) otherwise
    leave cycles behind that only the cyclic collector frees, and its pauses grow with every
    stream held open."""
    import gc
    import time

    chunked = (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"anthropic-version: 2023-06-01\r\ntransfer-encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(MSG), MSG)
    )
    streamed = json.dumps({**json.loads(MSG), "stream": True}).encode()
    reset = [*ANTHROPIC_HEADERS, ("x-mock-fail", "reset-mid-stream")]
    # Resets on purpose, one after another: the breaker and the outlier detector stay out.
    junction = junction_factory(
        server={"http": http1_codec},
        resilience={"breaker": {"enabled": False}, "outlier": {"enabled": False}},
    )

    def one_of_each() -> None:
        c = RawConn(junction.port)  # a chunked request body (its decoder) on a new connection
        c.send_raw(chunked)
        assert c.response()[0].status_code == 200
        c.close()
        c = RawConn(junction.port)  # the provider resets: that upstream connection closes
        c.request("POST", "/v1/messages", reset, streamed)
        resp, body = c.response()
        assert resp.status_code == 200 and b"event: error" in body, body
        c.close()

    one_of_each()  # warm pools and caches first
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            one_of_each()
        deadline = time.monotonic() + 5
        while junction.stats()["downstream"]["connections_active"] and time.monotonic() < deadline:
            time.sleep(0.01)  # let the server see the last close
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
