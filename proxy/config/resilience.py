"""The `resilience:` section: circuit breakers per candidate and outlier ejection per deployment.

docs/resilience.md explains each key; proxy/resilience/ implements them. The sections follow
proxy/config/model.py's rules (unknown keys fail, values are frozen). The base is restated here
rather than imported: model.py imports this module for `JunctionConfig`, so importing model.py
back would be circular.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]
Rate = Annotated[float, Field(gt=0, le=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Percent = Annotated[float, Field(ge=0, le=100)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Section(BaseModel):
    # The same settings as proxy.config.model._Section (see the module docstring).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class BreakerConfig(_Section):
    """One circuit breaker per candidate (provider/deployment/model)."""

    enabled: bool = True
    consecutive_failures: PositiveInt = 5  # opens after this many failures in a row
    failure_rate: Rate = 0.5  # opens at this share of failures in the window (before adapting)
    # How far a high long-run failure rate tightens the threshold:
    # threshold = failure_rate * (1 - adaptive * long_run_failure_rate); 0 keeps it fixed.
    adaptive: Fraction = 0.5
    window_calls: PositiveInt = 20  # the window holds the last this-many results...
    window_s: Seconds = 30.0  # ...of at most this age
    min_calls: PositiveInt = 10  # rates apply once the window holds this many results
    slow_call_s: Seconds = 30.0  # a success whose first byte took longer is slow
    slow_call_rate: Rate = 0.8  # opens at this share of slow results in the window
    open_s: Seconds = 5.0  # the first opening; doubles with each re-opening...
    max_open_s: Seconds = 120.0  # ...up to this
    open_backoff_reset_s: Seconds = 300.0  # closed this long: the next opening is short again
    half_open_probes: PositiveInt = 1  # concurrent trial requests while half-open
    close_after: PositiveInt = 2  # successful probes that close it

    @model_validator(mode="after")
    def _check(self) -> BreakerConfig:
        if self.min_calls > self.window_calls:
            raise ValueError(
                f"min_calls ({self.min_calls}) must not exceed window_calls "
                f"({self.window_calls}): the rates would never apply"
            )
        if self.max_open_s < self.open_s:
            raise ValueError(f"max_open_s ({self.max_open_s:g}) is below open_s ({self.open_s:g})")
        return self


class OutlierConfig(_Section):
    """Envoy-style outlier detection: a provider is the cluster, its deployments the hosts."""

    enabled: bool = True
    consecutive_5xx: PositiveInt = 5  # upstream-origin failures in a row
    consecutive_local_failures: PositiveInt = 5  # connect failures, resets, timeouts in a row
    base_ejection_s: Seconds = 30.0  # ejection time = this x times ejected...
    max_ejection_s: Seconds = 300.0  # ...capped here
    max_ejection_percent: Percent = 50.0  # share of a provider's deployments ejected at once

    @model_validator(mode="after")
    def _check(self) -> OutlierConfig:
        if self.max_ejection_s < self.base_ejection_s:
            raise ValueError(
                f"max_ejection_s ({self.max_ejection_s:g}) is below base_ejection_s "
                f"({self.base_ejection_s:g})"
            )
        return self


class RetryConfig(_Section):
    """Tries after the first: fallbacks to the route's next candidates, then retries of the
    last one with backoff (proxy/resilience/retry.py). Only before anything reached the
    client."""

    max_attempts: PositiveInt = 4  # attempts for one request, fallbacks and retries together
    max_retries: NonNegativeInt = 1  # retries of the last candidate (Claude Code retries too)
    base_backoff_s: Seconds = 0.25  # full jitter: random(0, min(max, base * 2**n))
    max_backoff_s: Seconds = 5.0  # a provider's retry-after beyond this is not waited for
    budget_ratio: Fraction = 0.2  # retries in flight at most this share of requests in flight
    budget_min_concurrent: NonNegativeInt = 3  # ...and always at least this many
    # A 429 cools its candidate down until the provider's reset (its headers), capped here;
    # without a reset header, for cooldown_default_s. Cooled candidates are tried last.
    cooldown_max_s: Seconds = 60.0
    cooldown_default_s: Annotated[float, Field(ge=0)] = 1.0


class ResilienceConfig(_Section):
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    outlier: OutlierConfig = Field(default_factory=OutlierConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
