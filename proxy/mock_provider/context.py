"""State one MockProvider shares with its connections: planner, recorder, open connections."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from proxy.mock_provider.options import MockOptions
from proxy.mock_provider.planner import Planner
from proxy.mock_provider.recording import Recorder


class Closable(Protocol):
    def close_now(self) -> None:
        """Cancel every timer and abort the transport (server shutdown)."""
        ...


@dataclass(slots=True)
class ProviderContext:
    options: MockOptions
    planner: Planner
    recorder: Recorder
    loop: asyncio.AbstractEventLoop
    connections: set[Closable] = field(default_factory=set)
    next_connection_id: int = 0
    all_closed: asyncio.Event | None = None  # set while stopping, when the last one goes

    def connection_opened(self, conn: Closable) -> int:
        self.next_connection_id += 1
        self.recorder.connections_accepted += 1
        self.connections.add(conn)
        return self.next_connection_id

    def connection_closed(self, conn: Closable) -> None:
        self.connections.discard(conn)
        if not self.connections and self.all_closed is not None:
            self.all_closed.set()
