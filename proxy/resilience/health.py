"""The router's view of upstream health: one circuit breaker per candidate and one outlier
detector per provider, with the cheap check that selection runs for every candidate.

How this works. A breaker is kept per candidate key ("provider/deployment/model"): a model can
be down on a provider while its other models work, so the breaker is as narrow as a request's
target. Outlier ejection is per deployment (the host), across its models, as Envoy ejects a
host; a provider is the cluster whose share of ejected deployments is capped. A candidate is
healthy when its breaker admits requests and its deployment is not ejected: one dictionary
lookup and two float compares (`CircuitBreaker.blocked_until`, `OutlierHost.ejected_until`).

Entries are made when a request first starts on a candidate, so a candidate never tried has
none and is healthy unless its deployment is ejected. They are bounded by `MAX_TRACKED_KEYS`
(explicit "provider,model" requests can name any model): past it, an idle entry among the
oldest is dropped, else the oldest.

On reload, build the new book with ``previous=``: breakers of candidates whose provider and
deployment still exist, and the detectors of providers still configured, are the same objects
in both books (with the new settings), so requests still in flight on the old config report
into the state the new one reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Final

from proxy.config.resilience import ResilienceConfig
from proxy.errors import ProxyError
from proxy.resilience.breaker import CircuitBreaker, Ticket
from proxy.resilience.outcome import Outcome, classify
from proxy.resilience.outlier import OutlierDetector, OutlierHost, host_snapshot
from proxy.routing.types import Candidate, Provider

MAX_TRACKED_KEYS: Final = 4096  # candidates with a breaker, at most
_EVICT_SCAN: Final = 64  # oldest entries looked at for an idle one to drop


class _Entry:
    __slots__ = ("breaker", "deployment", "host", "model", "provider")

    def __init__(
        self, provider: str, deployment: str, model: str, breaker: CircuitBreaker, host: OutlierHost
    ) -> None:
        self.provider = provider
        self.deployment = deployment
        self.model = model
        self.breaker = breaker
        self.host = host


class HealthBook:
    """See the module docstring."""

    __slots__ = ("_cooldowns", "_detectors", "_entries", "config", "evicted_total", "max_keys")

    def __init__(
        self,
        config: ResilienceConfig,
        providers: Iterable[Provider],
        *,
        now: float,
        previous: HealthBook | None = None,
        max_keys: int = MAX_TRACKED_KEYS,
    ) -> None:
        self.config = config
        self.max_keys = max_keys
        self.evicted_total = 0
        old_detectors = previous._detectors if previous is not None else {}
        self._detectors: dict[str, OutlierDetector] = {}
        for p in providers:
            names = [d.name for d in p.deployments]
            detector = old_detectors.get(p.name)
            if detector is None:
                detector = OutlierDetector(p.name, names, config.outlier)
            else:
                detector.reconfigure(names, config.outlier)
            self._detectors[p.name] = detector
        self._entries: dict[str, _Entry] = {}
        # Candidate key -> when the provider's rate limit resets (a 429's headers). Few and
        # short-lived: an entry goes once its time passed and a request looked at it.
        self._cooldowns: dict[str, float] = dict(previous._cooldowns) if previous else {}
        if previous is not None:
            for key, entry in previous._entries.items():
                found = self._detectors.get(entry.provider)
                host = found.host(entry.deployment) if found is not None else None
                if host is None:
                    continue  # the provider or the deployment is gone
                entry.host = host
                entry.breaker.reconfigure(config.breaker, now)
                self._entries[key] = entry
                if len(self._entries) >= max_keys:
                    break

    # -- the health check ------------------------------------------------------------------

    def healthy(self, candidate: Candidate, now: float) -> bool:
        """Not refused by its breaker and its deployment not ejected."""
        entry = self._entries.get(candidate.key)
        if entry is None:
            return not self._ejected(candidate, now)
        return now >= entry.breaker.blocked_until and now >= entry.host.ejected_until

    def checker(self, now: float) -> Callable[[Candidate], bool]:
        """`healthy` at ``now``, in the one-argument form selection takes."""
        entries = self._entries
        ejected = self._ejected

        def healthy(candidate: Candidate) -> bool:
            entry = entries.get(candidate.key)
            if entry is None:
                return not ejected(candidate, now)
            return now >= entry.breaker.blocked_until and now >= entry.host.ejected_until

        return healthy

    def recovery_s(self, candidates: Iterable[object], now: float) -> float | None:
        """Seconds until the first of ``candidates`` admits requests again (breaker
        half-open, ejection over), or None when none of them is waiting on either."""
        best: float | None = None
        for c in candidates:
            if not isinstance(c, Candidate):
                continue
            entry = self._entries.get(c.key)
            if entry is not None:
                until = max(entry.breaker.blocked_until, entry.host.ejected_until)
            else:
                detector = self._detectors.get(c.provider.name)
                host = detector.host(c.deployment.name) if detector is not None else None
                until = host.ejected_until if host is not None else now
            if until > now and (best is None or until - now < best):
                best = until - now
        return best

    # -- rate-limit cooldowns ----------------------------------------------------------------

    @property
    def cooling(self) -> bool:
        """Whether any candidate is cooling down (the request path checks this first)."""
        return bool(self._cooldowns)

    def cool_down(self, candidate: Candidate, until: float) -> None:
        """The provider said "not before ``until``" (a 429 and its reset headers)."""
        if len(self._cooldowns) >= self.max_keys and candidate.key not in self._cooldowns:
            return  # bounded like the breakers; a cooldown is an optimisation only
        self._cooldowns[candidate.key] = until

    def prefer_ready(self, ordered: tuple[Candidate, ...], now: float) -> tuple[Candidate, ...]:
        """``ordered`` with the candidates still cooling down moved to the end, in order.
        They stay in the list: when every candidate is rate-limited the provider's own 429
        (with its retry-after) is the most useful answer."""
        cooldowns = self._cooldowns
        ready: list[Candidate] = []
        cooling: list[Candidate] = []
        for c in ordered:
            until = cooldowns.get(c.key)
            if until is None:
                ready.append(c)
            elif until <= now:
                del cooldowns[c.key]
                ready.append(c)
            else:
                cooling.append(c)
        if not cooling:
            return ordered
        return (*ready, *cooling)

    # -- feedback --------------------------------------------------------------------------

    def on_start(self, candidate: Candidate, now: float) -> Ticket | None:
        """A request is about to go to ``candidate``: a ticket for `on_result`, or None when
        it must not go (breaker open or out of probe slots, deployment ejected) — then skip
        to the next candidate and report nothing."""
        entry = self._entry(candidate)
        if now < entry.host.ejected_until:
            return None
        return entry.breaker.on_attempt_start(now)

    def on_result(self, candidate: Candidate, ticket: Ticket, outcome: Outcome, now: float) -> None:
        """The attempt `on_start` admitted with ``ticket`` ended with ``outcome``."""
        entry = self._entries.get(candidate.key) or self._entry(candidate)
        entry.breaker.on_result(outcome, now, ticket)
        detector = self._detectors.get(entry.provider)
        if detector is not None:
            detector.on_result(entry.deployment, outcome, now)

    def outcome(self, status: int | None, error: ProxyError | None, ttfb_s: float) -> Outcome:
        """`classify` with the configured slow-call threshold."""
        return classify(status, error, ttfb_s, slow_call_s=self.config.breaker.slow_call_s)

    # -- reads for the admin listener and tests --------------------------------------------

    @property
    def tracked(self) -> int:
        """Candidates with a breaker (at most ``max_keys``)."""
        return len(self._entries)

    def tracked_keys(self) -> list[tuple[str, str, str, str]]:
        """(candidate key, provider, deployment, model) of every candidate with a breaker."""
        return [(k, e.provider, e.deployment, e.model) for k, e in self._entries.items()]

    def breaker(self, key: str) -> CircuitBreaker | None:
        entry = self._entries.get(key)
        return entry.breaker if entry is not None else None

    def detector(self, provider: str) -> OutlierDetector | None:
        return self._detectors.get(provider)

    def candidate_snapshot(self, candidate: Candidate, now: float) -> dict[str, object]:
        """The breaker and ejection state of one candidate, tried or not."""
        entry = self._entries.get(candidate.key)
        breaker = entry.breaker if entry is not None else CircuitBreaker(self.config.breaker)
        detector = self._detectors.get(candidate.provider.name)
        host = detector.host(candidate.deployment.name) if detector is not None else None
        return {
            "healthy": self.healthy(candidate, now),
            "breaker": breaker.snapshot(now),
            "outlier": host_snapshot(host, now) if host is not None else None,
        }

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "tracked": len(self._entries),
            "max_tracked": self.max_keys,
            "evicted_total": self.evicted_total,
            "breakers": {
                key: {
                    "provider": e.provider,
                    "deployment": e.deployment,
                    "model": e.model,
                    "healthy": now >= e.breaker.blocked_until and now >= e.host.ejected_until,
                    **e.breaker.snapshot(now),
                }
                for key, e in self._entries.items()
            },
            "clusters": {name: d.snapshot(now) for name, d in self._detectors.items()},
        }

    # -- internals -------------------------------------------------------------------------

    def _ejected(self, candidate: Candidate, now: float) -> bool:
        detector = self._detectors.get(candidate.provider.name)
        return detector is not None and detector.ejected(candidate.deployment.name, now)

    def _entry(self, candidate: Candidate) -> _Entry:
        key = candidate.key
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        if len(self._entries) >= self.max_keys:
            self._evict()
        provider, deployment = candidate.provider.name, candidate.deployment.name
        detector = self._detectors.get(provider)
        host = detector.host(deployment) if detector is not None else None
        entry = _Entry(
            provider,
            deployment,
            candidate.model,
            CircuitBreaker(self.config.breaker),
            host if host is not None else OutlierHost(),  # a provider this book was not given
        )
        self._entries[key] = entry
        return entry

    def _evict(self) -> None:
        entries = self._entries
        victim = next(
            (k for k in islice(entries, _EVICT_SCAN) if entries[k].breaker.idle()),
            next(iter(entries)),
        )
        del entries[victim]
        self.evicted_total += 1
