"""The typed result of one upstream attempt, as breakers and outlier detection count it.

`classify` turns what the router saw (the response status, the error that ended the attempt,
the time to the first response byte) into an `Outcome`. Only upstream faults count against a
deployment: a client error (a 400 or 404 the request earned) says nothing about the provider's
health and would fail the same way anywhere, so it never opens a breaker or ejects a host.
A 429 is the provider's quota, not a fault: it is kept out of the failure counts too (the
retry layer honours its reset headers instead).

The error wins over the status: a 200 whose stream was then reset is a reset. A local-origin
failure (connect, reset, timeout) is told apart from an upstream-origin one (a 5xx, a broken
response) because outlier detection counts the two separately, as Envoy does.
"""

from __future__ import annotations

import enum
from typing import Final

from proxy.errors import (
    BadRequestError,
    DownstreamDisconnectError,
    ProxyError,
    ShuttingDownError,
    UpstreamBadResponseError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamOverflowError,
    UpstreamResetError,
    UpstreamTimeoutError,
)

# A success whose first byte came later than this counts as slow (the config's default).
SLOW_CALL_S: Final = 30.0


class Outcome(enum.Enum):
    SUCCESS = "success"
    SLOW = "slow"  # a success slower than the slow-call threshold
    CLIENT_ERROR = "client_error"  # a 4xx other than 408 and 429: the request's fault
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx (529 overloaded included), 408, a broken response
    CONNECT_FAILURE = "connect_failure"  # refused, DNS, TLS: nothing reached the provider
    RESET = "reset"  # the connection or stream was cut
    TIMEOUT = "timeout"  # our deadline passed (first byte, stream idle)
    # Ended for a reason that says nothing about the deployment: the client went away,
    # Junction is shutting down, a local limit (pool queue full), a lost hedge.
    ABANDONED = "abandoned"

    # Members are singletons compared by identity; Enum's own __hash__ is a Python function
    # that hashes the name, paid on every breaker update.
    __hash__ = object.__hash__

    @property
    def failure(self) -> bool:
        """Counts against the deployment (breaker and outlier detection)."""
        return self in _FAILURES

    @property
    def local_origin(self) -> bool:
        """A failure Junction observed on the connection rather than an answer it got."""
        return self in _LOCAL

    @property
    def success(self) -> bool:
        """The deployment answered properly (slowly, perhaps)."""
        return self is Outcome.SUCCESS or self is Outcome.SLOW


# Read per attempt (attempt records): a dict lookup, where ``.value`` is a Python property.
OUTCOME_NAMES: Final = {o: o.value for o in Outcome}

_LOCAL: Final = frozenset({Outcome.CONNECT_FAILURE, Outcome.RESET, Outcome.TIMEOUT})
_FAILURES: Final = _LOCAL | {Outcome.SERVER_ERROR}


def classify(
    status: int | None,
    error: ProxyError | None,
    duration_s: float,
    *,
    slow_call_s: float = SLOW_CALL_S,
) -> Outcome:
    """The outcome of an attempt that got ``status`` (None: no response head) and ended with
    ``error`` (None: it ended normally). ``duration_s`` is the time to the first response
    byte: a long generation is not a slow deployment, a late first token is."""
    if error is not None:
        return _of_error(error)
    if status is None:
        return Outcome.ABANDONED  # neither an answer nor an error: nothing was observed
    if status >= 500 or status == 408:
        return Outcome.SERVER_ERROR
    if status == 429:
        return Outcome.RATE_LIMITED
    if status >= 400:
        return Outcome.CLIENT_ERROR
    return Outcome.SLOW if duration_s > slow_call_s else Outcome.SUCCESS


def _of_error(error: ProxyError) -> Outcome:
    # Order matters: the overflow is an UpstreamError raised by our own pool.
    if isinstance(error, UpstreamOverflowError | DownstreamDisconnectError | ShuttingDownError):
        return Outcome.ABANDONED
    if isinstance(error, UpstreamConnectError):
        return Outcome.CONNECT_FAILURE
    if isinstance(error, UpstreamTimeoutError):
        return Outcome.TIMEOUT
    if isinstance(error, UpstreamResetError):
        return Outcome.RESET
    if isinstance(error, UpstreamError | UpstreamBadResponseError):
        return Outcome.SERVER_ERROR  # a protocol error, garbage, an in-band error event
    if isinstance(error, BadRequestError):
        return Outcome.CLIENT_ERROR  # the request could not be translated, say
    return Outcome.ABANDONED
