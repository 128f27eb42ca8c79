"""Per-stream facts gathered along the way and rendered once into the access log."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from proxy.observability.trace_context import TraceState


@final
class AttemptRecord:
    """One upstream attempt, appended by the router when the attempt ends (metrics count
    outcomes, tracing makes a client span of each). A plain class, not a NamedTuple: compiled,
    building one is a C allocation instead of a Python-level ``__new__`` per attempt."""

    __slots__ = (
        "deployment",
        "end_s",
        "key",
        "model",
        "outcome",
        "provider",
        "start_s",
        "status",
        "ttfb_s",
    )

    def __init__(
        self,
        start_s: float,
        end_s: float,
        provider: str,
        deployment: str,
        model: str,
        key: str,
        status: int,
        outcome: str,
        ttfb_s: float,
    ) -> None:
        self.start_s = start_s
        self.end_s = end_s
        self.provider = provider
        self.deployment = deployment
        self.model = model
        self.key = key  # the candidate key its breaker is kept under
        self.status = status  # 0: no response head
        self.outcome = outcome  # proxy.resilience.outcome.Outcome's value
        self.ttfb_s = ttfb_s  # time to the response head of an event stream; 0 otherwise

    def __repr__(self) -> str:
        return (
            f"AttemptRecord({self.provider}/{self.deployment}/{self.model}, "
            f"status={self.status}, outcome={self.outcome})"
        )


class StreamInfo:
    __slots__ = (
        "api_key_name",
        "attempts",
        "bytes_received",
        "bytes_sent",
        "cache",
        "cached_tokens",
        "cost_usd",
        "dialect",
        "end_s",
        "flags",
        "input_tokens",
        "method",
        "output_tokens",
        "path",
        "protocol",
        "request_id",
        "response_started_s",
        "route",
        "scenario",
        "session_id",
        "start_s",
        "status",
        "trace",
        "tries",
        "upstream_deployment",
        "upstream_host",
        "upstream_model",
        "upstream_provider",
    )

    def __init__(self, start_s: float, protocol: str) -> None:
        self.start_s = start_s
        self.protocol = protocol
        self.method = b""  # bytes as received; decoded only when a log line is written
        self.path = b""
        self.request_id = b""
        self.status = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.response_started_s = 0.0
        self.end_s = 0.0
        self.flags: list[str] = []
        self.upstream_provider = ""
        self.upstream_model = ""
        self.upstream_host = ""
        self.route = ""  # the route chosen: a scenario name, "alias:<name>" or "explicit"
        self.scenario = ""  # the rule that chose it
        self.session_id = ""  # Claude Code's session (X-Claude-Code-Session-Id / metadata)
        self.attempts = 0  # upstream attempts made (fallbacks included)
        self.api_key_name = ""  # the downstream API key's configured name; never the key
        # Usage the provider reported for this request (-1: not reported); the limit
        # filter corrects its token and spend estimates with it when the stream ends.
        self.input_tokens = -1
        self.output_tokens = -1
        self.cached_tokens = -1  # of input_tokens, read from the provider's cache
        self.cost_usd = 0.0  # set when the stream ends, from the usage and the price table
        self.dialect = ""  # the client's: "anthropic" or "openai"
        self.upstream_deployment = ""
        self.cache = ""  # the response cache's verdict ("hit", "miss", ...); "" none
        self.tries: list[AttemptRecord] = []
        self.trace: TraceState | None = None  # set only while tracing is on

    def add_flag(self, flag: str) -> None:
        if flag and flag not in self.flags:
            self.flags.append(flag)
