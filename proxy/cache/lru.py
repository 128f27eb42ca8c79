"""L1: the in-process LRU of cache entries, bounded by entry count and total bytes. Sans-I/O:
every call takes ``now`` (wall-clock seconds, the same clock the entries' expiry uses).

A lookup moves the entry to the most-recent end; an expired entry is dropped when met. An
insert evicts from the least-recent end until both bounds hold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from proxy.cache.entry import CacheEntry


class EntryLru:
    __slots__ = (
        "_entries",
        "bytes",
        "evictions_total",
        "expired_total",
        "max_bytes",
        "max_entries",
    )

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self.bytes = 0
        self.evictions_total = 0
        self.expired_total = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_wall_s <= now:
            self._drop(key)
            self.expired_total += 1
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        if entry.size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        self._shrink()

    def resize(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._shrink()

    def _shrink(self) -> None:
        entries = self._entries
        while entries and (len(entries) > self.max_entries or self.bytes > self.max_bytes):
            _, old = entries.popitem(last=False)
            self.bytes -= old.size
            self.evictions_total += 1

    def _drop(self, key: str) -> None:
        old = self._entries.pop(key)
        self.bytes -= old.size

    def remove(self, key: str, entry: CacheEntry) -> None:
        if self._entries.get(key) is entry:
            self._drop(key)

    def purge(self, match: Callable[[CacheEntry], bool]) -> int:
        gone = [k for k, e in self._entries.items() if match(e)]
        for k in gone:
            self._drop(k)
        return len(gone)
