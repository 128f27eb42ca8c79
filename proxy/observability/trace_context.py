"""W3C trace context for one request: the ids Junction's spans will carry, decided up front.

How this works. Spans are made when the stream ends, from the timings it recorded (so the
request path creates no span object), but the provider must receive a ``traceparent`` naming
the client span of its attempt while that attempt runs. So the ids are chosen here, at the
start: the trace id is the client's (from a valid ``traceparent``) or a new random one, the
server span gets a new id, and each upstream attempt draws a new span id as its request
headers are built. `proxy.observability.tracing` later makes the spans with exactly these ids.

Sampling is decided once per trace: a client's sampled flag is followed (parent-based), and a
trace Junction starts is sampled when its id falls under the ratio (the same rule as
OpenTelemetry's TraceIdRatioBased sampler, so every hop that uses it agrees).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Final

from proxy.headers import Headers

TRACEPARENT: Final = b"traceparent"
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MAX_TRACE_ID: Final = (1 << 64) - 1  # the ratio sampler looks at the low 64 bits
MAX_ATTEMPT_SPANS: Final = 64  # attempt span ids kept per request (max_attempts is far lower)


class TraceState:
    """The ids of one request's trace (see the module docstring)."""

    __slots__ = (
        "_new_id",
        "attempt_span_ids",
        "parent_span_id",
        "remote_parent",
        "sampled",
        "span_id",
        "trace_id",
    )

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_span_id: int,
        sampled: bool,
        new_id: Callable[[], int],
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id  # the server span
        self.parent_span_id = parent_span_id  # the client's span; 0 when Junction started it
        self.remote_parent = parent_span_id != 0
        self.sampled = sampled
        self._new_id = new_id
        self.attempt_span_ids: list[int] = []

    def upstream_traceparent(self) -> bytes:
        """A ``traceparent`` for the next upstream attempt, naming that attempt's span."""
        span_id = self._new_id()
        if len(self.attempt_span_ids) < MAX_ATTEMPT_SPANS:
            self.attempt_span_ids.append(span_id)
        flags = b"01" if self.sampled else b"00"
        return b"00-%032x-%016x-%s" % (self.trace_id, span_id, flags)

    def stamp(self, headers: Headers) -> None:
        """Put the next attempt's ``traceparent`` on its upstream request headers, in place
        of the client's."""
        value = self.upstream_traceparent()
        for i, (k, _) in enumerate(headers):
            if k == TRACEPARENT:
                headers[i] = (TRACEPARENT, value)
                return
        headers.append((TRACEPARENT, value))


def parse_traceparent(value: bytes) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) of a valid version-00 header, else None (then the
    request starts a new trace, as the W3C spec says)."""
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_hex, span_hex, flags_hex = m.groups()
    if version == b"ff":
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, bool(int(flags_hex, 16) & 1)


class TraceContextSource:
    """Makes each request's `TraceState`; ``rng`` is injected so tests get fixed ids."""

    __slots__ = ("_bound", "_rng", "ratio")

    def __init__(self, ratio: float, rng: random.Random | None = None) -> None:
        self.ratio = ratio
        self._bound = round(ratio * _MAX_TRACE_ID)
        self._rng = rng if rng is not None else random.Random()

    def new_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def start(self, headers: Headers) -> TraceState:
        parent: tuple[int, int, bool] | None = None
        for k, v in headers:
            if k == TRACEPARENT:
                parent = parse_traceparent(v)
                break
        if parent is not None:
            trace_id, parent_id, sampled = parent
            return TraceState(trace_id, self.new_span_id(), parent_id, sampled, self.new_span_id)
        trace_id = self._rng.getrandbits(128) or 1
        sampled = (trace_id & _MAX_TRACE_ID) < self._bound
        return TraceState(trace_id, self.new_span_id(), 0, sampled, self.new_span_id)
