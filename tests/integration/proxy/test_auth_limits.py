"""Downstream API keys and local limits through a running Junction: 401/403/429 in both
dialects, retry-after, concurrency slots released on every path, keys never forwarded or
logged."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from proxy.mock_provider import MockProvider

from .harness import PROVIDER_KEY, Running
from .rawhttp import RawConn

CI_KEY = "jx-ci-bot-7f3a9c1e5b2d4068"
LAPTOP_KEY = "jx-laptop-0b1c2d3e4f5a6978"
ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def keys(*, ci: dict[str, Any] | None = None, **auth: Any) -> dict[str, Any]:
    return {
        "keys": [
            {"name": "ci-bot", "key": CI_KEY, **(ci or {})},
            {"name": "laptop", "key": LAPTOP_KEY},
        ],
        **auth,
    }


def messages(
    run: Running, key: str | None = None, bearer: bool = False, **kw: Any
) -> httpx.Response:
    headers = dict(ANTHROPIC)
    if key is not None:
        headers["authorization" if bearer else "x-api-key"] = f"Bearer {key}" if bearer else key
    headers.update(kw.pop("headers", {}))
    return httpx.post(
        f"{run.url}/v1/messages", json=kw.pop("body", MSG), headers=headers, timeout=10
    )


def chat(run: Running, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(
        f"{run.url}/v1/chat/completions", json=kw.pop("body", CHAT), headers=headers, timeout=10
    )


def limiter_in_use(run: Running, scope: str) -> int:
    return run.lt.call(lambda: run.worker.holder.current.limiter.in_use(scope))  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


# -- keys --------------------------------------------------------------------------------


def test_missing_and_wrong_keys_get_401_in_the_clients_dialect(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(auth=keys())
    for key in (None, "jx-not-a-configured-key-000", CI_KEY[:-1]):
        r = messages(run, key)
        assert r.status_code == 401
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "authentication_error"
        r = chat(run, key)
        assert r.status_code == 401
        error = r.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
        expected = "missing API key" if key is None else "invalid API key"
        assert error["message"].startswith(expected)
    r = httpx.get(f"{run.url}/v1/models", timeout=10)
    assert r.status_code == 401
    assert httpx.head(f"{run.url}/", timeout=10).status_code == 200  # Claude Code's probe
    assert mock.recorder.requests_total == 0  # nothing reached the provider


def test_a_valid_key_passes_and_never_reaches_the_provider(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(auth=keys())
    assert messages(run, CI_KEY).status_code == 200
    assert messages(run, LAPTOP_KEY, bearer=True).status_code == 200
    assert chat(run, CI_KEY).status_code == 200
    r = httpx.get(f"{run.url}/v1/models", headers={"x-api-key": CI_KEY}, timeout=10)
    assert r.status_code == 200
    assert len(mock.recorded) == 3
    for sent in mock.recorded:
        raw = b"".join(k + b": " + v for k, v in sent.headers) + sent.body
        assert CI_KEY.encode() not in raw and LAPTOP_KEY.encode() not in raw
    assert mock.recorded[0].header("x-api-key") == PROVIDER_KEY
    assert mock.recorded[2].header("authorization") == "Bearer sk-openai-provider"


def test_optional_keys_let_anonymous_clients_through_but_still_limit_them(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(
        auth=keys(required=False),
        rate_limits={"per_model": {"claude-sonnet-4-5": {"requests_per_minute": 2}}},
    )
    assert messages(run).status_code == 200
    assert messages(run, "some-key-the-agent-always-sends").status_code == 200
    r = messages(run, CI_KEY)
    assert r.status_code == 429  # the model's limit is shared by everyone
    assert "model 'claude-sonnet-4-5'" in r.json()["error"]["message"]
    assert chat(run).status_code == 200  # another model


def test_a_model_outside_the_keys_allow_list_gets_403(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(auth=keys(ci={"models": ["claude-haiku-4-5", "mock-openai,*"]}))
    r = messages(run, CI_KEY)
    assert r.status_code == 403
    assert r.json()["error"] == {
        "type": "permission_error",
        "message": "API key 'ci-bot' is not allowed to use model 'claude-sonnet-4-5'",
    }
    assert (
        chat(run, CI_KEY, body={**CHAT, "model": "mock,claude-sonnet-4-5"}).json()["error"]["type"]
        == "permission_error"
    )
    assert messages(run, CI_KEY, body={**MSG, "model": "claude-haiku-4-5"}).status_code == 200
    assert chat(run, CI_KEY).status_code == 200  # gpt-4.1 is served by mock-openai
    # A subagent tag cannot smuggle a model past the allow-list.
    tag = "<CCR-SUBAGENT-MODEL>mock,claude-sonnet-4-5</CCR-SUBAGENT-MODEL>"
    body = {**MSG, "model": "claude-haiku-4-5", "system": f"{tag} you are a subagent"}
    assert messages(run, CI_KEY, body=body).status_code == 403
    assert messages(run, LAPTOP_KEY).status_code == 200  # no list: every model
    assert len(mock.recorded) == 3


# -- limits ------------------------------------------------------------------------------


def test_requests_per_minute_answer_429_with_retry_after_in_both_dialects(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(auth=keys(ci={"limits": {"requests_per_minute": 3}}))
    assert [messages(run, CI_KEY).status_code for _ in range(2)] == [200, 200]
    assert chat(run, CI_KEY).status_code == 200
    r = messages(run, CI_KEY)
    assert r.status_code == 429
    # 3 per minute: one comes back every 20 s; whole seconds, rounded up.
    assert 19 <= int(r.headers["retry-after"]) <= 20
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert "API key 'ci-bot': 3 requests per minute" in r.json()["error"]["message"]
    r = chat(run, CI_KEY)
    assert r.status_code == 429 and r.headers["retry-after"]
    assert (r.json()["error"]["type"], r.json()["error"]["code"]) == (
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    assert messages(run, LAPTOP_KEY).status_code == 200  # per key


def test_concurrency_slot_is_held_while_in_flight_and_released_after(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(auth=keys(ci={"limits": {"concurrent": 1}}))
    slow: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: slow.append(messages(run, CI_KEY, headers={"x-mock-latency-ms": "400"}))
    )
    first.start()
    wait_for(lambda: limiter_in_use(run, "key:ci-bot") == 1)
    r = messages(run, CI_KEY)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "1 concurrent requests" in r.json()["error"]["message"]
    first.join(10)
    assert slow[0].status_code == 200
    assert limiter_in_use(run, "key:ci-bot") == 0
    assert messages(run, CI_KEY).status_code == 200
    # An error answer releases its slot too.
    r = messages(run, CI_KEY, headers={"x-mock-fail": "status:400"})
    assert r.status_code == 400 and limiter_in_use(run, "key:ci-bot") == 0


def test_a_client_that_resets_before_the_answer_gives_its_slot_back(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(rate_limits={"per_provider": {"mock": {"concurrent": 1}}})
    conn = RawConn(run.port)
    headers = [*ANTHROPIC.items(), ("x-mock-latency-ms", "3000")]
    conn.request("POST", "/v1/messages", headers, json.dumps(MSG).encode())
    wait_for(lambda: limiter_in_use(run, "provider:mock") == 1)
    assert messages(run).status_code == 429
    # A killed client: close with RST.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    wait_for(lambda: limiter_in_use(run, "provider:mock") == 0, timeout=1.0)
    assert messages(run).status_code == 200


def test_a_client_that_closes_before_the_answer_gives_its_slot_back(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(rate_limits={"per_provider": {"mock": {"concurrent": 1}}})
    conn = RawConn(run.port)
    headers = [*ANTHROPIC.items(), ("x-mock-latency-ms", "3000")]
    conn.request("POST", "/v1/messages", headers, json.dumps(MSG).encode())
    wait_for(lambda: limiter_in_use(run, "provider:mock") == 1)
    conn.close()  # a plain FIN: the client has left, its provider call is cancelled
    wait_for(lambda: limiter_in_use(run, "provider:mock") == 0, timeout=1.0)
    assert messages(run).status_code == 200


def test_a_client_that_leaves_mid_stream_gives_its_slot_back(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(rate_limits={"per_provider": {"mock": {"concurrent": 1}}})
    conn = RawConn(run.port)
    headers = [*ANTHROPIC.items(), ("x-mock-tokens-per-s", "20"), ("x-mock-output-tokens", "100")]
    conn.request(
        "POST",
        "/v1/messages",
        headers,
        json.dumps({**MSG, "max_tokens": 200, "stream": True}).encode(),
    )
    seen = b""
    while b"event: message_start" not in seen:
        chunk = conn.sock.recv(65536)
        assert chunk, "closed before the stream began"
        seen += chunk
    assert messages(run).status_code == 429
    conn.close()
    wait_for(lambda: limiter_in_use(run, "provider:mock") == 0, timeout=2.0)
    assert messages(run).status_code == 200


def test_the_access_log_names_the_key_and_never_shows_it(
    junction_factory: Callable[..., Running], capfd: pytest.CaptureFixture[str]
) -> None:
    run = junction_factory(
        auth=keys(ci={"limits": {"requests_per_minute": 1}}), log={"access_log": True}
    )
    assert messages(run, CI_KEY).status_code == 200
    assert messages(run, CI_KEY, bearer=True).status_code == 429
    assert messages(run, LAPTOP_KEY + "x").status_code == 401
    run.lt.call(run.worker.access_log.flush)
    out, err = capfd.readouterr()
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["status"], r["key"], r["flags"]) for r in records] == [
        (200, "ci-bot", "-"),
        (429, "ci-bot", "RL"),
        (401, None, "-"),
    ]
    for secret in (CI_KEY, LAPTOP_KEY, CI_KEY[-8:], LAPTOP_KEY[-8:]):
        assert secret not in out and secret not in err


def test_a_reload_keeps_the_running_counts(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(auth=keys(ci={"limits": {"requests_per_minute": 1}}))
    assert messages(run, CI_KEY).status_code == 200
    assert run.lt.call(run.worker.reload)
    assert messages(run, CI_KEY).status_code == 429


# -- tokens counted from what the provider reports ------------------------------------------


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ({**MSG, "stream": True}, "passthrough stream"),
        (MSG, "passthrough whole answer"),
        ({**MSG, "model": "gpt-4.1", "stream": True}, "translated stream"),
        ({**MSG, "model": "gpt-4.1"}, "translated whole answer"),
    ],
)
def test_token_limits_count_the_usage_the_provider_reports(
    junction_factory: Callable[..., Running],
    capfd: pytest.CaptureFixture[str],
    body: dict[str, Any],
    route: str,
) -> None:
    run = junction_factory(
        auth=keys(ci={"limits": {"tokens_per_minute": 3000}}), log={"access_log": True}
    )
    # The answer reports 4,000 output tokens, more than the minute's 3,000: the next request
    # finds the budget spent by what the provider reported (the estimate was ~10 tokens).
    heavy = {"x-mock-output-tokens": "4000"}
    first = messages(run, CI_KEY, body={**body, "max_tokens": 5000}, headers=heavy)
    assert first.status_code == 200, (route, first.text)
    second = messages(run, CI_KEY, body={**body, "max_tokens": 5000}, headers=heavy)
    assert second.status_code == 429, route
    assert second.json()["error"]["type"] == "rate_limit_error"
    run.lt.call(run.worker.access_log.flush)
    out, _ = capfd.readouterr()
    record = next(json.loads(x) for x in out.splitlines() if x.startswith('{"ts"'))
    assert record["output_tokens"] >= 4000 and record["input_tokens"] > 0, route
