"""Hedged requests: a second attempt when the first byte is late, the first answer kept.

How this works. A route with ``hedge:`` arms, for each streaming attempt, a delay: the fixed
``delay_s``, or the chosen percentile of the candidate's recent first-byte times once it has
``min_samples`` of them. When the delay passes with no response byte (the router's deadline
tick, so up to 0.1 s late) and the route has a next candidate, the router sends the same
request there as well, as a `HedgeLeg`, taking a place in the retry budget like any retry.

- The primary's head arrives first: the leg is cancelled (outcome ``abandoned``, which counts
  against nobody).
- The leg's head arrives first: the primary is cancelled, and the router adopts the leg as
  its attempt; from then on the leg only forwards its exchange's events.
- The primary fails before any byte: the router adopts the leg instead of starting a
  fallback (the leg *is* the fallback, already under way).
- The leg fails before any byte: it is dropped and the primary carries on.

At most one leg per request. Only streaming requests are hedged: the first byte of a whole
(non-streamed) answer comes after the whole generation, so lateness there says nothing.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

from proxy.headers import Headers

if TYPE_CHECKING:
    from proxy.dialects.pipeline import ResponseTranslator
    from proxy.errors import UpstreamError
    from proxy.resilience.breaker import Ticket
    from proxy.resilience.resources import ClusterResources
    from proxy.routing.selection import CandidateStats
    from proxy.routing.types import Candidate, Hedge
    from proxy.upstream.api import Exchange

RECENT_SAMPLES: Final = 64  # first-byte times kept per candidate for the percentile


class HedgeHost(Protocol):
    """What a leg needs from the router that launched it."""

    def adopt_hedge(self, leg: HedgeLeg) -> None: ...

    def hedge_failed(self, leg: HedgeLeg, error: UpstreamError) -> None: ...

    def on_upstream_headers(self, status: int, headers: Headers) -> None: ...

    def on_upstream_data(self, data: bytes) -> None: ...

    def on_upstream_end(self) -> None: ...

    def on_upstream_error(self, error: UpstreamError) -> None: ...


class HedgeLeg:
    """The second attempt of a hedged request: its own exchange, ticket and slots until the
    router adopts it (then it forwards) or drops it."""

    __slots__ = (
        "adopted",
        "cand",
        "cluster",
        "exchange",
        "first_byte_s",
        "host",
        "idle_s",
        "index",
        "started_s",
        "ticket",
        "translator",
    )

    def __init__(
        self,
        host: HedgeHost,
        index: int,
        cand: Candidate,
        ticket: Ticket,
        cluster: ClusterResources | None,
        translator: ResponseTranslator | None,
        started_s: float,
        limits: tuple[float, float],
    ) -> None:
        self.host = host
        self.index = index
        self.cand = cand
        self.ticket = ticket
        self.cluster = cluster
        self.translator = translator
        self.started_s = started_s
        self.first_byte_s, self.idle_s = limits
        self.exchange: Exchange | None = None
        self.adopted = False

    # -- ResponseHandler ---------------------------------------------------------------------

    def on_upstream_headers(self, status: int, headers: Headers) -> None:
        if not self.adopted:
            self.host.adopt_hedge(self)  # the first head wins
        self.host.on_upstream_headers(status, headers)

    def on_upstream_data(self, data: bytes) -> None:
        self.host.on_upstream_data(data)

    def on_upstream_end(self) -> None:
        self.host.on_upstream_end()

    def on_upstream_error(self, error: UpstreamError) -> None:
        if self.adopted:
            self.host.on_upstream_error(error)
        else:
            self.host.hedge_failed(self, error)

    def on_upstream_writable(self) -> None:
        pass  # the whole body went in one write


def hedge_delay(policy: Hedge, stats: CandidateStats) -> float:
    """Seconds without a first byte after which ``policy`` hedges an attempt on the candidate
    ``stats`` describe. Asking starts the candidate's sample window if it had none."""
    if policy.percentile is None:
        return policy.delay_s
    recent = stats.recent
    if recent is None:
        stats.recent = deque(maxlen=RECENT_SAMPLES)
        return policy.delay_s
    if len(recent) < policy.min_samples:
        return policy.delay_s
    return percentile(sorted(recent), policy.percentile)


def percentile(ordered: list[float], p: float) -> float:
    """The ``p``-th percentile (0 < p < 100) of an ascending list, nearest rank."""
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats drifting
    return ordered[min(int(rank), len(ordered)) - 1]
