"""The fault matrix (hardening.md §4) for upstreams and clients, against real misbehaving peers.

Each test puts a fault between Junction and a real upstream on loopback — a mock provider told
to fail, a scripted HTTP/1.1 server, a closed port, a full accept queue or the `FaultProxy` —
and asserts three things: what the client sees (status and body in its dialect, or the in-band
error that ends its stream), which upstream attempts were made (with a fallback candidate
configured: taken when nothing reached the client, not taken once bytes did), and that nothing
was left behind (`Rig.assert_settled` here; drain, pools, slots and tasks at teardown).

"Committed" means response bytes reached the client. Junction holds the response head until
the first body byte (and, while another attempt is possible, a stream's first events until its
first content), so a failure before that can still fall back or be retried.

Where Junction differs from hardening.md's expectation the test asserts the expectation and is
marked ``xfail(strict=True)`` with the gap (or the suspected cause of a bug) as its reason.

Not covered here: Redis (F13-F15, tests/integration/redis), config reload and drain (F19,
F20: tests/integration/proxy/test_lifecycle.py), overload manager and loop lag (F24, F25).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from proxy.mock_provider import MockProvider
from tests.support.faultproxy import (
    Fault,
    FaultProxy,
    FullBacklog,
    ProxiedConnection,
    closed_port,
)
from tests.support.h1server import ReceivedRequest, ServerConnection
from tests.support.h2server import H2ServerStream

from .clients import (
    ANTHROPIC_HEADERS,
    H1Client,
    H2Client,
    anthropic_event,
    anthropic_start,
    ask,
    completed,
    error_type,
    in_band_error,
    openai_stream,
    sse,
    sse_answer,
    wait_until,
)
from .clients import body as body_of
from .rig import (
    ANTHROPIC_MODEL,
    CONNECT_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    Rig,
    provider,
    target,
)

ROUTE = "x-junction-route"


def primary_and_backup(
    rig: Rig, primary_port: int, primary_dialect: str = "anthropic", **primary_extra: Any
) -> tuple[Any, MockProvider, list[dict[str, Any]]]:
    """A primary provider at ``primary_port`` and a healthy Anthropic-dialect backup."""
    backup_mock = rig.mock()
    primary = provider("primary", primary_port, primary_dialect, **primary_extra)
    backup = provider("backup", backup_mock.port)
    return primary, backup_mock, [primary, backup]


def with_backup(
    rig: Rig, primary_port: int, primary_dialect: str = "anthropic", **primary_extra: Any
) -> tuple[Any, MockProvider]:
    """Junction routing to the primary, falling back to a healthy backup mock."""
    _, backup_mock, ps = primary_and_backup(rig, primary_port, primary_dialect, **primary_extra)
    run = rig.junction(ps, [target(p) for p in ps])
    return run, backup_mock


def alone(
    rig: Rig,
    primary_port: int,
    dialect: str = "anthropic",
    *,
    protocol: str | None = None,
    **sections: Any,
) -> Any:
    """Junction with the primary as the only candidate (``sections``: more config)."""
    extra = {"protocol": protocol} if protocol else {}
    p = provider("primary", primary_port, dialect, **extra)
    return rig.junction([p], [target(p)], **sections)


def trailing_error(text: str) -> str:
    """The type in the Anthropic error event a stream ends with, found even when it was glued
    to a partial event (the bug test_f4_cut_inside_an_event_... shows)."""
    assert text.endswith("\n\n") and "event: error\ndata: " in text, text[-300:]
    data = text.rpartition("event: error\ndata: ")[2]
    return str(json.loads(data)["error"]["type"])


def fault_next_answer(fp: FaultProxy, make: Callable[[int], Fault]) -> None:
    """Apply ``make(bytes already sent down)`` to every live connection and to new ones, so
    the next answer meets the fault whichever connection the pool picks for it."""
    for conn in fp.connections:
        if not conn.closed.is_set():
            conn.fault = make(conn.bytes_down)
    fp.default = make(0)


def serving(fp: FaultProxy, before: dict[int, int]) -> ProxiedConnection:
    """The one connection whose downstream bytes grew since ``before``."""
    grown = [c for c in fp.connections if c.bytes_down > before.get(c.index, 0)]
    assert len(grown) == 1, grown
    return grown[0]


def model_for(dialect: str) -> str:
    return target(provider("x", 1, dialect)).split(",")[1]


# -- F1: connection refused / DNS / TLS failure ---------------------------------------------------


@pytest.mark.parametrize("how", ["closed-port", "reset-at-accept", "dns", "tls"])
def test_f1_unreachable_primary_falls_back_at_once(rig: Rig, how: str) -> None:
    never = rig.mock()  # where the primary points (or is proxied to): must see no request
    fp = rig.proxy(never.port, Fault("refuse")) if how == "reset-at-accept" else None
    port = closed_port() if how == "closed-port" else fp.port if fp is not None else never.port
    primary, backup_mock, ps = primary_and_backup(rig, port)
    if how == "dns":
        primary["base_url"] = "http://no-such-host.invalid:9"
    elif how == "tls":
        primary["base_url"] = f"https://127.0.0.1:{never.port}"  # a plain-HTTP server
    run = rig.junction(ps, [target(p) for p in ps])
    started = time.monotonic()
    r = ask(run)
    assert r.status_code == 200, r.text
    assert r.headers[ROUTE] == target(ps[1])
    assert time.monotonic() - started < 2.0  # no waiting on a dead host
    assert backup_mock.recorder.requests_total == 1
    assert never.recorder.requests_total == 0
    if fp is not None:  # the TCP connect worked, the connection died at once
        assert len(fp.connections) == 1 and fp.server_connections == 0
    else:
        assert run.upstream_stats()["connect_failures_total"] == 1
    rig.assert_settled(run)


@pytest.mark.parametrize("client", ["anthropic", "openai"])
def test_f1_refused_everywhere_is_502_in_the_clients_dialect(rig: Rig, client: str) -> None:
    port = closed_port()
    run = alone(rig, port)
    r = ask(run, client, model=model_for("anthropic"))
    assert r.status_code == 502
    assert error_type(r, client) == ("api_error" if client == "anthropic" else "server_error")
    rig.assert_settled(run)


def test_f1_refused_single_candidate_is_retried_once(rig: Rig) -> None:
    run = alone(rig, closed_port())
    assert ask(run).status_code == 502
    assert run.upstream_stats()["connect_failures_total"] == 2  # the first try and one retry
    rig.assert_settled(run)


def test_f1_refused_error_names_no_internal_host(rig: Rig) -> None:
    port = closed_port()
    run = alone(rig, port)
    r = ask(run)
    assert r.status_code == 502
    assert "127.0.0.1" not in r.text and str(port) not in r.text


# -- F2: connect timeout --------------------------------------------------------------------------


def test_f2_connect_timeout_falls_back(rig: Rig) -> None:
    backlog = FullBacklog()  # SYNs go unanswered: the connect attempt hangs
    try:
        run, backup_mock = with_backup(rig, backlog.port)
        started = time.monotonic()
        r = ask(run)
        took = time.monotonic() - started
        assert r.status_code == 200 and r.headers[ROUTE] == "backup," + model_for("anthropic")
        assert CONNECT_TIMEOUT_S <= took < CONNECT_TIMEOUT_S + 1.0
        assert backup_mock.recorder.requests_total == 1
        assert run.upstream_stats()["connect_failures_total"] == 1
        rig.assert_settled(run)
    finally:
        backlog.close()


def test_f2_connect_timeout_everywhere_is_504(rig: Rig) -> None:
    backlog = FullBacklog()
    try:
        run = alone(rig, backlog.port)
        r = ask(run)
        assert r.status_code == 504
        assert error_type(r, "anthropic") == "timeout_error"
        rig.assert_settled(run)
    finally:
        backlog.close()


# -- F3: slow first byte --------------------------------------------------------------------------


def test_f3_slow_first_byte_is_abandoned_and_falls_back(rig: Rig) -> None:
    slow = rig.mock()
    fp = rig.proxy(slow.port, Fault(latency_down_s=3.0))  # the answer exists, 3 s late
    run, backup_mock = with_backup(rig, fp.port)
    started = time.monotonic()
    r = ask(run)
    took = time.monotonic() - started
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert HEADER_TIMEOUT_S <= took < HEADER_TIMEOUT_S + 1.0
    assert slow.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    # The abandoned exchange's connection was closed by Junction, not left to finish.
    conn = fp.connections[0]
    assert rig.lt.run(conn.wait_closed(1.0)) == "client"
    assert conn.bytes_down == 0
    rig.assert_settled(run)


@pytest.mark.parametrize("client", ["anthropic", "openai"])
def test_f3_no_first_byte_anywhere_is_504(rig: Rig, client: str) -> None:
    silent = rig.mock()
    fp = rig.proxy(silent.port, Fault("blackhole"))  # connects, never answers
    run = alone(rig, fp.port)
    r = ask(run, client, model=model_for("anthropic"))
    assert r.status_code == 504
    assert error_type(r, client) == ("timeout_error" if client == "anthropic" else "server_error")
    for conn in fp.connections:
        assert rig.lt.run(conn.wait_closed(1.0)) == "client"
    rig.assert_settled(run)


# -- F4: reset before the first byte --------------------------------------------------------------


@pytest.mark.parametrize(
    "how", ["mock-reset", "mock-reset-h2c", "proxy-rst-at-first-byte", "proxy-fin-at-first-byte"]
)
def test_f4_reset_before_the_first_byte_falls_back(rig: Rig, how: str) -> None:
    extra: dict[str, Any] = {}
    if how.startswith("mock"):
        failing = rig.mock(fail_rate=1.0, fail_mode="reset")
        port = failing.port
        if how.endswith("h2c"):
            extra["protocol"] = "h2c"  # the mock answers RST_STREAM
    else:
        failing = rig.mock()
        fp = rig.proxy(failing.port, Fault("cut", after_bytes=0, rst=how.startswith("proxy-rst")))
        port = fp.port
    run, backup_mock = with_backup(rig, port, **extra)
    r = ask(run, stream=True)
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert completed(r.text, "anthropic")
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


def test_f4_reset_before_the_first_byte_everywhere_is_502(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="reset")
    run = alone(rig, failing.port)
    r = ask(run, stream=True)
    assert r.status_code == 502 and error_type(r, "anthropic") == "api_error"
    rig.assert_settled(run)


def test_f4_reset_before_the_first_byte_is_retried_once(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="reset")
    run = alone(rig, failing.port)
    assert ask(run, stream=True).status_code == 502
    assert failing.recorder.requests_total == 2
    rig.assert_settled(run)


# -- F4: reset after the first byte (mid-stream) --------------------------------------------------


@pytest.mark.parametrize(
    ("client", "dialect", "protocol"),
    [
        ("anthropic", "anthropic", "http1"),
        ("anthropic", "anthropic", "h2c"),
        ("openai", "openai", "http1"),
        ("anthropic", "openai", "http1"),  # translated
        ("openai", "anthropic", "http1"),  # translated
    ],
)
def test_f4_reset_mid_stream_ends_it_in_band_without_fallback(
    rig: Rig, client: str, dialect: str, protocol: str
) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="reset-mid-stream")
    extra = {"protocol": "h2c"} if protocol == "h2c" else {}
    run, backup_mock = with_backup(rig, failing.port, dialect, **extra)
    r = ask(run, client, stream=True, model=model_for(dialect))
    assert r.status_code == 200
    assert len(sse(r.text)) >= 2  # the stream had begun
    assert in_band_error(r.text, client) == (
        "api_error" if client == "anthropic" else "server_error"
    )
    assert not completed(r.text, client)  # never a fabricated end
    assert failing.recorder.requests_total == 1
    assert backup_mock.recorder.requests_total == 0  # committed: no fallback
    rig.assert_settled(run)


@pytest.mark.parametrize("rst", [True, False], ids=["rst", "fin"])
def test_f4_connection_cut_mid_stream_by_the_network(rig: Rig, rst: bool) -> None:
    upstream = rig.mock()
    fp = rig.proxy(upstream.port)
    run, backup_mock = with_backup(rig, fp.port)
    first = ask(run, stream=True)  # a clean answer measures the size of one
    assert first.status_code == 200 and completed(first.text, "anthropic")
    per_answer = fp.connections[0].bytes_down
    before = {c.index: c.bytes_down for c in fp.connections}
    # Switch the live connections (and new ones): cut the next answer half way.
    fault_next_answer(fp, lambda sent: Fault("cut", after_bytes=sent + per_answer // 2, rst=rst))
    r = ask(run, stream=True)
    conn = serving(fp, before)
    assert r.status_code == 200
    assert trailing_error(r.text) == "api_error"
    assert not completed(r.text, "anthropic")
    assert rig.lt.run(conn.wait_closed(1.0)) == "fault"
    assert upstream.recorder.requests_total == 2 and backup_mock.recorder.requests_total == 0
    rig.assert_settled(run)


def test_f4_cut_inside_an_event_still_gives_the_client_a_whole_error_event(rig: Rig) -> None:
    upstream = rig.mock()
    fp = rig.proxy(upstream.port)
    run = alone(rig, fp.port)
    assert completed(ask(run, stream=True).text, "anthropic")
    per_answer = fp.connections[0].bytes_down
    # Half way plus a few bytes: inside an event (a cut on an event boundary is fine).
    fault_next_answer(fp, lambda sent: Fault("cut", after_bytes=sent + per_answer // 2 + 7))
    r = ask(run, stream=True)
    for _name, data in sse(r.text):
        json.loads(data)  # every event the client parses is whole
    assert in_band_error(r.text, "anthropic") == "api_error"


def test_f4_non_streamed_answer_cut_mid_body_falls_back(rig: Rig) -> None:
    """Passthrough holds a whole answer until its end (to check it is one): a reset half way
    through it has sent the client nothing, so it falls back like a translated answer."""
    failing = rig.mock(fail_rate=1.0, fail_mode="reset-mid-stream")
    run, backup_mock = with_backup(rig, failing.port)
    r = ask(run)
    assert r.status_code == 200 and r.json()["type"] == "message"
    assert r.headers[ROUTE].startswith("backup,")
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


def test_f4_large_non_streamed_answer_cut_mid_body_is_cut_for_the_client(rig: Rig) -> None:
    """Past the checked size a whole answer is relayed as it comes: once bytes went out, the
    client can only see the connection end early (a content-length it never gets)."""
    big = b'{"type":"message","content":"' + b"x" * (5 * 1024 * 1024) + b'"'  # never finished

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        length = (b"content-length", b"%d" % (len(big) + 9))
        await conn.send_head(200, [(b"content-type", b"application/json"), length], chunked=False)
        conn.write(big)
        await conn.drain()
        conn.abort()

    server = rig.h1(responder)
    run, backup_mock = with_backup(rig, server.port)
    with pytest.raises(httpx.RemoteProtocolError):
        ask(run)
    assert backup_mock.recorder.requests_total == 0
    rig.assert_settled(run)


def test_f4_translated_non_streamed_answer_cut_mid_body_falls_back(rig: Rig) -> None:
    """A translated whole answer is gathered before anything goes out: nothing is committed,
    so a reset half way through it still falls back."""
    failing = rig.mock(fail_rate=1.0, fail_mode="reset-mid-stream")
    run, backup_mock = with_backup(rig, failing.port, "openai")
    r = ask(run, model=model_for("openai"))
    assert r.status_code == 200 and r.json()["type"] == "message"
    assert r.headers[ROUTE].startswith("backup,")
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


# -- F5: stall mid-stream -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "dialect", "protocol"),
    [
        ("anthropic", "anthropic", "http1"),
        ("anthropic", "anthropic", "h2c"),
        ("anthropic", "openai", "http1"),  # translated
        ("openai", "anthropic", "http1"),  # translated
    ],
)
def test_f5_stall_mid_stream_ends_in_band_after_the_idle_timeout(
    rig: Rig, client: str, dialect: str, protocol: str
) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="stall-mid-stream")
    extra = {"protocol": "h2c"} if protocol == "h2c" else {}
    run, backup_mock = with_backup(rig, failing.port, dialect, **extra)
    started = time.monotonic()
    r = ask(run, client, stream=True, model=model_for(dialect))
    took = time.monotonic() - started
    assert r.status_code == 200
    assert in_band_error(r.text, client) == (
        "timeout_error" if client == "anthropic" else "server_error"
    )
    assert not completed(r.text, client)
    assert IDLE_TIMEOUT_S <= took < IDLE_TIMEOUT_S + 1.0
    assert backup_mock.recorder.requests_total == 0
    rig.assert_settled(run)
    if protocol == "http1":
        # The connection held mid-body cannot be reused: it is closed, not pooled. (The mock
        # itself keeps its half-closed end until it stops, as HTTP/1.1 servers may.)
        assert run.upstream_stats()["connections_open"] == 0


def test_f5_stall_after_the_head_before_any_body_falls_back(rig: Rig) -> None:
    """Headers came, then nothing: the held head never reached the client, so the idle
    timeout still leaves room to fall back."""
    server = rig.h1(sse_answer([], end=False))
    run, backup_mock = with_backup(rig, server.port)
    r = ask(run, stream=True)
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert completed(r.text, "anthropic")
    assert len(server.requests) == 1 and backup_mock.recorder.requests_total == 1
    wait_until(lambda: server.open_connections == 0, 1.0, "stalled connection closed")
    rig.assert_settled(run)


def test_f5_stall_through_the_network_discards_the_pooled_connection(rig: Rig) -> None:
    upstream = rig.mock()
    fp = rig.proxy(upstream.port)
    run = alone(rig, fp.port)
    assert completed(ask(run, stream=True).text, "anthropic")
    per_answer = fp.connections[0].bytes_down
    before = {c.index: c.bytes_down for c in fp.connections}
    fault_next_answer(fp, lambda sent: Fault("stall", after_bytes=sent + per_answer // 2))
    r = ask(run, stream=True)
    assert trailing_error(r.text) == "timeout_error"
    conn = serving(fp, before)
    assert rig.lt.run(conn.wait_closed(1.0)) == "client"
    fp.default = Fault()
    opened = len(fp.connections)
    r = ask(run, stream=True)  # another connection serves the next request
    assert completed(r.text, "anthropic")
    assert conn.bytes_down == before.get(conn.index, 0) + per_answer // 2  # not reused
    assert len(fp.connections) in (opened, opened + 1)
    rig.assert_settled(run)


# -- F6: 429 and the providers' reset headers -----------------------------------------------------


def _http_date(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def _rfc3339(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


# (provider dialect, header, value): every hint says "30 s", beyond the retry cap (2 s here):
# nothing waits for it, so the client gets the 429 and decides itself.
RESET_HEADERS: dict[str, tuple[str, str, Callable[[], str]]] = {
    "retry-after-seconds": ("anthropic", "retry-after", lambda: "30"),
    "retry-after-http-date": ("anthropic", "retry-after", lambda: _http_date(30)),
    "retry-after-ms": ("anthropic", "retry-after-ms", lambda: "30000"),
    "anthropic-ratelimit-reset": (
        "anthropic",
        "anthropic-ratelimit-requests-reset",
        lambda: _rfc3339(30),
    ),
    "x-ratelimit-reset": ("openai", "x-ratelimit-reset-requests", lambda: "30s"),
    "openai-retry-after": ("openai", "retry-after", lambda: "30"),
}


def rate_limited(dialect: str, header: str, value: str) -> Any:
    if dialect == "anthropic":
        doc: dict[str, Any] = {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "slow down"},
        }
    else:
        doc = {
            "error": {
                "message": "slow down",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.send_response(
            429,
            [(b"content-type", b"application/json"), (header.encode(), value.encode())],
            json.dumps(doc).encode(),
        )

    return responder


@pytest.mark.parametrize("client", ["anthropic", "openai"])
@pytest.mark.parametrize("case", list(RESET_HEADERS))
def test_f6_429_reaches_the_client_with_the_providers_reset_header(
    rig: Rig, case: str, client: str
) -> None:
    dialect, header, value = RESET_HEADERS[case]
    sent = value()
    server = rig.h1(rate_limited(dialect, header, sent))
    run = alone(rig, server.port, dialect)
    r = ask(run, client, model=model_for(dialect))
    assert r.status_code == 429
    if client == "anthropic":
        assert error_type(r, client) == "rate_limit_error"
    else:  # OpenAI's own 429 says type "requests"; the code is what clients read
        error_type(r, client)
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    # Passed through as the provider wrote it (translated routes too). Junction does not turn
    # another dialect's hint into retry-after: an Anthropic client behind an OpenAI provider
    # sees x-ratelimit-reset-* and must know it.
    assert r.headers[header] == sent
    assert len(server.requests) == 1  # a 30 s wait is over the cap: no retry
    rig.assert_settled(run)


def test_f6_429_falls_back_to_the_next_candidate(rig: Rig) -> None:
    server = rig.h1(rate_limited("anthropic", "retry-after", "30"))
    run, backup_mock = with_backup(rig, server.port)
    r = ask(run, stream=True)
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert r.headers[ROUTE].startswith("backup,")
    assert len(server.requests) == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


def test_f6_429_with_a_short_reset_is_retried_after_it(rig: Rig) -> None:
    limited = rate_limited("anthropic", "retry-after-ms", "300")

    async def once_then_ok(request: ReceivedRequest, conn: ServerConnection) -> None:
        if conn.requests_handled == 0 and conn.index == 0:
            await limited(request, conn)
            return
        # Then a real answer.
        await conn.send_response(
            200,
            [(b"content-type", b"application/json")],
            json.dumps(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [{"type": "text", "text": "ok"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                }
            ).encode(),
        )

    server = rig.h1(once_then_ok)
    run = alone(rig, server.port)
    started = time.monotonic()
    r = ask(run)
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "ok"
    assert time.monotonic() - started >= 0.3  # the provider's hint was honoured
    assert len(server.requests) == 2
    rig.assert_settled(run)


def test_f6_429s_never_open_the_breaker_or_eject(rig: Rig) -> None:
    server = rig.h1(rate_limited("anthropic", "retry-after", "30"))
    run = alone(
        rig,
        server.port,
        resilience={
            "breaker": {"consecutive_failures": 2},
            "outlier": {"consecutive_5xx": 2, "consecutive_local_failures": 2},
        },
    )
    for _ in range(4):
        assert ask(run).status_code == 429  # never the 503 of an open breaker or an ejection
    rig.assert_settled(run)


def test_f6_429_cools_the_candidate_down_until_its_reset(rig: Rig) -> None:
    server = rig.h1(rate_limited("anthropic", "retry-after", "30"))
    run, _ = with_backup(rig, server.port)
    for _ in range(2):
        assert ask(run).headers[ROUTE].startswith("backup,")
    assert len(server.requests) == 1  # the second request went straight to the backup


# -- F7/F8: 529, 503 and the other 5xx ------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_f7_f8_server_errors_fall_back(rig: Rig, status: int) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode=f"status:{status}", retry_after_s=0)
    run, backup_mock = with_backup(rig, failing.port)
    r = ask(run, stream=True)
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


@pytest.mark.parametrize(
    ("status", "client", "seen", "kind"),
    [
        (529, "anthropic", 529, "overloaded_error"),
        (529, "openai", 503, "server_error"),
        (503, "openai", 503, "server_error"),
        (500, "anthropic", 500, "api_error"),
        (502, "openai", 502, "server_error"),
        (504, "anthropic", 504, "timeout_error"),
    ],
)
def test_f7_f8_server_error_everywhere_reaches_the_client(
    rig: Rig, status: int, client: str, seen: int, kind: str
) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode=f"status:{status}", retry_after_s=0)
    run = alone(rig, failing.port)
    r = ask(run, client, model=model_for("anthropic"))
    assert r.status_code == seen
    assert error_type(r, client) == kind
    if status in (503, 529):
        assert r.headers["retry-after"] == "0"  # the provider's, passed on
    rig.assert_settled(run)


@pytest.mark.parametrize("status", [500, 529])
def test_f7_f8_server_error_single_candidate_is_retried_once(rig: Rig, status: int) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode=f"status:{status}", retry_after_s=0)
    run = alone(rig, failing.port)
    assert ask(run).status_code == status
    assert failing.recorder.requests_total == 2  # at most 1-2 retries: Claude Code retries too
    rig.assert_settled(run)


@pytest.mark.parametrize(
    ("client", "dialect"),
    [
        ("anthropic", "anthropic"),
        ("openai", "openai"),
        ("anthropic", "openai"),  # translated
        ("openai", "anthropic"),  # translated
    ],
)
def test_f7_overload_inside_a_200_stream_before_any_content_falls_back(
    rig: Rig, client: str, dialect: str
) -> None:
    """The mock starts the stream (message_start / the role chunk), then gives up in band
    before any content: nothing the client could use was sent, so it counts as a 529."""
    failing = rig.mock(fail_rate=1.0, fail_mode="overloaded-in-stream")
    run, backup_mock = with_backup(rig, failing.port, dialect)
    r = ask(run, client, stream=True, model=model_for(dialect))
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert completed(r.text, client)
    assert len([e for e in sse(r.text) if e[0] == "message_start"]) <= 1  # one stream, whole
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


def _overload_event(dialect: str) -> bytes:
    if dialect == "anthropic":
        return anthropic_event(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
        )
    error = {"message": "busy", "type": "server_error", "param": None, "code": "overloaded"}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_f7_overload_as_the_first_event_falls_back(rig: Rig, dialect: str) -> None:
    server = rig.h1(sse_answer([_overload_event(dialect)]))
    run, backup_mock = with_backup(rig, server.port, dialect)
    r = ask(run, stream=True, model=model_for(dialect))
    assert r.status_code == 200 and completed(r.text, "anthropic")
    assert len(server.requests) == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


@pytest.mark.parametrize(
    ("client", "dialect"),
    [("anthropic", "anthropic"), ("anthropic", "openai"), ("openai", "anthropic")],
)
def test_f7_overload_after_content_ends_the_stream_in_band(
    rig: Rig, client: str, dialect: str
) -> None:
    """Content reached the client: the overload can only end its stream, in its dialect."""
    if dialect == "anthropic":
        chunks = [anthropic_start(), *_anthropic_rest("partial")[:2], _overload_event(dialect)]
    else:
        chunks = [*openai_stream("partial")[:2], _overload_event(dialect)]
    server = rig.h1(sse_answer(chunks))
    run, backup_mock = with_backup(rig, server.port, dialect)
    r = ask(run, client, stream=True, model=model_for(dialect))
    assert r.status_code == 200 and "partial" in r.text
    kind = in_band_error(r.text, client)
    assert kind == ("overloaded_error" if client == "anthropic" else "server_error")
    assert not completed(r.text, client)
    assert len(server.requests) == 1 and backup_mock.recorder.requests_total == 0
    rig.assert_settled(run)


# -- F9: other 4xx --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"), [(400, "invalid_request_error"), (404, "not_found_error")]
)
def test_f9_client_errors_pass_through_without_fallback_or_retry(
    rig: Rig, status: int, kind: str
) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode=f"status:{status}")
    run, backup_mock = with_backup(rig, failing.port)
    r = ask(run)
    assert r.status_code == status and error_type(r, "anthropic") == kind
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 0
    rig.assert_settled(run)


@pytest.mark.parametrize("status", [401, 403])
def test_f9_provider_auth_failure_is_not_blamed_on_the_client(rig: Rig, status: int) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode=f"status:{status}")
    run = alone(rig, failing.port)
    r = ask(run)
    assert r.status_code in (500, 502)


# -- F10: malformed JSON --------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["anthropic", "openai"])
def test_f10_malformed_json_on_a_translated_route_is_502(rig: Rig, client: str) -> None:
    dialect = "openai" if client == "anthropic" else "anthropic"
    failing = rig.mock(fail_rate=1.0, fail_mode="bad-json")
    run = alone(rig, failing.port, dialect)
    r = ask(run, client, model=model_for(dialect))
    assert r.status_code == 502
    assert error_type(r, client) == ("api_error" if client == "anthropic" else "server_error")
    assert failing.recorder.requests_total == 1  # a broken answer is not retried
    rig.assert_settled(run)


def test_f10_malformed_json_on_passthrough_is_502(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="bad-json")
    run = alone(rig, failing.port)
    assert ask(run).status_code == 502


def test_f10_malformed_json_counts_against_the_breaker(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="bad-json")
    run = alone(rig, failing.port, "openai", resilience={"breaker": {"consecutive_failures": 2}})
    for _ in range(2):
        assert ask(run, model=model_for("openai")).status_code == 502
    r = ask(run, model=model_for("openai"))
    assert r.status_code == 503  # the breaker opened: the provider is not tried
    assert failing.recorder.requests_total == 2


# -- F11: malformed SSE ---------------------------------------------------------------------------


def test_f11_non_json_data_mid_stream_on_a_translated_route_ends_in_band(rig: Rig) -> None:
    first, second = openai_stream("hello")[:2]
    server = rig.h1(sse_answer([first, second, b"data: {this is not json\n\n"], end=False))
    run, backup_mock = with_backup(rig, server.port, "openai")
    r = ask(run, stream=True, model=model_for("openai"))
    assert r.status_code == 200
    events = sse(r.text)
    assert events[0][0] == "message_start"
    assert in_band_error(r.text, "anthropic") == "api_error"
    assert not completed(r.text, "anthropic")
    assert backup_mock.recorder.requests_total == 0
    wait_until(lambda: server.open_connections == 0, 1.0, "upstream connection closed")
    rig.assert_settled(run)


def test_f11_non_json_first_event_on_a_translated_route_fails_at_once(rig: Rig) -> None:
    server = rig.h1(sse_answer([b"data: <html>oops</html>\n\n"], end=False))
    run = alone(rig, server.port, "openai")
    started = time.monotonic()
    r = ask(run, stream=True, model=model_for("openai"))
    assert time.monotonic() - started < IDLE_TIMEOUT_S  # no waiting on a broken stream
    if r.status_code == 200:  # the stream's only event is the error
        assert [name for name, _ in sse(r.text)] == ["error"]
        assert in_band_error(r.text, "anthropic") == "api_error"
    else:
        assert r.status_code == 502 and error_type(r, "anthropic") == "api_error"
    wait_until(lambda: server.open_connections == 0, 1.0, "upstream connection closed")
    rig.assert_settled(run)


def test_f11_stream_ending_without_its_finish_is_an_error_not_a_stop(rig: Rig) -> None:
    server = rig.h1(sse_answer(openai_stream("hello")[:2]))  # no finish_reason, no [DONE]
    run = alone(rig, server.port, "openai")
    r = ask(run, stream=True, model=model_for("openai"))
    assert r.status_code == 200
    assert in_band_error(r.text, "anthropic") == "api_error"
    assert not completed(r.text, "anthropic")
    rig.assert_settled(run)


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_f11_every_sse_line_ending_is_read(rig: Rig, eol: bytes) -> None:
    chunks = [c.replace(b"\n", eol) for c in openai_stream("line endings")]
    server = rig.h1(sse_answer(chunks))
    run = alone(rig, server.port, "openai")
    r = ask(run, stream=True, model=model_for("openai"))
    assert completed(r.text, "anthropic")
    assert "line endings" in r.text
    rig.assert_settled(run)


def test_f11_utf8_split_across_reads_is_kept_whole(rig: Rig) -> None:
    whole = b"".join(openai_stream("caf\u00e9 \u2713"))
    cut = whole.index("\u2713".encode()) + 1  # inside the three bytes of the check mark
    server = rig.h1(sse_answer([whole[:cut], whole[cut:]], gap_s=0.05))
    run = alone(rig, server.port, "openai")
    r = ask(run, stream=True, model=model_for("openai"))
    assert completed(r.text, "anthropic")
    assert "caf\u00e9 \u2713" in r.text
    rig.assert_settled(run)


def test_f11_unknown_event_types_are_skipped(rig: Rig) -> None:
    mystery = anthropic_event("mystery", {"type": "mystery", "x": 1})
    server = rig.h1(sse_answer([anthropic_start(), mystery, *_anthropic_rest("fine")]))
    run = alone(rig, server.port)
    r = ask(run, "openai", stream=True, model=model_for("anthropic"))  # translated
    assert r.status_code == 200 and completed(r.text, "openai")
    assert "fine" in r.text and "mystery" not in r.text
    rig.assert_settled(run)


def test_f11_an_event_over_the_size_cap_ends_the_stream(rig: Rig) -> None:
    first = openai_stream("x")[0]
    huge = b"data: " + b"a" * (5 * 1024 * 1024)  # no end of line: over the 4 MiB event cap
    server = rig.h1(sse_answer([first, huge], end=False))
    run = alone(rig, server.port, "openai")
    r = ask(run, stream=True, model=model_for("openai"))
    if r.status_code == 200:
        assert in_band_error(r.text, "anthropic") == "api_error"
    else:
        assert r.status_code == 502 and error_type(r, "anthropic") == "api_error"
    assert len(r.content) < 64 * 1024  # the oversized event never reached the client
    wait_until(lambda: server.open_connections == 0, 1.0, "upstream connection closed")
    rig.assert_settled(run)


def test_f11_non_json_data_on_passthrough_ends_in_band(rig: Rig) -> None:
    broken = b"event: content_block_delta\ndata: {this is not json\n\n"
    server = rig.h1(sse_answer([anthropic_start(), broken, *_anthropic_rest("more")]))
    run = alone(rig, server.port)
    r = ask(run, stream=True)
    assert "this is not json" not in r.text
    assert in_band_error(r.text, "anthropic") == "api_error"


def test_f11_non_json_first_event_on_passthrough_falls_back(rig: Rig) -> None:
    """Nothing reached the client yet: another candidate serves the request."""
    broken = b"event: message_start\ndata: {this is not json\n\n"
    server = rig.h1(sse_answer([broken, *_anthropic_rest("more")]))
    run, backup_mock = with_backup(rig, server.port)
    r = ask(run, stream=True)
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert "this is not json" not in r.text and "message_stop" in r.text
    assert backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)


def test_f11_passthrough_stream_ending_without_its_stop_gets_an_error(rig: Rig) -> None:
    server = rig.h1(sse_answer([anthropic_start()]))  # then a clean end of the body
    run = alone(rig, server.port)
    r = ask(run, stream=True)
    assert in_band_error(r.text, "anthropic") == "api_error"


def _anthropic_rest(text: str) -> list[bytes]:
    return [
        anthropic_event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        anthropic_event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        anthropic_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 2},
            },
        ),
        anthropic_event("message_stop", {"type": "message_stop"}),
    ]


# -- F12: 200 with an error body, or an empty body ------------------------------------------------


def _whole(status: int, body: bytes, content_type: bytes = b"application/json") -> Any:
    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.send_response(status, [(b"content-type", content_type)], body)

    return responder


def test_f12_empty_200_on_a_translated_route_is_502(rig: Rig) -> None:
    server = rig.h1(_whole(200, b""))
    run = alone(rig, server.port, "openai")
    r = ask(run, model=model_for("openai"))
    assert r.status_code == 502 and error_type(r, "anthropic") == "api_error"
    rig.assert_settled(run)


def test_f12_empty_200_on_passthrough_is_502(rig: Rig) -> None:
    server = rig.h1(_whole(200, b""))
    run = alone(rig, server.port)
    assert ask(run).status_code == 502


def test_f12_200_with_an_error_body_falls_back(rig: Rig) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    server = rig.h1(_whole(200, json.dumps(error).encode()))
    run, backup_mock = with_backup(rig, server.port)
    r = ask(run)
    assert r.status_code == 200 and r.json()["type"] == "message"
    assert backup_mock.recorder.requests_total == 1


# -- garbage instead of HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http1", "h2c"])
def test_garbage_instead_of_http_falls_back(rig: Rig, protocol: str) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="garbage")
    extra = {"protocol": "h2c"} if protocol == "h2c" else {}
    run, backup_mock = with_backup(rig, failing.port, **extra)
    r = ask(run, stream=True)
    assert r.status_code == 200 and r.headers[ROUTE].startswith("backup,")
    assert failing.recorder.requests_total == 1 and backup_mock.recorder.requests_total == 1
    rig.assert_settled(run)
    assert run.upstream_stats()["connections_open"] <= 1  # the garbled connection is gone


def test_garbage_instead_of_http_everywhere_is_502(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="garbage")
    run = alone(rig, failing.port)
    r = ask(run)
    assert r.status_code == 502 and error_type(r, "anthropic") == "api_error"
    rig.assert_settled(run)


# -- F16/F17/F18: the client goes away ------------------------------------------------------------

# Long enough that only the client's leaving can end the exchange within the test.
PATIENT = {"response_header_timeout_s": 10.0, "stream_idle_timeout_s": 10.0}

# HTTP/1.1 read EOF as a half-close: Junction keeps the stream until it writes the answer (the
# write then meets the client's reset), proxy/protocol/connection.py eof_received. While nothing
# is written — before the first byte, or while a translated whole answer is gathered — a client
# that closed with a FIN is not noticed and the upstream keeps generating.

WHEN = ["before-first-byte", "mid-stream", "non-streaming", "translated-mid-body"]
HOW = ["h1-rst", "h1-fin", "h2-rst-stream", "h2-close"]


def _hang_up_cases() -> list[Any]:
    cases = []
    for when in WHEN:
        for how in HOW:
            cases.append(pytest.param(when, how, id=f"{when}-{how}"))
    return cases


@pytest.mark.parametrize(("when", "how"), _hang_up_cases())
def test_f16_f17_f18_client_leaving_cancels_the_upstream_within_a_second(
    rig: Rig, when: str, how: str
) -> None:
    upstream = rig.mock()
    dialect = "openai" if when == "translated-mid-body" else "anthropic"
    # Translated whole answers trickle in, so Junction is reading the body when the client goes.
    fault = Fault(down_bytes_per_s=400) if when == "translated-mid-body" else Fault()
    fp = rig.proxy(upstream.port, fault)
    _, backup_mock, ps = primary_and_backup(rig, fp.port, dialect)
    run = rig.junction(ps, [target(p) for p in ps], upstream=PATIENT)
    headers = {"x-mock-output-tokens": "300"}
    if when in ("before-first-byte", "non-streaming"):
        headers["x-mock-latency-ms"] = "5000"
    elif when == "mid-stream":
        headers["x-mock-tokens-per-s"] = "40"
    client = H1Client(run.port) if how.startswith("h1") else H2Client(run.port)
    stream = when in ("before-first-byte", "mid-stream")
    try:
        client.send("anthropic", stream=stream, headers=headers, model=model_for(dialect))
        if when == "mid-stream":
            client.read_until(b"content_block_delta")  # content reached the client
        elif when == "translated-mid-body":
            wait_until(lambda: len(fp.connections) > 0 and fp.connections[0].bytes_down > 0, 3.0)
        else:
            wait_until(lambda: upstream.recorder.requests_total == 1, 3.0, "request upstream")
        assert rig.leftovers(run)["exchanges_active"] == 1
        left_at = time.monotonic()
        if how == "h2-rst-stream":
            assert isinstance(client, H2Client)
            client.cancel()
        else:
            client.hang_up(rst=how.endswith("rst"))
        conn = fp.connections[0]
        assert rig.lt.run(conn.wait_closed(1.0)) == "client"  # Junction closed it
        rig.assert_settled(run, within=1.0 - (time.monotonic() - left_at))
        assert upstream.recorder.requests_total == 1
        assert backup_mock.recorder.requests_total == 0  # a client leaving is no failure
    finally:
        client.hang_up(rst=True)


# -- F21: a stale keep-alive connection -----------------------------------------------------------


@pytest.mark.parametrize(
    "retries",
    [
        pytest.param(None, id="default-retries"),
        pytest.param(
            0,
            id="no-retries",
            marks=pytest.mark.xfail(
                strict=True,
                reason="by design, for now: a request reset unanswered on a reused pooled "
                "connection is not sent again by the pool itself, because an LLM request is a "
                "non-idempotent POST and the pool cannot tell a server that closed an idle "
                "connection (never read it) from one that read it and died; the router's retry "
                "policy covers it (the default max_retries 1), so only with retries off (or the "
                "retry budget spent) does a stale keep-alive become a 502 (hardening.md F21)",
            ),
        ),
    ],
)
def test_f21_request_lost_on_a_stale_pooled_connection_is_sent_again(
    rig: Rig, retries: int | None
) -> None:
    upstream = rig.mock()
    fp = rig.proxy(upstream.port)
    sections: dict[str, Any] = {}
    if retries is not None:
        sections["resilience"] = {"retry": {"max_retries": retries}}
    run = alone(rig, fp.port, **sections)
    assert ask(run).status_code == 200
    # The server dropped every idle connection just as the next request crossed its FIN: the
    # request is reset unread (the proxy forwards none of it).
    for conn in fp.connections:
        conn.fault = Fault(cut_up_after_bytes=conn.bytes_up)
    r = ask(run)
    assert r.status_code == 200
    assert upstream.recorder.requests_total == 2  # the lost request reached it exactly once
    assert fp.connections[0].closed_by == "fault"
    rig.assert_settled(run)


# -- F22: GOAWAY from an HTTP/2 upstream ----------------------------------------------------------


def _message(text: str) -> bytes:
    return json.dumps(
        {
            "id": "msg_h2",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    ).encode()


def test_f22_goaway_lets_earlier_streams_finish_and_sends_later_ones_again(rig: Rig) -> None:
    """Two requests share one HTTP/2 connection. The server sends GOAWAY(last_stream_id = the
    first stream), answers that one, and never processes the second: Junction must send the
    second again on a new connection, at once (the server did not process it)."""
    both_in = asyncio.Event()
    first_sid: list[int] = []

    async def responder(stream: H2ServerStream) -> None:
        if stream.request.connection_index > 0:
            await stream.respond(200, [(b"content-type", b"application/json")], _message("new"))
            return
        if not first_sid:
            first_sid.append(stream.stream_id)
            await both_in.wait()
            server.goaway(first_sid[0])
            await stream.respond(200, [(b"content-type", b"application/json")], _message("old"))
            return
        both_in.set()
        await stream.reset_received.wait()  # beyond last_stream_id: never answered

    server = rig.h2(responder)
    run = alone(rig, server.port, protocol="h2c", upstream={"response_header_timeout_s": 5.0})

    async def two() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        run.url + "/v1/messages",
                        json=body_of("anthropic"),
                        headers=ANTHROPIC_HEADERS,
                    )
                    for _ in range(2)
                )
            )

    started = time.monotonic()
    answers = asyncio.run(two())
    assert time.monotonic() - started < 2.0  # not after a timeout
    assert sorted(r.json()["content"][0]["text"] for r in answers) == ["new", "old"]
    assert server.connections_accepted == 2
    assert len(server.requests) == 3  # the refused stream was sent again, once
    rig.assert_settled(run)


# -- F23: every candidate's breaker open ----------------------------------------------------------


def test_f23_all_breakers_open_fails_fast_without_an_upstream_attempt(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="status:500")
    run = alone(
        rig,
        failing.port,
        resilience={"breaker": {"consecutive_failures": 2}, "outlier": {"enabled": False}},
    )
    for _ in range(4):  # until the breaker opens (retries count as failures too)
        before = failing.recorder.requests_total
        r = ask(run)
        if r.status_code == 503:
            break
        assert r.status_code == 500
    assert r.status_code == 503 and error_type(r, "anthropic") == "overloaded_error"
    assert failing.recorder.requests_total == before  # no attempt at all
    rig.assert_settled(run)


def test_f23_all_breakers_open_says_when_to_come_back(rig: Rig) -> None:
    failing = rig.mock(fail_rate=1.0, fail_mode="status:500")
    run = alone(
        rig,
        failing.port,
        resilience={"breaker": {"consecutive_failures": 2}, "outlier": {"enabled": False}},
    )
    for _ in range(4):
        r = ask(run)
        if r.status_code == 503:
            break
    assert r.status_code == 503
    assert 0 < int(r.headers["retry-after"]) <= 5  # breaker.open_s
