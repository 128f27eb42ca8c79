"""The limiter contract: what the limit filter asks, whichever backend answers.

How this works: before a request goes upstream the filter calls ``admit`` once with the
request's scopes (the API key's name or None, the model and the provider it is expected to go
to) and a token estimate. The answer is an `Admission` (a ticket for everything debited) or a
`Rejection` (how long to wait, which scope refused, a message for the client). When the stream
ends the filter calls ``release`` (frees concurrency slots) and, when the provider reported
usage, ``record_usage`` with the real token counts, which corrects what the estimate debited.

``now`` is wall-clock Unix time in seconds. Spend windows are calendar UTC days and months,
and a shared backend (Redis) cannot share a process's monotonic clock, so one time base serves
every backend. A backend may answer ``admit`` with an awaitable (a network round trip); the
in-process backend answers at once, so the common path creates no coroutine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Unit rates, and the one window the per-minute limits are defined over.
MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """The limits of one scope. None: that limit is off."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None
    spend_per_day_usd: float | None = None
    spend_per_month_usd: float | None = None

    @property
    def empty(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.concurrent is None
            and self.spend_per_day_usd is None
            and self.spend_per_month_usd is None
        )

    @property
    def counts_tokens(self) -> bool:
        """Whether admitting against this spec needs a token estimate."""
        return (
            self.tokens_per_minute is not None
            or self.spend_per_day_usd is not None
            or self.spend_per_month_usd is not None
        )


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Every configured scope: API keys by name, models by name, providers by name."""

    keys: Mapping[str, LimitSpec] = field(default_factory=dict)
    models: Mapping[str, LimitSpec] = field(default_factory=dict)
    providers: Mapping[str, LimitSpec] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(
            not spec.empty
            for scopes in (self.keys, self.models, self.providers)
            for spec in scopes.values()
        )


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input_usd: float
    output_usd: float
    cached_usd: float | None = None  # input read from the prompt cache; None: input_usd


# (provider, model) -> its price, or None when unknown (then it costs nothing against spend).
Pricing = Callable[[str, str], ModelPrice | None]


def no_prices(provider: str, model: str) -> ModelPrice | None:
    return None


@dataclass(frozen=True, slots=True)
class Rejection:
    retry_after_s: float  # when the refused limit admits again (concurrency: a short guess)
    scope: str  # "key:ci-bot", "model:claude-opus-4-8", "provider:anthropic"
    message: str  # for the client; never holds a key


class Admission:
    """What one admitted request holds: slots to release and the estimate to correct.

    ``tokens`` and ``usd`` are what was debited so far; ``record_usage`` moves them to the
    reported figures. A backend subclasses it to keep its own handles."""

    __slots__ = ("key", "model", "provider", "released", "tokens", "usd")

    def __init__(self, key: str | None, model: str, provider: str, tokens: int, usd: float) -> None:
        self.key = key
        self.model = model
        self.provider = provider
        self.tokens = tokens
        self.usd = usd
        self.released = False


AdmitResult = Admission | Rejection


class Limiter(Protocol):
    """A limits backend. One instance per worker; it outlives config reloads."""

    def configure(self, settings: LimitSettings, pricing: Pricing) -> None:
        """Apply new limits; state of scopes that stay is kept."""
        ...

    @property
    def active(self) -> bool:
        """False when nothing is limited: the filter then skips admission."""
        ...

    def counts_tokens(self, key: str | None, model: str, provider: str) -> bool:
        """Whether ``admit`` for these scopes uses the token estimate (else pass 0)."""
        ...

    def admit(
        self, key: str | None, model: str, provider: str, est_tokens: int, now: float
    ) -> AdmitResult | Awaitable[AdmitResult]: ...

    def release(self, admission: Admission) -> None:
        """Free what ``admit`` took for the duration (concurrency). Idempotent."""
        ...

    def record_usage(
        self,
        admission: Admission,
        input_tokens: int,
        output_tokens: int,
        now: float,
        cached_tokens: int = 0,
    ) -> None:
        """The provider's usage, cumulative for the request: corrects the debited estimate.
        May be called again with larger figures (a stream reporting as it goes).
        ``cached_tokens`` of the input were read from the prompt cache (priced apart)."""
        ...
