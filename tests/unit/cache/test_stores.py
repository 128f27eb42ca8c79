"""L1 bounds and TTL under a fake clock, the cache's store/lookup/purge, and flights."""

from __future__ import annotations

import asyncio

from proxy.cache.entry import CacheEntry
from proxy.cache.flight import Flight, FlightTable
from proxy.cache.lru import EntryLru
from proxy.cache.store import ResponseCache
from proxy.config.cache import CacheConfig


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(text: str = "x", size: int = 100, expires: float = 10**9) -> CacheEntry:
    e = CacheEntry(
        "anthropic", "msg_1", message={"id": "msg_1", "type": "message", "content": text}
    )
    e.size = size
    e.expires_wall_s = expires
    return e


def test_lru_evicts_least_recent_by_count_and_bytes() -> None:
    lru = EntryLru(max_entries=3, max_bytes=1000)
    for k in "abc":
        lru.put(k, entry())
    assert lru.get("a", 0) is not None  # a is now the most recent
    lru.put("d", entry())
    assert lru.get("b", 0) is None and len(lru) == 3 and lru.evictions_total == 1
    lru.put("big", entry(size=900))
    assert len(lru) == 2 and lru.bytes == 1000 and lru.evictions_total == 3
    lru.put("huge", entry(size=1001))  # larger than the whole cache: not kept
    assert lru.get("huge", 0) is None and lru.get("big", 0) is not None
    lru.put("big", entry(size=10))  # replacing updates the byte count
    assert lru.bytes == 110
    lru.resize(0 + 1, 5)
    assert len(lru) == 0 and lru.bytes == 0


def test_ttl_expiry_under_a_fake_clock() -> None:
    wall = FakeClock()
    cache = ResponseCache(CacheConfig(ttl_s=60), "fp", None, clock=FakeClock(), wall=wall)
    cache.store("team-a", "k1", entry(), 60.0)
    assert cache.lookup("k1") is not None
    wall.now += 59.9
    assert cache.lookup("k1") is not None
    wall.now += 0.2
    assert cache.lookup("k1") is None
    assert cache.l1.expired_total == 1 and len(cache.l1) == 0
    assert cache.stats.stores_total == 1


def test_store_refuses_entries_above_max_entry_bytes() -> None:
    cache = ResponseCache(CacheConfig(max_entry_bytes=256), "fp", None, wall=FakeClock())
    cache.store("t", "k", entry("y" * 300), 60.0)
    assert cache.lookup("k") is None and cache.stats.not_stored_total == 1


def test_purge_by_tenant_and_prefix() -> None:
    cache = ResponseCache(CacheConfig(), "fp", None, wall=FakeClock())
    cache.store("a", "aa11", entry(), 60)
    cache.store("a", "bb22", entry(), 60)
    cache.store("b", "aa33", entry(), 60)
    assert asyncio.run(cache.purge("a", "aa")) == {"l1_purged": 1}
    assert asyncio.run(cache.purge(None, "aa")) == {"l1_purged": 1}
    assert asyncio.run(cache.purge(None, "")) == {"l1_purged": 1}
    assert len(cache.l1) == 0


def test_policy_for_an_alias_and_the_default() -> None:
    cfg = CacheConfig(policy="off", routes={"evals": {"policy": "all", "ttl_s": 5}})  # type: ignore[dict-item]
    cache = ResponseCache(cfg, "fp", None)
    assert cache.policy_for("evals").policy == "all"
    assert cache.policy_for("claude-sonnet-4-5").policy == "off"
    assert cache.policy_for(None).policy == "off"


class Listener:
    def __init__(self) -> None:
        self.log: list[object] = []

    def on_flight_start(self, flight: Flight) -> None:
        self.log.append("start")

    def on_flight_events(self, flight: Flight, events: list[tuple[str | None, bytes]]) -> None:
        self.log.append([d for _, d in events])

    def on_flight_end(self, flight: Flight, ok: bool, entry: CacheEntry | None) -> None:
        self.log.append(("end", ok, entry is not None))


def test_flight_replays_what_a_late_joiner_missed_and_bounds_followers() -> None:
    table = FlightTable(max_flights=1, max_followers=2)
    flight = table.lead("k")
    assert flight is not None and table.lead("other") is None  # the table is full
    early = Listener()
    assert flight.join(early)
    flight.start("msg_1")
    flight.publish([("a", b"1")], keep=True)
    late = Listener()
    assert flight.join(late)
    assert not flight.join(Listener())  # max_followers
    flight.publish([("b", b"2")], keep=True)
    table.land(flight, True, entry())
    assert early.log == ["start", [b"1"], [b"2"], ("end", True, True)]
    assert late.log == ["start", [b"1"], [b"2"], ("end", True, True)]
    assert len(table) == 0 and table.get("k") is None


def test_a_follower_that_left_hears_nothing() -> None:
    table = FlightTable(max_flights=10, max_followers=10)
    flight = table.lead("k")
    assert flight is not None
    gone = Listener()
    flight.join(gone)
    flight.leave(gone)
    table.land(flight, False, None)
    assert gone.log == []


def test_an_entry_that_cannot_be_rendered_is_dropped() -> None:
    cache = ResponseCache(CacheConfig(), "fp", None, wall=FakeClock())
    broken = CacheEntry("anthropic", "msg_1", events=[("message_start", b"not json")])
    cache.store("t", "k", broken, 60)
    assert cache.lookup("k") is broken
    cache.drop(broken)
    assert cache.lookup("k") is None and cache.stats.unusable_total == 1


def test_no_late_joiner_once_the_answer_outgrew_the_kept_events() -> None:
    table = FlightTable(max_flights=10, max_followers=10)
    flight = table.lead("k")
    assert flight is not None
    flight.start("msg_1")
    flight.publish([("a", b"1")], keep=False)
    assert not flight.join(Listener())
