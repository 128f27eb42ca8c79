"""Settings of the simulated provider, and the per-request overrides tests send as headers.

Kept free of any import from the rest of `proxy`: the mock provider is the proxy's honest peer
in tests and benchmarks, so it must not share code paths with what it is used to check.
The ``x-mock-*`` headers are listed in the package docstring (``proxy/mock_provider``).
"""

from __future__ import annotations

from dataclasses import dataclass

# Failures that are not an HTTP status. Each is explained in `FailMode`.
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "reset",
        "reset-mid-stream",
        "stall",
        "stall-mid-stream",
        "overloaded-in-stream",
        "garbage",
        "bad-json",
    }
)

DEFAULT_MODELS: tuple[str, ...] = (
    "claude-opus-4-8",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gpt-4o",
    "gpt-4o-mini",
)

MAX_OUTPUT_TOKENS = 100_000  # bound on what an option or header may ask one answer to hold
MAX_DELAY_MS = 3_600_000.0
MAX_TOOL_CALLS = 8  # parallel tool calls one answer may hold
MAX_CACHED_TOKENS = 10_000_000


@dataclass(frozen=True, slots=True)
class FailMode:
    """One injected failure.

    ``status`` (kind "status"): an error reply with that code, body in the endpoint's dialect.
    ``reset``: abort the connection once the request was read (HTTP/2: RST_STREAM).
    ``reset-mid-stream`` / ``stall-mid-stream``: send the status line and part of the body,
    then abort / go silent. ``stall``: send nothing and hold the connection.
    ``overloaded-in-stream``: HTTP 200, then an in-band error (Anthropic ``event: error``,
    OpenAI ``data: {"error": ...}``); a non-streaming request gets 529 / 503 instead.
    ``garbage``: bytes that are not HTTP, then close. ``bad-json``: 200 with a broken body.
    """

    kind: str
    status: int = 0

    @classmethod
    def parse(cls, text: str) -> FailMode:
        text = text.strip().lower()
        if text.startswith("status:"):
            code = _int_in(text[7:], 100, 599, "status code")
            return cls("status", code)
        if text in FAULT_KINDS:
            return cls(text)
        raise ValueError(
            f"unknown fail mode {text!r}: status:<code> or one of {sorted(FAULT_KINDS)}"
        )

    def __str__(self) -> str:
        return f"status:{self.status}" if self.kind == "status" else self.kind


