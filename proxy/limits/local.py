"""In-process limits for one worker: per API key, per model and per provider.

How this works: each configured scope ("key:<name>", "model:<name>", "provider:<name>") has a
`_ScopeState` holding what its `LimitSpec` turns on: a GCRA for requests per minute (cost 1),
a GCRA for tokens per minute (cost = tokens), a `ConcurrencyLimit`, and a `SpendWindow` per
UTC day and month. ``admit`` checks every limit of every scope that applies first and debits
only when all of them agree, so a refused request costs nothing anywhere. When several limits
refuse, the client is told the longest wait (it must wait for all of them) and the scope of
that one.

What ``admit`` debits: one request, ``est_tokens`` tokens (the caller's estimate of the input)
and their input price against spend; a concurrency slot until ``release``. ``record_usage``
later moves the token and USD debits to the provider's reported figures (proxy/limits/gcra.py
explains the token correction).

State is created for configured scopes only (a request naming an unconfigured model adds
nothing), so its size is bounded by the config (MAX_TRACKED_SCOPES). ``configure`` keeps the
state of scopes that stay across a reload: windows and spend carry over, a GCRA carries over
unless its rate changed, a concurrency limit keeps its holders. An `Admission` holds the very
objects it debited, so a release after a reload frees the right slot.
"""

from __future__ import annotations

from typing import Final

from proxy.limits.api import (
    MINUTE_S,
    Admission,
    AdmitResult,
    LimitSettings,
    LimitSpec,
    Pricing,
    Rejection,
    no_prices,
)
from proxy.limits.concurrency import ConcurrencyLimit
from proxy.limits.gcra import Gcra
from proxy.limits.spend import SpendWindow, cost_usd

MAX_TRACKED_SCOPES: Final = 12_000
# A concurrency slot frees when some request ends, which nothing predicts; clients are told
# to come back after this long.
CONCURRENCY_RETRY_AFTER_S: Final = 1.0


class _ScopeState:
    __slots__ = ("concurrency", "day", "label", "month", "requests", "spec", "tokens")

    def __init__(self, label: str, spec: LimitSpec) -> None:
        self.label = label
        self.requests: Gcra | None = None
        self.tokens: Gcra | None = None
        self.concurrency: ConcurrencyLimit | None = None
        self.day: SpendWindow | None = None
        self.month: SpendWindow | None = None
        self.apply(spec)

    def apply(self, spec: LimitSpec) -> None:
        self.spec = spec
        self.requests = _gcra(self.requests, spec.requests_per_minute)
        self.tokens = _gcra(self.tokens, spec.tokens_per_minute)
        if spec.concurrent is None:
            self.concurrency = None
        elif self.concurrency is None:
            self.concurrency = ConcurrencyLimit(spec.concurrent)
        else:
            self.concurrency.limit = spec.concurrent
        if spec.spend_per_day_usd is None:
            self.day = None
        elif self.day is None:
            self.day = SpendWindow("day")
        if spec.spend_per_month_usd is None:
            self.month = None
        elif self.month is None:
            self.month = SpendWindow("month")


def _gcra(current: Gcra | None, per_minute: int | None) -> Gcra | None:
    if per_minute is None:
        return None
    fresh = Gcra(per_minute, MINUTE_S)
    return current if current is not None and current.same_shape(fresh) else fresh


class _LocalAdmission(Admission):
    __slots__ = ("acquired", "states")

    def __init__(
        self,
        key: str | None,
        model: str,
        provider: str,
        tokens: int,
        usd: float,
        states: tuple[_ScopeState, ...],
        acquired: tuple[ConcurrencyLimit, ...],
    ) -> None:
        super().__init__(key, model, provider, tokens, usd)
        self.states = states
        self.acquired = acquired


def _describe(label: str) -> str:
    kind, _, name = label.partition(":")
    what = {"key": "API key", "model": "model", "provider": "provider"}.get(kind, kind)
    return f"{what} {name!r}"


