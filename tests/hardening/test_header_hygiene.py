"""What reaches the provider, and what comes back, at the header level (hardening.md D3-D5,
A15, C8): client credentials and Junction's internal `x-junction-*` control headers are
stripped, hop-by-hop headers named in Connection cannot remove the provider key, a client
x-request-id that is not a safe header value is replaced, and every header value that leaves
Junction either way is free of CR, LF and other control characters. Checked against what the
mock provider recorded, on both HTTP/1.1 codecs and on HTTP/2."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import PROVIDER_KEY, Running
from tests.integration.proxy.rawhttp import RawConn

from .h2raw import RawH2, post_messages

CLIENT_SECRET = "client-secret-4f9a"
JUNCTION_KEY = "jk-laptop-0123456789"
SAFE = re.compile(rb"^[\x20-\x7e\t]*$")
BODY = json.dumps(
    {
        # A model name carrying a header injection: it may only ever travel inside JSON.
        "model": "claude-sonnet-4-5\r\nX-Evil: 1",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()

HOSTILE: list[tuple[str, str]] = [
    ("content-type", "application/json"),
    ("anthropic-version", "2023-06-01"),
    ("x-api-key", CLIENT_SECRET),
    ("proxy-authorization", f"Basic {CLIENT_SECRET}"),
    ("x-junction-route", "mock-openai,gpt-4.1"),
    ("X-Junction-Cache", "bypass"),
    ("x-junction-cache-ttl", "999999"),
    ("x-junction-debug", "1"),
    ("x-request-id", "r" * 200),  # too long to be a request id: replaced, never echoed
    ("connection", "keep-alive, x-api-key, x-drop-me"),  # cannot drop the provider key
    ("x-drop-me", "1"),
    ("x-keep-me", "yes"),
]


def check_forwarded(mock: MockProvider) -> dict[str, Any]:
    assert mock.recorder.requests_total == 1
    sent = mock.recorder.requests[-1]
    raw = b"".join(k + b": " + v + b"\r\n" for k, v in sent.headers)
    assert CLIENT_SECRET.encode() not in raw + sent.body
    assert JUNCTION_KEY.encode() not in raw + sent.body
    assert sent.header("x-api-key") == PROVIDER_KEY
    assert sent.header("authorization") is None and sent.header("proxy-authorization") is None
    assert not [k for k, _ in sent.headers if k.startswith(b"x-junction-")]
    assert sent.header("x-drop-me") is None and sent.header("x-keep-me") == "yes"
    assert all(SAFE.match(v) for _, v in sent.headers), sent.headers
    assert [k for k, _ in sent.headers if k == b"x-evil"] == []
    rid = sent.header("x-request-id")
    assert rid is not None and len(rid) <= 128
    return {"rid": rid, "model": sent.json()["model"]}


def junction_with_auth(factory: Callable[..., Running], **server: Any) -> Running:
    # Junction's own client keys on: the client's key authenticates it and still stays here.
    return factory(
        server=server,
        auth={"keys": [{"name": "laptop", "key": JUNCTION_KEY}]},
    )


def with_key(headers: list[tuple[str, str]], key: str) -> list[tuple[str, str]]:
    return [(k, key if k == "x-api-key" else v) for k, v in headers]


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "junction-keys"])
def test_http1_forwards_nothing_it_should_not(
    junction_factory: Callable[..., Running], http1_codec: str, mock: MockProvider, auth: bool
) -> None:
    if auth:
        run = junction_with_auth(junction_factory, http=http1_codec)
        headers = with_key(HOSTILE, JUNCTION_KEY)
    else:
        run = junction_factory(server={"http": http1_codec})
        headers = [*HOSTILE, ("authorization", f"Bearer {CLIENT_SECRET}")]
    c = RawConn(run.port)
    c.request("POST", "/v1/messages", headers, BODY)
    resp, _ = c.response()
    assert resp.status_code == 200
    assert all(SAFE.match(bytes(v)) for _, v in resp.headers)
    got = check_forwarded(mock)
    assert dict(resp.headers)[b"x-request-id"].decode() == got["rid"]
    c.close()


def test_http2_forwards_nothing_it_should_not(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_with_auth(junction_factory)
    c = RawH2(run.port)
    # HTTP/2 forbids Connection: everything else of the hostile set is sent as is.
    hostile = with_key(HOSTILE, JUNCTION_KEY)
    headers = [(k.lower().encode(), v.encode()) for k, v in hostile if k != "connection"]
    headers += [
        (b"content-length", b"%d" % len(BODY)),
        (b"x-drop-me", b"1"),
    ]
    base = [h for h in post_messages() if h[0].startswith(b":")]
    c.send(c.headers(1, base + headers, end_stream=False) + c.data(1, BODY, end_stream=True))
    c.read_until(lambda _: c.ended(1))
    assert c.statuses.get(1) == 200, c.frames
    sent = mock.recorder.requests[-1]
    raw = b"".join(k + b": " + v for k, v in sent.headers)
    assert CLIENT_SECRET.encode() not in raw and JUNCTION_KEY.encode() not in raw
    assert sent.header("x-api-key") == PROVIDER_KEY
    assert not [k for k, _ in sent.headers if k.startswith(b"x-junction-")]
    assert all(SAFE.match(v) for _, v in sent.headers)
    c.close()


@pytest.mark.parametrize(
    "value", [b"a\rb", b"a\nx-evil: 1", b"a\x00b", b"\x1b[31mred"], ids=["CR", "LF", "NUL", "ESC"]
)
def test_http2_control_characters_in_values_never_reach_the_provider(
    junction_factory: Callable[..., Running], mock: MockProvider, value: bytes
) -> None:
    run = junction_factory()
    c = RawH2(run.port)
    body = json.dumps({**json.loads(BODY), "model": "claude-sonnet-4-5"}).encode()
    extra = [(b"x-client", value), (b"content-length", b"%d" % len(body))]
    c.send(c.headers(1, post_messages(extra), end_stream=False) + c.data(1, body, True))
    c.read_until(lambda _: 1 in c.resets() or c.closed)
    assert c.resets().get(1) == 1  # PROTOCOL_ERROR
    assert mock.recorder.requests_total == 0
    c.close()


@pytest.mark.parametrize(
    "value", [b"a\rb", b"a\x00b", b"\x1b[31mred", b"a\x7f"], ids=["CR", "NUL", "ESC", "DEL"]
)
def test_http1_control_characters_in_values_are_400(
    junction_factory: Callable[..., Running],
    http1_codec: str,
    mock: MockProvider,
    value: bytes,
) -> None:
    run = junction_factory(server={"http": http1_codec})
    c = RawConn(run.port, timeout=3)
    c.send_raw(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-client: "
        + value
        + b"\r\ncontent-length: 2\r\n\r\n{}"
    )
    out = c.read_all_raw()
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"connection: close" in out.lower()
    assert mock.recorder.requests_total == 0
    c.close()


def test_two_client_keys_never_reach_the_provider(
    junction_factory: Callable[..., Running], http1_codec: str, mock: MockProvider
) -> None:
    """D2: x-api-key and a Bearer token naming different keys. Junction authenticates with
    the one that matches (docs/security.md, "Client keys") and forwards neither."""
    run = junction_with_auth(junction_factory, http=http1_codec)
    c = RawConn(run.port)
    headers = [*with_key(HOSTILE, JUNCTION_KEY), ("authorization", f"Bearer {CLIENT_SECRET}")]
    c.request("POST", "/v1/messages", headers, BODY)
    resp, body = c.response()
    assert resp.status_code == 200
    assert CLIENT_SECRET.encode() not in body and JUNCTION_KEY.encode() not in body
    check_forwarded(mock)
    c.close()
    # Neither key valid: 401, nothing forwarded, no key echoed.
    c = RawConn(run.port)
    headers = [*HOSTILE, ("authorization", "Bearer another-wrong-key")]
    c.request("POST", "/v1/messages", headers, BODY)
    resp, body = c.response()
    assert resp.status_code == 401
    assert CLIENT_SECRET.encode() not in body and b"another-wrong-key" not in body
    assert mock.recorder.requests_total == 1
    c.close()
