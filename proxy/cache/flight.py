"""Request coalescing: identical concurrent misses share the one upstream call in flight.

How this works: the first miss for a key becomes the flight's leader and goes upstream; the
misses that arrive while it runs join as followers (at most ``max_followers`` each) instead.
The leader's cache filter publishes what its client receives: the response head, the decoded
events of a stream as they arrive, and the end — with the stored entry, with no entry (the
answer was fine but too large to store), or failed. A follower that joins late gets the events
published so far first. What a follower does with them is its filter's business
(proxy/filters/cache.py). The registry is bounded (``max_flights``): past it, a miss simply
goes upstream on its own.
"""

from __future__ import annotations

from typing import Protocol

from proxy.cache.entry import CacheEntry

Event = tuple[str | None, bytes]


class FlightListener(Protocol):
    def on_flight_start(self, flight: Flight) -> None:
        """The leader's answer is a 2xx stream: events follow."""
        ...

    def on_flight_events(self, flight: Flight, events: list[Event]) -> None: ...

    def on_flight_end(self, flight: Flight, ok: bool, entry: CacheEntry | None) -> None:
        """``ok``: the leader's client got a complete answer (``entry`` when storable)."""
        ...


class Flight:
    __slots__ = (
        "_followers",
        "answer_id",
        "events",
        "key",
        "max_followers",
        "streaming",
        "truncated",
    )

    def __init__(self, key: str, max_followers: int) -> None:
        self.key = key
        self.max_followers = max_followers
        self.streaming = False  # the leader's answer is a 2xx event stream
        self.answer_id = ""
        self.events: list[Event] = []  # published so far, for late joiners
        self.truncated = False  # too large to keep for late joiners
        self._followers: list[FlightListener] = []

    def join(self, listener: FlightListener) -> bool:
        """False when full, or when the answer outgrew what is kept for late joiners (it
        will not be stored either): the caller goes upstream on its own."""
        if len(self._followers) >= self.max_followers or self.truncated:
            return False
        self._followers.append(listener)
        if self.streaming:
            listener.on_flight_start(self)
            if self.events:
                listener.on_flight_events(self, list(self.events))
        return True

    def leave(self, listener: FlightListener) -> None:
        if listener in self._followers:
            self._followers.remove(listener)

    def start(self, answer_id: str) -> None:
        self.streaming = True
        self.answer_id = answer_id
        for f in list(self._followers):
            f.on_flight_start(self)

    def publish(self, events: list[Event], keep: bool) -> None:
        if not events:
            return
        if keep and not self.truncated:
            self.events.extend(events)
        else:
            self.truncated = True
            self.events.clear()
        for f in list(self._followers):
            f.on_flight_events(self, events)

    def end(self, ok: bool, entry: CacheEntry | None) -> None:
        followers, self._followers = self._followers, []
        self.events = []
        for f in followers:
            f.on_flight_end(self, ok, entry)


class FlightTable:
    """The flights of one worker, by key."""

    __slots__ = ("_flights", "max_flights", "max_followers")

    def __init__(self, max_flights: int, max_followers: int) -> None:
        self.max_flights = max_flights
        self.max_followers = max_followers
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def get(self, key: str) -> Flight | None:
        return self._flights.get(key)

    def lead(self, key: str) -> Flight | None:
        """A new flight for ``key`` led by the caller; None when the table is full."""
        if len(self._flights) >= self.max_flights:
            return None
        flight = self._flights[key] = Flight(key, self.max_followers)
        return flight

    def land(self, flight: Flight, ok: bool, entry: CacheEntry | None) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        flight.end(ok, entry)