@dataclass(frozen=True, slots=True)
class MockOptions:
    host: str = "127.0.0.1"
    port: int = 8090  # 0 = ephemeral; MockProvider.start() returns the bound port
    latency_ms: float = 0.0  # before the first response byte
    tokens_per_s: float = 0.0  # streaming pace; 0 = as fast as possible
    sse_gap_ms: float = 0.0  # extra pause between streamed events
    output_tokens: int = 20  # answer length before max_tokens caps it
    fail_rate: float = 0.0  # share of generation requests that fail with fail_mode
    fail_mode: str = "status:500"
    seed: int = 0  # drives the failure draw and the generated words
    require_key: str | None = None  # x-api-key or Authorization: Bearer must equal this
    tls_cert: str | None = None
    tls_key: str | None = None
    h2c: bool = True  # accept HTTP/2 prior knowledge on cleartext
    tls_h2: bool = True  # offer h2 through ALPN when TLS is on
    models: tuple[str, ...] = DEFAULT_MODELS
    record_limit: int = 256  # ring buffer of recorded requests
    record_body_bytes: int = 1024 * 1024  # each recorded body is cut to this
    max_body_bytes: int = 32 * 1024 * 1024  # larger requests get 413
    max_header_bytes: int = 64 * 1024  # request line + headers; larger get 431
    max_pipelined: int = 32  # HTTP/1.1 requests queued behind a busy one before reading pauses
    retry_after_s: int = 1  # sent with 429 / 529 / 503 replies
    idle_timeout_s: float = 0.0  # close idle HTTP/1.1 keep-alive connections; 0 = never
    # reject (400) requests a real provider would reject; False = answer whatever parses
    strict: bool = True

    def __post_init__(self) -> None:
        FailMode.parse(self.fail_mode)
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within 0..1")
        for name in ("latency_ms", "tokens_per_s", "sse_gap_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 <= self.output_tokens <= MAX_OUTPUT_TOKENS:
            raise ValueError(f"output_tokens must be within 0..{MAX_OUTPUT_TOKENS}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.record_limit < 0 or self.record_body_bytes < 0:
            raise ValueError("recording bounds must not be negative")
        if self.max_pipelined < 1:
            raise ValueError("max_pipelined must be at least 1")


@dataclass(frozen=True, slots=True)
class RequestOverrides:
    """Values a request's ``x-mock-*`` headers set for that request only (None = option)."""

    latency_ms: float | None = None
    tokens_per_s: float | None = None
    output_tokens: int | None = None
    fail: FailMode | None = None
    sse_gap_ms: float | None = None
    status: int | None = None
    tool_calls: int | None = None  # parallel tool calls when the request offers tools
    interleave_tools: bool | None = None  # OpenAI streams: mix argument fragments of calls
    reasoning: bool | None = None  # force thinking / reasoning_content on (True) or off
    cached_tokens: int | None = None  # prompt tokens reported as read from the cache
    strict: bool | None = None  # MockOptions.strict for this request


NO_OVERRIDES = RequestOverrides()


def parse_overrides(pairs: list[tuple[bytes, bytes]]) -> RequestOverrides:
    """Read the ``x-mock-*`` headers (lower-case names). Raises ValueError on a bad value."""
    values: dict[str, object] = {}
    for name, raw in pairs:
        text = raw.decode("latin-1").strip()
        if name == b"x-mock-latency-ms":
            values["latency_ms"] = _float_in(text, 0.0, MAX_DELAY_MS, "x-mock-latency-ms")
        elif name == b"x-mock-tokens-per-s":
            values["tokens_per_s"] = _float_in(text, 0.0, 1e9, "x-mock-tokens-per-s")
        elif name == b"x-mock-output-tokens":
            values["output_tokens"] = _int_in(text, 0, MAX_OUTPUT_TOKENS, "x-mock-output-tokens")
        elif name == b"x-mock-fail":
            values["fail"] = FailMode.parse(text)
        elif name == b"x-mock-sse-gap-ms":
            values["sse_gap_ms"] = _float_in(text, 0.0, MAX_DELAY_MS, "x-mock-sse-gap-ms")
        elif name == b"x-mock-status":
            values["status"] = _int_in(text, 200, 599, "x-mock-status")
        elif name == b"x-mock-tool-calls":
            values["tool_calls"] = _int_in(text, 1, MAX_TOOL_CALLS, "x-mock-tool-calls")
        elif name == b"x-mock-interleave-tools":
            values["interleave_tools"] = _flag(text, "x-mock-interleave-tools")
        elif name == b"x-mock-reasoning":
            values["reasoning"] = _flag(text, "x-mock-reasoning")
        elif name == b"x-mock-cached-tokens":
            values["cached_tokens"] = _int_in(text, 0, MAX_CACHED_TOKENS, "x-mock-cached-tokens")
        elif name == b"x-mock-strict":
            values["strict"] = _flag(text, "x-mock-strict")
        else:
            raise ValueError(f"unknown override header {name.decode('latin-1')}")
    return RequestOverrides(**values)  # type: ignore[arg-type]


def _float_in(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not low <= value <= high:  # also rejects NaN
        raise ValueError(f"{what} must be within {low:g}..{high:g}")
    return value


def _flag(text: str, what: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{what} must be 1 or 0, got {text!r}")


def _int_in(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{what} must be within {low}..{high}")
    return value
