"""Upstream health: typed attempt outcomes, adaptive circuit breakers per candidate, Envoy-style
outlier ejection per deployment, and the `HealthBook` that holds both for the router.

Everything here is sans-I/O: the caller passes ``now`` (a monotonic clock reading) into every
call, so the state machines are tested under a fake clock. docs/resilience.md has the states,
thresholds and formulas.
"""

from __future__ import annotations

from proxy.resilience.breaker import BreakerState, CircuitBreaker
from proxy.resilience.health import MAX_TRACKED_KEYS, HealthBook
from proxy.resilience.outcome import Outcome, classify
from proxy.resilience.outlier import OutlierDetector

__all__ = [
    "MAX_TRACKED_KEYS",
    "BreakerState",
    "CircuitBreaker",
    "HealthBook",
    "Outcome",
    "OutlierDetector",
    "classify",
]
