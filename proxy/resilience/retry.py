"""Retries of one candidate: when, after how long, and how many the worker allows at once.

How this works: the router falls back to the next candidate at once when one fails before
anything reached the client. When no candidate is left, `RetryPolicy.delay` says whether the
last one may be tried again and after how long: exponential backoff with full jitter
(``random(0, min(cap, base * 2**n))``), or the provider's own hint when it gave one
(``retry-after`` in seconds or as an HTTP date, ``retry-after-ms``, Anthropic's
``anthropic-ratelimit-*-reset`` and OpenAI's ``x-ratelimit-reset-*``), capped. A hint over
the cap means "not now": the client gets the provider's answer and its ``retry-after``.

`RetryBudget` keeps retries (and fallbacks) to a share of the requests in flight, Envoy
style, so an outage is never multiplied: with 100 requests in flight and a 20 % budget, at
most 20 are retrying at any moment (never fewer than ``min_concurrent``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Final

# Provider reset hints, in the order they are believed (the most specific first).
_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)
MAX_HINT_S: Final = 24 * 3600.0  # a hint beyond a day is nonsense and ignored


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 1  # tries of the same candidate after the first, when no fallback is left
    base_s: float = 0.25
    cap_s: float = 5.0  # longest wait; a provider hint beyond it is not waited for

    def delay(self, retry: int, hint_s: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None: do not retry."""
        if retry > self.max_retries:
            return None
        if hint_s is not None:
            return hint_s if hint_s <= self.cap_s else None
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2 ** (retry - 1))))


class RetryBudget:
    """Retries in flight at most ``ratio`` of the requests in flight (or ``min_concurrent``)."""

    __slots__ = ("active_requests", "active_retries", "min_concurrent", "ratio", "refused")

    def __init__(self, ratio: float = 0.2, min_concurrent: int = 3) -> None:
        self.ratio = ratio
        self.min_concurrent = min_concurrent
        self.active_requests = 0
        self.active_retries = 0
        self.refused = 0  # retries the budget turned down, for /stats

    def has_room(self) -> bool:
        """Whether one more retry fits now (takes nothing)."""
        return self.active_retries < max(
            self.min_concurrent, int(self.ratio * self.active_requests)
        )

    def try_acquire(self) -> bool:
        if not self.has_room():
            self.refused += 1
            return False
        self.active_retries += 1
        return True

    def release(self) -> None:
        self.active_retries = max(self.active_retries - 1, 0)


def reset_hint(headers: Iterable[tuple[bytes, bytes]], now_unix: float) -> float | None:
    """Seconds until the provider says to come back, from its response headers; None when it
    did not say (or said something unreadable)."""
    found: dict[bytes, bytes] = {}
    for k, v in headers:
        if (
            k in (b"retry-after-ms", b"retry-after")
            or (k.startswith(b"anthropic-ratelimit-") and k.endswith(b"-reset"))
            or k.startswith(b"x-ratelimit-reset-")
        ):
            found.setdefault(k, v)
    value = found.get(b"retry-after-ms")
    if value is not None:
        ms = _number(value)
        if ms is not None:
            return _sane(ms / 1000.0)
    value = found.get(b"retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            seconds = _http_date(value, now_unix)
        if seconds is not None:
            return _sane(seconds)
    waits: list[float] = []
    for k, v in found.items():
        if k.startswith(b"anthropic-ratelimit-"):
            when = _rfc3339(v)
            if when is not None:
                waits.append(when - now_unix)
        elif k.startswith(b"x-ratelimit-reset-"):
            wait = _duration(v)
            if wait is not None:
                waits.append(wait)
    # Several limits may be exhausted; the soonest reset is when a retry may succeed.
    positive = [w for w in waits if w >= 0]
    return _sane(min(positive)) if positive else None


def _sane(seconds: float) -> float | None:
    return seconds if 0 <= seconds <= MAX_HINT_S else None


def _number(value: bytes) -> float | None:
    try:
        n = float(value.strip())
    except ValueError:
        return None
    return n if n == n else None  # NaN is no number


def _http_date(value: bytes, now_unix: float) -> float | None:
    try:
        when = parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - now_unix


def _rfc3339(value: bytes) -> float | None:
    text = value.decode("latin-1").strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _duration(value: bytes) -> float | None:
    """OpenAI's ``6m0s`` / ``1s`` / ``250ms`` / ``0.5s`` reset durations."""
    text = value.decode("latin-1").strip()
    if not text:
        return None
    m = _DURATION.match(text)
    if m is None:
        return _number(value)
    h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000.0
