"""An adaptive circuit breaker for one candidate (provider/deployment/model). Sans-I/O: every
call takes ``now``, a monotonic clock reading.

How this works. CLOSED lets everything through and keeps a window of recent results: the last
``window_calls`` results that are at most ``window_s`` old (count-bounded and time-limited, so
a quiet deployment is not judged on hour-old results). It opens when

- ``consecutive_failures`` failures come in a row, or
- the window holds at least ``min_calls`` results and the failure share reaches the adaptive
  threshold ``failure_rate * (1 - adaptive * long_run)``, where ``long_run`` is an EWMA of
  failures (1) and successes (0) over about `LONG_RUN_SPAN_CALLS` results — longer than the
  window, so a deployment that has been failing for a while is given less rope; or
- as many results are in the window and the share of slow successes reaches
  ``slow_call_rate``.

Only `Outcome.failure` results count as failures; client errors, 429s and abandoned attempts
are not counted at all. OPEN refuses everything for the open time, ``open_s * 2**(k-1)`` for
the k-th opening in a row, capped at ``max_open_s``; k goes back to 1 once the breaker has
stayed closed for ``open_backoff_reset_s``. Then HALF_OPEN (entered lazily, at the first call
made after the open time) admits at most ``half_open_probes`` concurrent probes: a probe that
fails or is slow opens it again (for longer), ``close_after`` successful ones close it.

The selection's health check must be cheap, so the breaker keeps ``blocked_until``: requests are
admitted exactly when ``now >= blocked_until`` (-inf while closed, the end of the open time,
+inf-like while every probe slot is taken). `allow` is that one compare and never changes state.

A request claims its admission with `on_attempt_start`, which returns a ticket (None: refused)
that `on_result` gets back. The ticket is the state's epoch: a result whose attempt started
before the breaker opened does not count as a probe. A probe that never reports is forgotten
after `PROBE_LEASE_S`, so a lost result cannot wedge the breaker half-open.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from typing import Final

from proxy.config.resilience import BreakerConfig
from proxy.resilience.outcome import Outcome

LONG_RUN_SPAN_CALLS: Final = 100
LONG_RUN_ALPHA: Final = 2.0 / (LONG_RUN_SPAN_CALLS + 1)  # the usual span-N EWMA weight
PROBE_LEASE_S: Final = 900.0  # longer than any first-byte or idle timeout one attempt has
_MAX_DOUBLINGS: Final = 40  # 2**40 x any open_s is past any max_open_s; keeps floats finite
_NEVER: Final = -math.inf


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    __hash__ = object.__hash__  # identity, as for Outcome: Enum's own is a Python function


# Read per request by the access log: a dict lookup, where ``.value`` is a Python property.
STATE_NAMES: Final = {s: s.value for s in BreakerState}


Ticket = int  # the state epoch an admitted attempt started in


class CircuitBreaker:
    """See the module docstring."""

    __slots__ = (
        "_closed_since",
        "_consecutive",
        "_epoch",
        "_failures",
        "_open_until",
        "_probe_successes",
        "_probes",
        "_slow",
        "_state",
        "_window",
        "backoff_level",
        "blocked_until",
        "config",
        "last_open_s",
        "long_run",
        "opens_total",
        "reason",
        "totals",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.blocked_until = _NEVER  # admitted iff now >= blocked_until
        self._state = BreakerState.CLOSED
        self._epoch = 0
        self._window: deque[tuple[float, bool, bool]] = deque()  # (time, failed, slow)
        self._failures = 0  # failed results in the window
        self._slow = 0  # slow results in the window
        self._consecutive = 0
        self.long_run = 0.0  # EWMA of failures, the adaptive part of the threshold
        self.backoff_level = 0  # openings in a row: the open time's exponent
        self.opens_total = 0
        self.last_open_s = 0.0  # how long the latest opening lasts
        self.reason = ""  # why it opened last
        self._open_until = 0.0
        self._closed_since = _NEVER
        self._probes: list[float] = []  # start times of the probes in flight, oldest first
        self._probe_successes = 0
        self.totals: dict[Outcome, int] = {}

    # -- reads -----------------------------------------------------------------------------

    def allow(self, now: float) -> bool:
        """Whether a request may go to this candidate now. Changes nothing."""
        return now >= self.blocked_until

    @property
    def state(self) -> BreakerState:
        """The state as of the last call (an expired OPEN turns HALF_OPEN at the next one)."""
        return self._state

    def state_at(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now >= self._open_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def probes_in_flight(self) -> int:
        return len(self._probes)

    def threshold(self) -> float:
        """The failure-rate threshold now: tighter after a long run of failures."""
        cfg = self.config
        return cfg.failure_rate * (1.0 - cfg.adaptive * self.long_run)

    def idle(self) -> bool:
        """Closed with nothing held against it: forgetting it loses nothing that matters."""
        return self._state is BreakerState.CLOSED and self._failures == 0 and self._consecutive == 0

    # -- feedback --------------------------------------------------------------------------

    def on_attempt_start(self, now: float) -> Ticket | None:
        """A request is about to go to this candidate: its ticket, or None when the breaker
        refuses it (open, or every half-open probe slot taken). Half-open, this claims a
        probe slot, which `on_result` releases."""
        self._advance(now)
        state = self._state
        if state is BreakerState.CLOSED:
            return self._epoch
        if state is BreakerState.OPEN:
            return None
        probes = self._probes
        while probes and probes[0] + PROBE_LEASE_S <= now:
            probes.pop(0)  # a probe that never reported
        if len(probes) >= self.config.half_open_probes:
            self._block_probes()
            return None
        probes.append(now)
        self._block_probes()
        return self._epoch

    def on_result(self, outcome: Outcome, now: float, ticket: Ticket) -> None:
        """The attempt admitted with ``ticket`` ended with ``outcome``."""
        self.totals[outcome] = self.totals.get(outcome, 0) + 1
        if not self.config.enabled:
            return
        self._advance(now)
        state = self._state
        if state is BreakerState.OPEN:
            return  # it started before the breaker opened: already judged
        failed = outcome.failure
        counted = failed or outcome.success
        if state is BreakerState.HALF_OPEN:
            if ticket != self._epoch:
                return  # started before the breaker opened: not a probe
            if self._probes:
                self._probes.pop(0)
            if counted:
                self._learn(failed)
            if failed:
                self._open(now, f"probe failed ({outcome.value})")
            elif outcome is Outcome.SLOW:
                self._open(now, "probe slow")
            elif outcome is Outcome.SUCCESS:
                self._probe_successes += 1
                if self._probe_successes >= self.config.close_after:
                    self._close(now)
                    return
            if self._state is BreakerState.HALF_OPEN:
                self._block_probes()
            return
        if not counted:
            return
        self._learn(failed)
        slow = outcome is Outcome.SLOW
        self._record(now, failed, slow)
        cfg = self.config
        if failed:
            self._consecutive += 1
            if self._consecutive >= cfg.consecutive_failures:
                self._open(now, f"{self._consecutive} consecutive failures")
                return
        else:
            self._consecutive = 0
        calls = len(self._window)
        if calls < cfg.min_calls:
            return
        if failed:
            rate, limit = self._failures / calls, self.threshold()
            if rate >= limit:
                self._open(now, f"failure rate {rate:.2f} >= {limit:.2f} over {calls} calls")
        elif slow:
            rate = self._slow / calls
            if rate >= cfg.slow_call_rate:
                self._open(now, f"slow-call rate {rate:.2f} over {calls} calls")

    def reconfigure(self, config: BreakerConfig, now: float) -> None:
        """Take a reloaded config, keeping what was measured."""
        self.config = config
        window = self._window
        while len(window) > config.window_calls:
            self._forget()
        if not config.enabled and self._state is not BreakerState.CLOSED:
            self._close(now)
        elif self._state is BreakerState.HALF_OPEN:
            self._block_probes()

    # -- the admin view --------------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, object]:
        state = self.state_at(now)
        horizon = now - self.config.window_s
        live = [(failed, slow) for t, failed, slow in self._window if t > horizon]
        calls = len(live)
        failures = sum(1 for failed, _ in live if failed)
        return {
            "state": state.value,
            "consecutive_failures": self._consecutive,
            "window": {
                "calls": calls,
                "failures": failures,
                "slow": sum(1 for _, slow in live if slow),
            },
            "failure_rate": round(failures / calls, 4) if calls else None,
            "threshold": round(self.threshold(), 4),
            "long_run_failure_rate": round(self.long_run, 4),
            "opens_total": self.opens_total,
            "backoff_level": self.backoff_level,
            "open_remaining_s": (
                round(self._open_until - now, 3) if state is BreakerState.OPEN else 0.0
            ),
            "probes_in_flight": len(self._probes) if state is BreakerState.HALF_OPEN else 0,
            "probe_successes": self._probe_successes if state is BreakerState.HALF_OPEN else 0,
            "last_open_reason": self.reason or None,
            "outcomes": {o.value: n for o, n in self.totals.items()},
        }

    # -- internals -------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if self._state is BreakerState.OPEN and now >= self._open_until:
            self._state = BreakerState.HALF_OPEN
            self._epoch += 1
            self._probes.clear()
            self._probe_successes = 0
            self.blocked_until = _NEVER

    def _block_probes(self) -> None:
        probes = self._probes
        if len(probes) >= self.config.half_open_probes:
            self.blocked_until = probes[0] + PROBE_LEASE_S
        else:
            self.blocked_until = _NEVER

    def _learn(self, failed: bool) -> None:
        self.long_run += LONG_RUN_ALPHA * ((1.0 if failed else 0.0) - self.long_run)

    def _record(self, now: float, failed: bool, slow: bool) -> None:
        window = self._window
        horizon = now - self.config.window_s
        while window and window[0][0] <= horizon:
            self._forget()
        if len(window) >= self.config.window_calls:
            self._forget()
        window.append((now, failed, slow))
        self._failures += failed
        self._slow += slow

    def _forget(self) -> None:
        _, failed, slow = self._window.popleft()
        self._failures -= failed
        self._slow -= slow

    def _reset_window(self) -> None:
        self._window.clear()
        self._failures = self._slow = self._consecutive = 0
        self._probes.clear()
        self._probe_successes = 0

    def _open(self, now: float, reason: str) -> None:
        cfg = self.config
        if (
            self._state is BreakerState.CLOSED
            and now - self._closed_since >= cfg.open_backoff_reset_s
        ):
            self.backoff_level = 0  # a fresh problem, not the old one coming back
        self.backoff_level += 1
        exponent = min(self.backoff_level - 1, _MAX_DOUBLINGS)
        self.last_open_s = min(cfg.max_open_s, cfg.open_s * 2.0**exponent)
        self._open_until = now + self.last_open_s
        self._state = BreakerState.OPEN
        self._epoch += 1
        self._reset_window()
        self.opens_total += 1
        self.reason = reason
        self.blocked_until = self._open_until

    def _close(self, now: float) -> None:
        self._state = BreakerState.CLOSED
        self._epoch += 1
        self._closed_since = now
        self._reset_window()
        self.blocked_until = _NEVER
