"""Overload protection (hardening.md F24): past `limits.max_in_flight_requests`, new requests
get 503 in the client's dialect at once, nothing reaches the provider for them, and the
requests already in flight finish normally. On both HTTP/1.1 codecs and on HTTP/2."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running
from tests.integration.proxy.rawhttp import RawConn, header

from .h2raw import RawH2, post_messages

MSG = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()
CHAT = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}).encode()
ANTHROPIC = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]
SLOW = ("x-mock-latency-ms", "1500")


def in_flight(run: Running) -> int:
    return run.lt.call(lambda: run.worker.counters.active_streams)  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_http1_requests_past_the_limit_get_503_while_running_ones_finish(
    junction_factory: Callable[..., Running], http1_codec: str, mock: MockProvider
) -> None:
    run = junction_factory(server={"http": http1_codec}, limits={"max_in_flight_requests": 2})
    results: list[int] = []

    def slow() -> None:
        c = RawConn(run.port)
        c.request("POST", "/v1/messages", [*ANTHROPIC, SLOW], MSG)
        results.append(c.response()[0].status_code)
        c.close()

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: in_flight(run) == 2)

    c = RawConn(run.port)
    c.request("POST", "/v1/messages", ANTHROPIC, MSG)
    resp, body = c.response()
    assert resp.status_code == 503
    assert header(resp, "retry-after") == "1"
    assert json.loads(body)["error"]["type"] == "overloaded_error"
    assert json.loads(body)["type"] == "error"
    c.request("POST", "/v1/chat/completions", [("content-type", "application/json")], CHAT)
    resp, body = c.response()  # the same connection stays usable
    assert resp.status_code == 503
    err = json.loads(body)["error"]
    assert (err["type"], err["code"]) == ("server_error", "overloaded")
    # Requests Junction answers itself are not API requests: never refused.
    c.request("GET", "/")
    assert c.response()[0].status_code == 200
    c.close()

    for t in threads:
        t.join(10)
    assert results == [200, 200]
    assert mock.recorder.requests_total == 2  # the refused ones never reached the provider
    assert run.lt.call(lambda: run.worker.counters.overloaded_total) == 2
    c = RawConn(run.port)  # below the limit again: served
    c.request("POST", "/v1/messages", ANTHROPIC, MSG)
    assert c.response()[0].status_code == 200
    c.close()


def test_http2_streams_past_the_limit_get_503(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(limits={"max_in_flight_requests": 2})
    c = RawH2(run.port)
    length = (b"content-length", b"%d" % len(MSG))
    for sid in (1, 3):
        c.send(c.headers(sid, post_messages([length, (b"x-mock-latency-ms", b"1500")]), False))
        c.send(c.data(sid, MSG, end_stream=True))
    wait_for(lambda: in_flight(run) == 2)
    c.send(c.headers(5, post_messages([length]), False) + c.data(5, MSG, end_stream=True))
    c.read_until(lambda _: c.ended(5))
    assert c.statuses[5] == 503
    assert 1 not in c.statuses and 3 not in c.statuses
    c.read_until(lambda _: c.ended(1) and c.ended(3), timeout=10)
    assert (c.statuses[1], c.statuses[3]) == (200, 200)
    assert mock.recorder.requests_total == 2
    c.close()
