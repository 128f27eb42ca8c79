"""Spend in USD per calendar UTC day and month, from token usage and per-model prices.

How this works: a `SpendWindow` holds the USD spent in its current window and the window's
index (days or months since the Unix epoch, in UTC). Every read or write first rolls the
window: a new index starts again from zero, so no timer or sweep is needed. A limit is a
ceiling on what was spent before the request: while the window's spend is below it, requests
are admitted (the one that crosses it completes), and from then on they are refused until
the next window begins, which is also the ``retry-after``.

Prices are USD per million tokens (proxy/routing/catalog.py, overridden per provider with
``model_info``). A model without a known price costs nothing here.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from proxy.limits.api import ModelPrice

DAY_S = 86_400
Period = Literal["day", "month"]


def day_index(now: float) -> int:
    """Days since 1970-01-01 UTC."""
    return int(now // DAY_S)


def month_index(now: float) -> int:
    """Months since January 1970, UTC."""
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    return (d.year - 1970) * 12 + d.month - 1


def window_index(period: Period, now: float) -> int:
    return day_index(now) if period == "day" else month_index(now)


def window_end(period: Period, now: float) -> float:
    """Unix time of the next UTC midnight, or of the first of the next month at 00:00 UTC."""
    if period == "day":
        return float((day_index(now) + 1) * DAY_S)
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()


def cost_usd(
    input_tokens: int, output_tokens: int, price: ModelPrice | None, cached_tokens: int = 0
) -> float:
    """USD for a request's usage: the one cost function of spend limits, usage totals, the
    access log, metrics and traces. ``cached_tokens`` are part of ``input_tokens``, priced at
    the cached-input price when the model has one."""
    if price is None:
        return 0.0
    usd = input_tokens * price.input_usd + output_tokens * price.output_usd
    if cached_tokens > 0 and price.cached_usd is not None:
        usd -= min(cached_tokens, input_tokens) * (price.input_usd - price.cached_usd)
    return usd / 1_000_000


class SpendWindow:
    __slots__ = ("_usd", "_window", "period")

    def __init__(self, period: Period) -> None:
        self.period: Period = period
        self._window = -1
        self._usd = 0.0

    def _roll(self, now: float) -> None:
        index = window_index(self.period, now)
        if index != self._window:
            self._window = index
            self._usd = 0.0

    def spent(self, now: float) -> float:
        self._roll(now)
        return self._usd

    def add(self, usd: float, now: float) -> None:
        """Count ``usd`` in the window ``now`` falls in. A negative amount (an estimate
        corrected down) never takes the window below zero."""
        self._roll(now)
        self._usd = max(self._usd + usd, 0.0)

    def wait_s(self, limit_usd: float, now: float) -> float:
        """0 while the window's spend is below ``limit_usd``; else seconds to its end."""
        if self.spent(now) < limit_usd:
            return 0.0
        return window_end(self.period, now) - now
