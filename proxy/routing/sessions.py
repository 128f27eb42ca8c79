"""Per-session memory of the last turn's input tokens, for the long-context rule.

claude-code-router keeps the last response's ``usage`` per session and sends a session to the
long-context route while its previous turn was over the threshold and the current one is
over 20,000 tokens (see ``scenarios.detect``). ``SessionUsage`` is that memory: a bounded
map from session id to input tokens, oldest write first (an ``OrderedDict``).

Recency is by write: every turn ends with a ``put`` for its session, so write order is use
order, and because each write also restarts the entry's time to live, the front of the map
is always the entry that expires first. That keeps every operation O(1): ``put`` drops
expired entries from the front, then the oldest ones beyond MAX_SESSIONS; ``get`` drops the
entry it finds expired. Time comes from an injected clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

MAX_SESSIONS: Final = 10_000
SESSION_TTL_S: Final = 3600.0


class SessionUsage:
    __slots__ = ("_clock", "_entries", "_max_sessions", "_ttl_s")

    def __init__(
        self,
        *,
        max_sessions: int = MAX_SESSIONS,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._max_sessions = max_sessions
        self._ttl_s = ttl_s
        self._clock = clock
        # session -> (input tokens, expiry time); ordered by write, oldest first
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session: str) -> int | None:
        """The input tokens of the session's last turn, or None (unknown or expired)."""
        entry = self._entries.get(session)
        if entry is None:
            return None
        tokens, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[session]
            return None
        return tokens

    def put(self, session: str, input_tokens: int) -> None:
        """Remember the input tokens of the session's latest turn."""
        now = self._clock()
        entries = self._entries
        entries[session] = (input_tokens, now + self._ttl_s)
        entries.move_to_end(session)
        # Expired entries sit at the front (see the module docstring); then enforce the bound.
        while entries:
            _, (_, expires_at) = next(iter(entries.items()))
            if expires_at > now:
                break
            entries.popitem(last=False)
        while len(entries) > self._max_sessions:
            entries.popitem(last=False)
