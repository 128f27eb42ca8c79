"""GCRA, the generic cell rate algorithm: a token bucket kept as one timestamp.

How this works: a limit of ``rate`` units per ``period_s`` pays off one unit every
``interval_s = period_s / rate``. The state is the theoretical arrival time ``tat``: the moment
the bucket would be empty again if nothing more were taken. Taking ``cost`` units moves it to
``max(tat, now) + cost * interval_s``. A take conforms while the debt that leaves,
``new_tat - now``, stays within the tolerance ``burst * interval_s`` (a full bucket). When it
does not, the caller waits exactly ``new_tat - now - tolerance`` seconds: by then enough has
been paid off.

Guarantee: in any window of ``w`` seconds the admitted units total at most
``burst + rate * w / period_s`` (the bucket's depth plus what the window pays off), provided
each take is at most ``burst``.

Token limits: a request's tokens are known only after the response (the provider reports
usage, at the end of a stream). Junction debits an estimate at admission (the request's input
tokens, counted locally) and corrects with ``adjust`` once the provider's usage is known: more
tokens than estimated put the bucket in debt (later requests wait longer), fewer give the
difference back. Debiting at admission keeps a burst of concurrent requests honest (each sees
the others' estimates), which admitting on "not in debt" would not. A take larger than the
whole bucket (a 250k-token prompt under a 200k-per-minute limit) would never conform; it is
admitted once the bucket is full, and its whole cost is then debited as debt.

Pure: time comes in as ``now``; no clock is read here.
"""

from __future__ import annotations

from typing import Final

# Float rounding slack when comparing times: a caller that waits exactly the retry time
# must conform.
EPSILON_S: Final = 1e-9


class Gcra:
    __slots__ = ("_tat", "burst", "interval_s", "period_s", "rate", "tolerance_s")

    def __init__(self, rate: float, period_s: float, burst: float | None = None) -> None:
        if rate <= 0 or period_s <= 0:
            raise ValueError("rate and period_s must be positive")
        if burst is not None and burst <= 0:
            raise ValueError("burst must be positive")
        self.rate = rate
        self.period_s = period_s
        self.burst = rate if burst is None else burst
        self.interval_s = period_s / rate
        self.tolerance_s = self.burst * self.interval_s
        self._tat = float("-inf")

    def same_shape(self, other: Gcra) -> bool:
        return (self.rate, self.period_s, self.burst) == (other.rate, other.period_s, other.burst)

    def wait_s(self, cost: float, now: float) -> float:
        """0 when taking ``cost`` now conforms; else the seconds until it would."""
        cost = min(cost, self.burst)
        new_tat = max(self._tat, now) + cost * self.interval_s
        over = new_tat - now - self.tolerance_s
        return over if over > EPSILON_S else 0.0

    def debit(self, cost: float, now: float) -> None:
        """Take ``cost`` units (after ``wait_s`` said it conforms)."""
        self._tat = max(self._tat, now) + cost * self.interval_s

    def take(self, cost: float, now: float) -> float:
        """Take ``cost`` when it conforms and answer 0; else take nothing and answer the wait."""
        wait = self.wait_s(cost, now)
        if wait == 0.0:
            self.debit(cost, now)
        return wait

    def adjust(self, delta: float, now: float) -> None:
        """Correct an earlier debit by ``delta`` units: positive is debt, negative a refund.
        A refund never leaves more than a full bucket (``max(tat, now)`` when taking)."""
        if delta > 0:
            self._tat = max(self._tat, now) + delta * self.interval_s
        elif delta < 0:
            self._tat += delta * self.interval_s

    def available(self, now: float) -> float:
        """Units that could be taken now (the bucket's content; negative while in debt)."""
        debt_s = max(self._tat - now, 0.0)
        return (self.tolerance_s - debt_s) / self.interval_s
