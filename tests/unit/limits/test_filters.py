"""The auth and limit filters' pure parts, and the limit filter on a real ActiveStream:
constant-time key lookup, allow-lists, the expected target, an asynchronous limiter backend
and the usage correction at the end of a stream."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config.auth import AuthConfig
from proxy.filters import auth as auth_module
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.filters.auth import AuthPolicy, allow_rule, presented_keys
from proxy.filters.body import JsonBodyFilter
from proxy.filters.limit import LimitFilter, expected_target, subagent_model
from proxy.headers import Headers
from proxy.http.info import StreamInfo
from proxy.http.stream import ActiveStream, RequestInfo
from proxy.limits.api import (
    Admission,
    AdmitResult,
    LimitSettings,
    LimitSpec,
    Pricing,
)
from proxy.limits.local import LocalLimiter
from proxy.routing.runtime import RuntimeConfig
from tests.unit.config.helpers import load_text

KEYS = [f"jx-key-{i:02d}-0123456789abcdef" for i in range(5)]


def policy(**extra: Any) -> AuthPolicy:
    return AuthPolicy.from_config(
        AuthConfig.model_validate(
            {"keys": [{"name": f"k{i}", "key": key} for i, key in enumerate(KEYS)], **extra}
        )
    )


def test_identify_compares_every_digest_whichever_key_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", counting)
    p = policy()
    for i, key in enumerate(KEYS):
        calls.clear()
        found = p.identify(key.encode())
        assert found is not None and found.name == f"k{i}"
        # No early exit, and only fixed-length digests are compared (never the raw keys).
        assert calls == [(32, 32)] * len(KEYS)
    calls.clear()
    assert p.identify(KEYS[0][:-1].encode()) is None
    assert p.identify(b"") is None
    assert len(calls) == 2 * len(KEYS)


def test_presented_keys_reads_x_api_key_and_bearer_only() -> None:
    headers: Headers = [
        (b"x-api-key", b" abc "),
        (b"authorization", b"BeArEr  tok"),
        (b"authorization", b"Basic dXNlcjpwYXNz"),
        (b"x-api-key", b""),
    ]
    assert presented_keys(headers) == [b"abc", b"tok"]
    assert presented_keys([(b"authorization", b"Bearer ")]) == []


def test_allow_rules_match_names_as_written_or_as_served() -> None:
    key = replace(
        policy().key("k0"),  # type: ignore[type-var]
        allowed=(allow_rule("claude-sonnet-4-5"), allow_rule("mock,*"), allow_rule("gpt-*-mini")),
    )
    assert key.allows("claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5"))
    assert key.allows("sonnet", ("anthropic", "claude-sonnet-4-5"))  # an alias to it
    assert key.allows("anything", ("mock", "whatever"))
    assert key.allows("gpt-4.1-mini", None)
    assert not key.allows("claude-opus-4-8", ("anthropic", "claude-opus-4-8"))
    assert not key.allows("gpt-4.1", ("openai", "gpt-4.1"))
    assert not key.allows("mock,x", None)  # names a provider that does not exist
    assert replace(key, allowed=()).allows("x", None)  # no list: everything


ROUTED = """\
providers:
  - name: anthropic
    dialect: anthropic
    base_url: https://api.anthropic.com
    api_key: ${ANTHROPIC_API_KEY}
    models: [claude-sonnet-4-5, claude-haiku-4-5]
  - name: openai
    dialect: openai
    base_url: https://api.openai.com
    api_key: sk-openai-0123456789
    models: [gpt-4.1]
router:
  default: [anthropic,claude-sonnet-4-5, openai,gpt-4.1]
  aliases: {fast: "openai,gpt-4.1"}
