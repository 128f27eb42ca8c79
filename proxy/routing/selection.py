"""Choosing a deployment: filter a route's candidates by what the request needs, then order
them by the route's strategy. Pure: the clock and the random source are injected.

How this works. A `Selector` is built per loaded config from its routes; each target
``provider,model`` expands to one `Candidate` per deployment of that provider (expanded once
per route and cached). `select` walks the candidates in config order and rejects, with a
reason, those that cannot serve the request: a context window smaller than the estimated
tokens plus max_tokens (max_tokens counted up to the model's max output, which transformers
enforce), tools/images/thinking unsupported, below the cost strategy's quality floor,
excluded by the caller, or unhealthy ("breaker open"). The eligible rest is ordered by the
strategy; ``ordered[0]`` is the choice, the others are fallbacks in strategy order:

- priority: config order.
- weighted: smooth weighted round robin (nginx's): every pick adds each eligible candidate's
  deployment weight to its running score, takes the highest score (the first in config order
  on a tie) and subtracts the eligible total from the one actually used. Deterministic: with
  weights 2:1 the picks go a, b, a, a, b, a, ... and the shares are exact over each cycle.
  Fallbacks follow the scores (who is due next). A deployment that is backed up — requests in
  flight per unit of weight at least `BACKLOG_MIN` and at least `BACKLOG_RATIO` times (one
  more than) the least loaded eligible candidate's — sits out the round robin and is only a
  last fallback until its backlog drains: round robin ignores load, so a deployment that
  accepts requests and never answers would otherwise keep its full share until its first
  timeouts (seconds later) open its breaker. Deployments that merely differ in speed stay
  far below that ratio.
- least_outstanding: power of two random choices: two distinct candidates drawn at random,
  the one with fewer requests in flight wins (the first drawn on a tie). Fallbacks by
  outstanding count.
- latency: lowest EWMA of time to first byte (alpha `EWMA_ALPHA`). A candidate with no sample
  yet and nothing in flight is tried first, one probe at a time, so a new deployment is
  measured without sending it a burst; and `EXPLORE_PROBABILITY` of the decisions go to a
  random other candidate, so a deployment that was slow once gets measured again.
- cost: lowest score = cost_weight * price + latency_weight * latency - quality_weight *
  quality (ties keep config order), where price is the blended price (3 x input + output) / 4
  per million tokens divided by the highest blended price among the route's candidates (an
  unknown price counts as that highest, 1.0), latency is the TTFT EWMA divided by the highest
  EWMA among the route's candidates (unmeasured: the mean of the measured ones), and quality
  is the model's 0..1 score (unknown: 0.5). With the default weights (1, 0, 0) that is
  simply the cheapest first. A candidate below ``quality_floor`` (or of unknown quality when
  a floor is set) is rejected. Normalising over the route, not over the eligible ones, keeps
  the price and quality part fixed per route, so it is computed once.

least_outstanding and latency rank a candidate whose last request failed less than
`RECENT_ERROR_S` ago after the others, so a deployment that fails fast does not attract the
traffic. Session affinity is an overlay: with ``affinity`` on and a session id, the session's
previous candidate goes first while it is eligible and healthy; otherwise the strategy's
choice is taken and remembered (a bounded LRU of sessions with a TTL).

Live stats (requests in flight, TTFT EWMA, last error) are kept per candidate key
("provider/deployment/model") and handed to the next config's Selector, so a reload keeps
what was measured for the candidates it still has.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from operator import add, itemgetter
from typing import Final

from proxy.routing.catalog import info_for
from proxy.routing.types import Candidate, ModelInfo, Requirements, Route, Selection, Strategy

EWMA_ALPHA: Final = 0.3  # weight of the newest time-to-first-byte sample
RECENT_ERROR_S: Final = 30.0
EXPLORE_PROBABILITY: Final = 0.05  # latency: share of decisions sent to a random other
UNKNOWN_QUALITY: Final = 0.5
BACKLOG_MIN: Final = 8  # weighted: in flight per unit of weight before a backlog counts
BACKLOG_RATIO: Final = 4.0  # ... and times the least loaded candidate's (plus one)
MAX_ADHOC_ROUTES: Final = 256  # routes built per request (explicit provider,model) cached
AFFINITY_MAX_SESSIONS: Final = 10_000
AFFINITY_TTL_S: Final = 3600.0  # longer than providers' prompt-cache lifetimes

# Ranks for the sorts: an unmeasured candidate's TTFT, above any real one; and what a
# recently failed candidate gets added, which puts it after every other.
_UNMEASURED: Final = 1e9
_PENALTY: Final = 1e12

BREAKER_OPEN: Final = "breaker open"
EXCLUDED: Final = "excluded"
_HEALTH_REASONS: Final = frozenset({BREAKER_OPEN, EXCLUDED})


def always(candidate: Candidate) -> bool:
    """The default health check: every candidate is healthy."""
    return True


class CandidateStats:
    """What has been measured of one candidate. Shared by every route that includes it."""

    __slots__ = (
        "errors",
        "last_error_s",
        "outstanding",
        "recent",
        "requests",
        "samples",
        "ttft_s",
    )

    def __init__(self) -> None:
        self.outstanding = 0
        self.requests = 0
        self.errors = 0
        self.samples = 0  # time-to-first-byte samples folded into ttft_s
        self.ttft_s = 0.0  # EWMA, meaningful once samples > 0
        self.last_error_s: float | None = None  # cleared by a success
        # The last first-byte times, kept only once a hedging route asked for them
        # (proxy/filters/hedge.py reads percentiles from it).
        self.recent: deque[float] | None = None


class AffinityTable:
    """Session -> candidate key, least recently used first out, entries expire after a TTL."""

    __slots__ = ("_entries", "max_sessions", "ttl_s")

    def __init__(self, max_sessions: int = AFFINITY_MAX_SESSIONS, ttl_s: float = AFFINITY_TTL_S):
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str], now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[str, str], candidate_key: str, now: float) -> None:
        self._entries[key] = (candidate_key, now + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_sessions:
            self._entries.popitem(last=False)


class _RouteEntry:
    """A route expanded into candidates, with per-candidate arrays (index = position in
    config order) so a decision works on small lists instead of dictionaries. Groups are the
    targets: one ModelInfo per group, so the capability check runs once per target."""

    __slots__ = (
        "cands",
        "cost_scores",
        "groups",
        "index",
        "keys",
        "natural",
        "route",
        "scores",
        "stats",
        "total_weight",
        "weights",
    )

    def __init__(self, route: Route, stats_for: Callable[[str], CandidateStats]) -> None:
        self.route = route
        cands: list[Candidate] = []
        groups: list[tuple[ModelInfo, int, int]] = []
        seen: set[str] = set()
        for target in route.targets:
            info = info_for(target.provider, target.model)
            start = len(cands)
            for deployment in target.provider.deployments:
                cand = Candidate(target.provider, deployment, target.model, info)
                if cand.key not in seen:  # the same target twice adds nothing
                    seen.add(cand.key)
                    cands.append(cand)
            if len(cands) > start:
                groups.append((info, start, len(cands)))
        self.cands = tuple(cands)
        self.groups = tuple(groups)
        # The cost strategy's price and quality part: fixed per target, so computed here.
        prices = [_blend(c.info) for c in cands]
        top = max([p for p in prices if p is not None], default=0.0)
        self.cost_scores = [
            route.cost_weight * (1.0 if p is None else (p / top if top > 0 else 0.0))
            - route.quality_weight * (UNKNOWN_QUALITY if c.info.quality is None else c.info.quality)
            for c, p in zip(cands, prices, strict=True)
        ]
        self.keys = [c.key for c in cands]
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.stats = [stats_for(key) for key in self.keys]
        self.weights = [c.deployment.weight for c in cands]
        self.scores = [0.0] * len(cands)  # smooth weighted round robin
        self.natural = list(range(len(cands)))
        self.total_weight = sum(self.weights)


def capability_problem(info: ModelInfo, need: Requirements) -> str | None:
    """Why a model with ``info`` cannot serve a request needing ``need``; None if it can."""
    window = info.context_window
    if window is not None:
        out = need.max_tokens
        if info.max_output is not None and out > info.max_output:
            out = info.max_output
        if window < need.tokens + out:
            return f"context window {window} < {need.tokens} estimated tokens + {out} max_tokens"
    if need.tools and not info.tools:
        return "tools unsupported"
    if need.images and not info.images:
        return "images unsupported"
    if need.thinking and not info.thinking:
        return "thinking unsupported"
    return None


def _quality_problem(info: ModelInfo, floor: float) -> str | None:
    if info.quality is None:
        return f"quality unknown, floor {floor:g}"
    if info.quality < floor:
        return f"quality {info.quality:g} < floor {floor:g}"
    return None


class Selector:
    """Selection state for one loaded config; see the module docstring."""

    __slots__ = (
        "_adhoc",
        "_affinity",
        "_by_id",
        "_clock",
        "_configured",
        "_errors_until",
        "_refs",
        "_rng",
        "_stats",
    )

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        clock: Callable[[], float],
        rng: random.Random,
        previous: Selector | None = None,
        affinity: AffinityTable | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._stats: dict[str, CandidateStats] = {}
        self._refs: dict[str, int] = {}  # candidate key -> cached ad-hoc entries holding it
        self._errors_until = 0.0  # no candidate counts as recently failed from then on
        # Carried over from the previous config: what was measured of the candidates this
        # config still has, and anything in flight (those requests end through the old
        # runtime, on these same objects).
        inherited = previous._stats if previous is not None else {}
        if previous is not None:
            self._errors_until = previous._errors_until

        def stats_for(key: str) -> CandidateStats:
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = inherited.get(key) or CandidateStats()
            return stats

        # The entry keeps its route alive, so the route's id() is not reused while cached.
        self._by_id = {id(route): _RouteEntry(route, stats_for) for route in routes}
        self._configured = frozenset(self._stats)
        for key, stats in inherited.items():
            if stats.outstanding > 0:
                self._stats.setdefault(key, stats)
        self._adhoc: OrderedDict[tuple[object, ...], _RouteEntry] = OrderedDict()
        if affinity is None:
            affinity = previous.affinity if previous is not None else AffinityTable()
        self._affinity: AffinityTable = affinity

    @property
    def affinity(self) -> AffinityTable:
        return self._affinity

    # -- selection --------------------------------------------------------------------------

    def candidates(self, route: Route) -> tuple[Candidate, ...]:
        """Every candidate of ``route`` in config order."""
        return self._entry(route).cands

    def select(
        self,
        route: Route,
        need: Requirements,
        *,
        session: str | None = None,
        healthy: Callable[[Candidate], bool] = always,
        exclude: Collection[str] = (),
    ) -> Selection:
        """The candidates of ``route`` able to serve ``need``, the choice first. ``exclude``
        holds candidate keys not to use (say, the ones a retry already tried)."""
        entry = self._entry(route)
        cands = entry.cands
        strategy = route.strategy
        floor = route.quality_floor if strategy is Strategy.COST else None
        per_candidate = bool(exclude) or healthy is not always
        eligible: list[int] = []
        rejected: list[tuple[Candidate, str]] = []
        for info, start, stop in entry.groups:
            reason = capability_problem(info, need)
            if reason is None and floor is not None:
                reason = _quality_problem(info, floor)
            if reason is not None:
                rejected.extend((cands[i], reason) for i in range(start, stop))
            elif not per_candidate:
                eligible.extend(range(start, stop))
            else:
                span = range(start, stop)
                keys = entry.keys
                if exclude:
                    fine = [i for i in span if keys[i] not in exclude and healthy(cands[i])]
                else:
                    fine = [i for i in span if healthy(cands[i])]
                if len(fine) < stop - start:  # the rare case: say why, in config order
                    kept = set(fine)
                    for i in span:
                        if i not in kept:
                            why = EXCLUDED if exclude and keys[i] in exclude else BREAKER_OPEN
                            rejected.append((cands[i], why))
                eligible.extend(fine)
        if not eligible:
            return Selection((), tuple(rejected))

        backed_up: list[int] = []
        if len(eligible) == 1 or strategy is Strategy.PRIORITY:
            ordered = eligible
        elif strategy is Strategy.WEIGHTED:
            backed_up = _backed_up(entry, eligible)
            if backed_up:
                eligible = [i for i in eligible if i not in backed_up]
            ordered = self._weighted(entry, eligible) if len(eligible) > 1 else eligible
        elif strategy is Strategy.LEAST_OUTSTANDING:
            ordered = self._least_outstanding(entry, eligible)
        elif strategy is Strategy.LATENCY:
            ordered = self._latency(entry, eligible)
        else:
            ordered = self._cost(entry, eligible)

        if route.affinity and session:
            ordered = self._stick(entry, session, ordered)
        if strategy is Strategy.WEIGHTED and len(eligible) > 1:
            # Charged to the candidate actually used (affinity may have overridden the pick).
            if len(eligible) == len(cands):
                total = entry.total_weight
            else:
                weights = entry.weights
                total = sum([weights[i] for i in eligible])
            entry.scores[ordered[0]] -= total
        if backed_up:
            ordered = ordered + sorted(backed_up, key=entry.scores.__getitem__, reverse=True)
        if len(ordered) == len(cands) and ordered == entry.natural:
            chosen = cands  # every candidate, in config order: nothing to build
        elif len(ordered) == 1:
            chosen = (cands[ordered[0]],)
        else:
            chosen = itemgetter(*ordered)(cands)
        return Selection(chosen, tuple(rejected))

    def _weighted(self, entry: _RouteEntry, eligible: list[int]) -> list[int]:
        scores, weights = entry.scores, entry.weights
        if len(eligible) == len(scores):
            scores[:] = map(add, scores, weights)
        else:
            for i in eligible:
                scores[i] += weights[i]
        # Highest score first; the sort is stable, so ties keep config order.
        return sorted(eligible, key=scores.__getitem__, reverse=True)

    def _failing(self, entry: _RouteEntry, eligible: list[int]) -> list[int]:
        """The eligible candidates whose last request failed recently (usually none)."""
        now = self._clock()
        if now >= self._errors_until:
            return []
        stats = entry.stats
        return [i for i in eligible if _failing(stats[i], now)]

    def _least_outstanding(self, entry: _RouteEntry, eligible: list[int]) -> list[int]:
        load: list[float] = [st.outstanding for st in entry.stats]
        pool = eligible
        failing = self._failing(entry, eligible)
        if failing:
            for i in failing:
                load[i] += _PENALTY
            pool = [i for i in eligible if i not in failing] or eligible
        if len(pool) == 1:
            best = pool[0]
        else:
            rng = self._rng
            a = rng.randrange(len(pool))
            b = rng.randrange(len(pool) - 1)
            if b >= a:
                b += 1
            best = pool[a] if load[pool[a]] <= load[pool[b]] else pool[b]
        ordered = sorted(eligible, key=load.__getitem__)
        if ordered[0] != best:
            ordered.remove(best)
            ordered.insert(0, best)
        return ordered

    def _latency(self, entry: _RouteEntry, eligible: list[int]) -> list[int]:
        stats = entry.stats
        # No sample yet (a probe is in flight, or none was sent): ranked after the measured.
        ttft = [st.ttft_s if st.samples else _UNMEASURED for st in stats]
        failing = self._failing(entry, eligible)
        for i in failing:
            ttft[i] += _PENALTY
        ordered = sorted(eligible, key=ttft.__getitem__)
        if ttft[ordered[-1]] >= _UNMEASURED:
            for i in eligible:
                if ttft[i] == _UNMEASURED and stats[i].outstanding == 0:
                    ordered.remove(i)
                    ordered.insert(0, i)  # explore: the first unmeasured, idle candidate
                    return ordered
        if self._rng.random() < EXPLORE_PROBABILITY:
            others = [i for i in ordered[1:] if ttft[i] < _PENALTY]
            if others:
                pick = others[self._rng.randrange(len(others))]
                ordered.remove(pick)
                ordered.insert(0, pick)
        return ordered

    def _cost(self, entry: _RouteEntry, eligible: list[int]) -> list[int]:
        score = entry.cost_scores
        weight = entry.route.latency_weight
        if weight:
            ttft = [st.ttft_s if st.samples else -1.0 for st in entry.stats]
            top = max(ttft)
            if top > 0:
                if min(ttft) < 0:  # unmeasured candidates count as the mean of the measured
                    measured = [t for t in ttft if t >= 0]
                    mean = sum(measured) / len(measured)
                    ttft = [t if t >= 0 else mean for t in ttft]
                factor = weight / top
                score = [s + factor * t for s, t in zip(score, ttft, strict=True)]
        return sorted(eligible, key=score.__getitem__)

    def _stick(self, entry: _RouteEntry, session: str, ordered: list[int]) -> list[int]:
        now = self._clock()
        key = (entry.route.name, session)
        sticky = self._affinity.get(key, now)
        if sticky is not None:
            index = entry.index.get(sticky)
            if index is not None and index != ordered[0] and index in ordered:
                ordered.remove(index)
                ordered.insert(0, index)
        self._affinity.put(key, entry.keys[ordered[0]], now)
        return ordered

    # -- feedback ---------------------------------------------------------------------------

    def on_start(self, candidate: Candidate) -> None:
        """A request to ``candidate`` was sent."""
        stats = self._stats_for(candidate.key)
        stats.outstanding += 1
        stats.requests += 1

    def on_first_byte(self, candidate: Candidate, seconds: float) -> None:
        """The first response byte from ``candidate`` came ``seconds`` after the request."""
        stats = self._stats_for(candidate.key)
        if stats.samples == 0:
            stats.ttft_s = seconds
        else:
            stats.ttft_s += EWMA_ALPHA * (seconds - stats.ttft_s)
        stats.samples += 1
        if stats.recent is not None:
            stats.recent.append(seconds)

    def on_end(self, candidate: Candidate, ok: bool) -> None:
        """The request to ``candidate`` is over; ``ok`` False for a failure."""
        key = candidate.key
        stats = self._stats_for(key)
        if stats.outstanding > 0:
            stats.outstanding -= 1
        if ok:
            stats.last_error_s = None
        else:
            stats.errors += 1
            now = self._clock()
            stats.last_error_s = now
            self._errors_until = max(self._errors_until, now + RECENT_ERROR_S)
        if stats.outstanding == 0 and key not in self._configured and key not in self._refs:
            del self._stats[key]  # an explicit route's candidate no cached route holds

    @property
    def tracked(self) -> int:
        """How many candidates have live stats (bounded: configured routes, the cached
        explicit routes and whatever is in flight)."""
        return len(self._stats)

    def stats(self, candidate: Candidate) -> CandidateStats:
        """The live stats of ``candidate`` (read them, do not change them)."""
        return self._stats.get(candidate.key) or CandidateStats()

    # -- internals --------------------------------------------------------------------------

    def _entry(self, route: Route) -> _RouteEntry:
        entry = self._by_id.get(id(route))
        if entry is not None and entry.route is route:
            return entry
        # A route built per request (an explicit "provider,model"): cached by what it is, and
        # its candidates' stats live while the cache holds it (or a request is in flight).
        key = (route.name, route.strategy, *((id(t.provider), t.model) for t in route.targets))
        entry = self._adhoc.get(key)
        if entry is not None:
            self._adhoc.move_to_end(key)
            return entry
        entry = _RouteEntry(route, self._stats_for)
        self._adhoc[key] = entry
        for k in entry.keys:
            self._refs[k] = self._refs.get(k, 0) + 1
        if len(self._adhoc) > MAX_ADHOC_ROUTES:
            _, old = self._adhoc.popitem(last=False)
            for k in old.keys:
                self._refs[k] -= 1
                if self._refs[k] == 0:
                    del self._refs[k]
                    if k not in self._configured and self._stats[k].outstanding == 0:
                        del self._stats[k]
        return entry

    def _stats_for(self, key: str) -> CandidateStats:
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = CandidateStats()
        return stats


def _backed_up(entry: _RouteEntry, eligible: list[int]) -> list[int]:
    """Weighted: the eligible candidates with a backlog (see the module docstring), unless
    that is all of them. Usually none: one pass over the outstanding counts."""
    stats, weights = entry.stats, entry.weights
    loads = [stats[i].outstanding / weights[i] for i in eligible]
    top = max(loads)
    if top < BACKLOG_MIN:
        return []
    limit = max(float(BACKLOG_MIN), BACKLOG_RATIO * (min(loads) + 1.0))
    out = [i for i, load in zip(eligible, loads, strict=True) if load >= limit]
    return out if len(out) < len(eligible) else []


def _failing(stats: CandidateStats, now: float) -> bool:
    last = stats.last_error_s
    return last is not None and now - last < RECENT_ERROR_S


def _blend(info: ModelInfo) -> float | None:
    """USD per million tokens at the usual 3:1 input:output mix; None when unknown."""
    if info.input_price is None or info.output_price is None:
        return None
    return (3.0 * info.input_price + info.output_price) / 4.0


def failure_status(selection: Selection) -> int:
    """The HTTP status when nothing is eligible: 400 when every rejection is a capability
    mismatch (the request cannot be served as written), 503 when some candidate was turned
    away for its health (it may serve again soon)."""
    if not selection.rejected:
        return 503
    if any(reason in _HEALTH_REASONS for _, reason in selection.rejected):
        return 503
    return 400


def rejection_lines(selection: Selection) -> list[str]:
    """One line per rejected candidate: ``provider,model via deployment: reason``."""
    return [f"{c.ref} via {c.deployment.name}: {reason}" for c, reason in selection.rejected]