class LocalLimiter:
    __slots__ = ("_counts_tokens", "_pricing", "_states")

    def __init__(self, settings: LimitSettings | None = None, pricing: Pricing = no_prices) -> None:
        self._states: dict[str, _ScopeState] = {}
        self._pricing = pricing
        self._counts_tokens = False
        self.configure(settings if settings is not None else LimitSettings(), pricing)

    def configure(self, settings: LimitSettings, pricing: Pricing) -> None:
        wanted: dict[str, LimitSpec] = {}
        for prefix, scopes in (
            ("key:", settings.keys),
            ("model:", settings.models),
            ("provider:", settings.providers),
        ):
            for name, spec in scopes.items():
                if not spec.empty:
                    wanted[prefix + name] = spec
        if len(wanted) > MAX_TRACKED_SCOPES:
            raise ValueError(f"at most {MAX_TRACKED_SCOPES} limited scopes (got {len(wanted)})")
        states: dict[str, _ScopeState] = {}
        for label, spec in wanted.items():
            state = self._states.get(label)
            if state is None:
                state = _ScopeState(label, spec)
            else:
                state.apply(spec)
            states[label] = state
        self._states = states
        self._pricing = pricing
        self._counts_tokens = any(s.spec.counts_tokens for s in states.values())

    @property
    def active(self) -> bool:
        return bool(self._states)

    def counts_tokens(self, key: str | None, model: str, provider: str) -> bool:
        if not self._counts_tokens:
            return False
        return any(s.spec.counts_tokens for s in self._applicable(key, model, provider))

    def _applicable(self, key: str | None, model: str, provider: str) -> list[_ScopeState]:
        get = self._states.get
        found = []
        if key is not None:
            state = get("key:" + key)
            if state is not None:
                found.append(state)
        state = get("model:" + model)
        if state is not None:
            found.append(state)
        state = get("provider:" + provider)
        if state is not None:
            found.append(state)
        return found

    def admit(
        self, key: str | None, model: str, provider: str, est_tokens: int, now: float
    ) -> AdmitResult:
        states = self._applicable(key, model, provider)
        if not states:
            return _LocalAdmission(key, model, provider, 0, 0.0, (), ())
        est_tokens = max(est_tokens, 0)
        worst_s = 0.0
        worst: tuple[str, str] | None = None  # (scope label, what refused)

        def refuse(wait_s: float, label: str, what: str) -> None:
            nonlocal worst_s, worst
            if wait_s > worst_s:
                worst_s, worst = wait_s, (label, what)

        spends = False
        for st in states:
            spec = st.spec
            if st.requests is not None:
                wait = st.requests.wait_s(1, now)
                refuse(wait, st.label, f"{spec.requests_per_minute} requests per minute")
            if st.tokens is not None:
                wait = st.tokens.wait_s(est_tokens, now)
                refuse(wait, st.label, f"{spec.tokens_per_minute} tokens per minute")
            if st.concurrency is not None and st.concurrency.full:
                what = f"{spec.concurrent} concurrent requests"
                refuse(CONCURRENCY_RETRY_AFTER_S, st.label, what)
            if st.day is not None and spec.spend_per_day_usd is not None:
                spends = True
                wait = st.day.wait_s(spec.spend_per_day_usd, now)
                refuse(wait, st.label, f"${spec.spend_per_day_usd:g} spend per day (UTC)")
            if st.month is not None and spec.spend_per_month_usd is not None:
                spends = True
                wait = st.month.wait_s(spec.spend_per_month_usd, now)
                refuse(wait, st.label, f"${spec.spend_per_month_usd:g} spend per month (UTC)")
        if worst is not None:
            label, what = worst
            return Rejection(
                retry_after_s=worst_s,
                scope=label,
                message=f"rate limit exceeded for {_describe(label)}: {what}",
            )
        usd = cost_usd(est_tokens, 0, self._pricing(provider, model)) if spends else 0.0
        acquired: list[ConcurrencyLimit] = []
        for st in states:
            if st.requests is not None:
                st.requests.debit(1, now)
            if st.tokens is not None:
                st.tokens.debit(est_tokens, now)
            if st.concurrency is not None and st.concurrency.try_acquire():
                acquired.append(st.concurrency)
            if st.day is not None:
                st.day.add(usd, now)
            if st.month is not None:
                st.month.add(usd, now)
        return _LocalAdmission(
            key, model, provider, est_tokens, usd, tuple(states), tuple(acquired)
        )

    def release(self, admission: Admission) -> None:
        if admission.released or not isinstance(admission, _LocalAdmission):
            return
        admission.released = True
        for slot in admission.acquired:
            slot.release()

    def record_usage(
        self,
        admission: Admission,
        input_tokens: int,
        output_tokens: int,
        now: float,
        cached_tokens: int = 0,
    ) -> None:
        if not isinstance(admission, _LocalAdmission) or not admission.states:
            return
        total = max(input_tokens, 0) + max(output_tokens, 0)
        spends = any(st.day is not None or st.month is not None for st in admission.states)
        price = self._pricing(admission.provider, admission.model) if spends else None
        usd = cost_usd(max(input_tokens, 0), max(output_tokens, 0), price, cached_tokens)
        d_tokens = total - admission.tokens
        d_usd = usd - admission.usd
        for st in admission.states:
            if st.tokens is not None and d_tokens:
                st.tokens.adjust(d_tokens, now)
            if d_usd:
                if st.day is not None:
                    st.day.add(d_usd, now)
                if st.month is not None:
                    st.month.add(d_usd, now)
        admission.tokens = total
        admission.usd = usd

    # -- introspection (tests, the admin listener) -----------------------------------------

    def in_use(self, scope: str) -> int:
        """Concurrency slots held in ``scope`` ("key:ci-bot"); 0 when it has no such limit."""
        state = self._states.get(scope)
        if state is None or state.concurrency is None:
            return 0
        return state.concurrency.in_use

    def spent_usd(self, scope: str, now: float) -> tuple[float | None, float | None]:
        """(today's, this month's) spend in ``scope``; None where it has no such limit."""
        state = self._states.get(scope)
        if state is None:
            return None, None
        day = state.day.spent(now) if state.day is not None else None
        month = state.month.spent(now) if state.month is not None else None
        return day, month

    def __len__(self) -> int:
        return len(self._states)
