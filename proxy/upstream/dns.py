"""A bounded TTL cache in front of ``loop.getaddrinfo``.

How this works: answers are kept per (host, port) until ``ttl_s`` has passed on the injected
clock; the oldest entry is evicted once ``max_entries`` is reached. IP literals skip the lookup.
Lookup failures are not cached (the next connect simply asks again) and surface as
`UpstreamConnectError` naming the host only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable

from proxy.errors import UpstreamConnectError

Address = tuple[int, str, int]  # (family, ip, port)


class DnsCache:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ttl_s: float,
        clock: Callable[[], float],
        max_entries: int = 1024,
    ) -> None:
        self._loop = loop
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, int], tuple[float, list[Address]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def resolve(self, host: str, port: int) -> list[Address]:
        literal = _literal(host, port)
        if literal is not None:
            return [literal]
        key = (host, port)
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        try:
            infos = await self._loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or "no such host"
            raise UpstreamConnectError(f"DNS lookup for {host} failed: {reason}") from None
        addresses: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            address = (int(family), str(sockaddr[0]), int(sockaddr[1]))
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UpstreamConnectError(f"DNS lookup for {host} returned no address")
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + self._ttl_s, addresses)
        return addresses


def _literal(host: str, port: int) -> Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return (int(family), host, port)