"""


@pytest.fixture
def runtime(tmp_path: Path) -> RuntimeConfig:
    return RuntimeConfig.from_config(load_text(tmp_path, ROUTED))


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("openai,gpt-5", ("openai", "gpt-5")),
        ("OpenAI , gpt-5", ("openai", "gpt-5")),
        ("fast", ("openai", "gpt-4.1")),
        ("gpt-4.1", ("anthropic", "claude-sonnet-4-5")),  # the default route names it
        ("claude-haiku-4-5", ("anthropic", "claude-haiku-4-5")),
        ("unknown-model", ("anthropic", "claude-sonnet-4-5")),
        ("", ("anthropic", "claude-sonnet-4-5")),
        ("nowhere,x", None),
    ],
)
def test_expected_target(
    runtime: RuntimeConfig, requested: str, expected: tuple[str, str] | None
) -> None:
    target = expected_target(runtime, requested)
    got = (target.provider.name, target.model) if target is not None else None
    assert got == expected


def test_subagent_model_is_read_without_changing_the_body() -> None:
    tag = "<CCR-SUBAGENT-MODEL> openai,gpt-4.1 </CCR-SUBAGENT-MODEL>"
    body: dict[str, Any] = {"system": [{"type": "text", "text": "x"}, {"text": f"a {tag} b"}]}
    before = orjson.dumps(body)
    assert subagent_model(body) == "openai,gpt-4.1"
    assert orjson.dumps(body) == before
    assert subagent_model({"system": tag}) == "openai,gpt-4.1"
    assert subagent_model({"system": "<CCR-SUBAGENT-MODEL>open"}) is None
    assert subagent_model({}) is None


# -- the limit filter on a real stream ---------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.body = b""
        self.done = 0

    def write_headers(self, stream_id: int, status: int, headers: Headers, end: bool) -> None:
        self.status, self.headers = status, list(headers)

    def write_data(self, stream_id: int, data: bytes, end: bool) -> bool:
        self.body += data
        return True

    def stream_writable(self, stream_id: int) -> bool:
        return True

    def abort_stream(self, stream_id: int) -> None:
        pass

    def acknowledge(self, stream_id: int, nbytes: int) -> None:
        pass

    def on_stream_done(self, stream: ActiveStream) -> None:
        self.done += 1


class Answer:
    """Terminal filter: answers 200 with the body it got; reports usage when told."""

    def __init__(self, usage: tuple[int, int] | None = None) -> None:
        self.usage = usage
        self.got = b""

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        self.got += data
        if end_stream:
            if self.usage is not None:
                self.cb.info.input_tokens, self.cb.info.output_tokens = self.usage
            self.cb.send_response(200, [], b"ok")
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        pass


class DeferredLimiter:
    """A backend that answers on the next loop turn, as a networked one would."""

    def __init__(self, local: LocalLimiter) -> None:
        self.local = local

    def configure(self, settings: LimitSettings, pricing: Pricing) -> None:
        self.local.configure(settings, pricing)

    @property
    def active(self) -> bool:
        return self.local.active

    def counts_tokens(self, key: str | None, model: str, provider: str) -> bool:
        return self.local.counts_tokens(key, model, provider)

    def admit(
        self, key: str | None, model: str, provider: str, est_tokens: int, now: float
    ) -> Awaitable[AdmitResult]:
        async def later() -> AdmitResult:
            await asyncio.sleep(0)
            return self.local.admit(key, model, provider, est_tokens, now)

        return later()

    def release(self, admission: Admission) -> None:
        self.local.release(admission)

    def record_usage(
        self, admission: Admission, input_tokens: int, output_tokens: int, now: float
    ) -> None:
        self.local.record_usage(admission, input_tokens, output_tokens, now)


BODY = orjson.dumps({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []})


def run_stream(runtime: RuntimeConfig, answer: Answer, key: str = "") -> tuple[ActiveStream, Sink]:
    sink = Sink()
    info = StreamInfo(0.0, "HTTP/1.1")
    info.api_key_name = key
    req = RequestInfo(b"POST", b"/v1/messages", "/v1/messages", b"h", [], Dialect.ANTHROPIC)
    filters = [JsonBodyFilter(), LimitFilter(runtime, wall=lambda: 1000.0), answer]
    stream = ActiveStream(sink, 1, req, info, filters, [])  # type: ignore[arg-type]
    stream.on_request_headers(False)
    stream.on_request_data(BODY, True)
    return stream, sink


def test_an_asynchronous_backend_holds_the_body_then_admits_or_refuses(
    runtime: RuntimeConfig,
) -> None:
    local = LocalLimiter(LimitSettings(models={"claude-sonnet-4-5": LimitSpec(concurrent=1)}))
    deferred = replace(runtime, limiter=DeferredLimiter(local))

    async def main() -> None:
        first = Answer()
        stream, sink = run_stream(deferred, first)
        assert first.got == b"" and sink.status == 0  # waiting for the answer
        await asyncio.sleep(0.01)
        assert first.got == BODY and sink.status == 200 and stream.destroyed
        assert local.in_use("model:claude-sonnet-4-5") == 0  # released at the end

        # A stream that ends while the answer is on its way leaves no slot behind.
        second = Answer()
        stream, sink = run_stream(deferred, second)
        stream.on_reset()
        await asyncio.sleep(0.01)
        assert second.got == b"" and local.in_use("model:claude-sonnet-4-5") == 0

        # Refused asynchronously: 429 in the client's dialect.
        local.admit(None, "claude-sonnet-4-5", "anthropic", 0, 0.0)  # holds the one slot
        third = Answer()
        stream, sink = run_stream(deferred, third)
        await asyncio.sleep(0.01)
        assert sink.status == 429 and (b"retry-after", b"1") in sink.headers
        assert orjson.loads(sink.body)["error"]["type"] == "rate_limit_error"
        assert third.got == b"" and stream.info.flags == ["RL"]

    asyncio.run(main())


def test_reported_usage_corrects_the_estimate_when_the_stream_ends(
    runtime: RuntimeConfig,
) -> None:
    spec = LimitSpec(tokens_per_minute=1000)
    for usage, second in (((60, 40), 200), ((1500, 500), 429)):
        local = LocalLimiter(LimitSettings(keys={"bot": spec}))
        limited = replace(runtime, limiter=local)
        _, sink = run_stream(limited, Answer(usage=usage), key="bot")
        assert sink.status == 200
        # 100 tokens used leave room; 2000 put the key a minute's worth in debt.
        _, sink = run_stream(limited, Answer(), key="bot")
        assert sink.status == second
    retry = int(dict(sink.headers)[b"retry-after"])
    assert 60 < retry <= 61 + 1


def test_x_api_key_comes_first_whatever_the_header_order() -> None:
    """Two credentials naming different keys: x-api-key's decides (docs/security.md)."""
    headers = [(b"authorization", b"Bearer second"), (b"x-api-key", b"first")]
    assert presented_keys(headers) == [b"first", b"second"]
