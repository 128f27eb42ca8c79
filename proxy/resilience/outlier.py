"""Envoy-style outlier detection for one cluster: a provider, whose hosts are its deployments.
Sans-I/O: every call takes ``now``.

How this works. Each host counts failures in a row, two counters as Envoy's split mode keeps
them: upstream-origin ones (a 5xx, a broken response) and local-origin ones (connect failure,
reset, timeout). Any answer that is not a 5xx resets both (the host answered, so its
connection works); an upstream 5xx resets the local counter. When a counter reaches its limit
(``consecutive_5xx``, ``consecutive_local_failures``) the host is ejected for
``base_ejection_s * n``, capped at ``max_ejection_s``, where n counts its ejections: it grows
by one per ejection and decays by one per ``base_ejection_s`` the host spent back in service,
so a host that keeps failing stays out longer and one that recovered starts short again.
Ejections end by time, checked lazily against ``now``; nothing runs in the background.

At most ``max_ejection_percent`` of the cluster's hosts are out at once, rounded down — but,
as Envoy documents, at least one host may always be ejected (any percentage above 0): with a
single deployment, or two at 20 %, one can still go. A request then falls back to the route's
next candidate (another provider), or gets a 503 when it has none. Envoy's panic threshold,
which routes to every host once too few are healthy, is not reproduced: the breaker's
half-open probes and the ejection's expiry bring a host back. A failure that would eject past
the limit is counted in ``ejections_refused_total`` and the host stays in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from proxy.config.resilience import OutlierConfig
from proxy.resilience.outcome import Outcome

_NEVER: Final = -math.inf


class OutlierHost:
    """One deployment's outlier state. ``ejected_until`` is the cheap read for the router."""

    __slots__ = (
        "consecutive_5xx",
        "consecutive_local",
        "ejected_until",
        "ejections",
        "ejections_total",
        "reason",
    )

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_local = 0
        self.ejected_until = _NEVER  # ejected iff now < ejected_until
        self.ejections = 0  # the ejection time's multiplier (decays while in service)
        self.ejections_total = 0
        self.reason = ""


class OutlierDetector:
    """See the module docstring. Hosts are named by deployment name within the cluster."""

    __slots__ = ("_hosts", "cluster", "config", "ejections_refused_total")

    def __init__(self, cluster: str, hosts: Iterable[str], config: OutlierConfig) -> None:
        self.cluster = cluster
        self.config = config
        self._hosts = {name: OutlierHost() for name in hosts}
        self.ejections_refused_total = 0

    def host(self, name: str) -> OutlierHost | None:
        return self._hosts.get(name)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(self._hosts)

    def ejected(self, name: str, now: float) -> bool:
        host = self._hosts.get(name)
        return host is not None and now < host.ejected_until

    def ejected_count(self, now: float) -> int:
        return sum(1 for h in self._hosts.values() if now < h.ejected_until)

    def max_ejected(self) -> int:
        """How many hosts may be out at once: the percentage rounded down, at least one."""
        percent = self.config.max_ejection_percent
        if percent <= 0 or not self._hosts:
            return 0
        return max(1, math.floor(len(self._hosts) * percent / 100.0 + 1e-9))

    def on_result(self, name: str, outcome: Outcome, now: float) -> None:
        """An attempt to host ``name`` ended with ``outcome``."""
        cfg = self.config
        host = self._hosts.get(name)
        if host is None or not cfg.enabled or outcome is Outcome.ABANDONED:
            return
        if outcome.local_origin:
            host.consecutive_local += 1
        elif outcome is Outcome.SERVER_ERROR:
            host.consecutive_5xx += 1
            host.consecutive_local = 0
        else:
            host.consecutive_5xx = host.consecutive_local = 0
            return
        if now < host.ejected_until:
            return  # an attempt that started before the ejection
        if host.consecutive_5xx >= cfg.consecutive_5xx:
            self._eject(host, now, f"{host.consecutive_5xx} consecutive 5xx")
        elif host.consecutive_local >= cfg.consecutive_local_failures:
            self._eject(host, now, f"{host.consecutive_local} consecutive local-origin failures")

    def reconfigure(self, hosts: Iterable[str], config: OutlierConfig) -> None:
        """Take a reloaded config: hosts still present keep their state."""
        self.config = config
        old = self._hosts
        self._hosts = {name: old.get(name) or OutlierHost() for name in hosts}
        if not config.enabled:
            for host in self._hosts.values():
                host.ejected_until = _NEVER

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "enabled": self.config.enabled,
            "hosts": len(self._hosts),
            "ejected": self.ejected_count(now),
            "max_ejected": self.max_ejected(),
            "ejections_refused_total": self.ejections_refused_total,
            "deployments": {name: host_snapshot(h, now) for name, h in self._hosts.items()},
        }

    def _eject(self, host: OutlierHost, now: float, reason: str) -> None:
        if self.ejected_count(now) >= self.max_ejected():
            self.ejections_refused_total += 1
            return
        cfg = self.config
        if host.ejections:
            in_service_s = now - host.ejected_until
            host.ejections = max(0, host.ejections - int(in_service_s // cfg.base_ejection_s))
        host.ejections += 1
        host.ejected_until = now + min(cfg.max_ejection_s, cfg.base_ejection_s * host.ejections)
        host.ejections_total += 1
        host.consecutive_5xx = host.consecutive_local = 0
        host.reason = reason


def host_snapshot(host: OutlierHost, now: float) -> dict[str, object]:
    ejected = now < host.ejected_until
    return {
        "ejected": ejected,
        "ejected_remaining_s": round(host.ejected_until - now, 3) if ejected else 0.0,
        "ejection_multiplier": host.ejections,
        "ejections_total": host.ejections_total,
        "consecutive_5xx": host.consecutive_5xx,
        "consecutive_local_failures": host.consecutive_local,
        "last_ejection_reason": host.reason or None,
    }
