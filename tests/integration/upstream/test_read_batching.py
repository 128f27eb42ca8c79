"""Read batching of streamed answers (proxy/upstream/read_batch.py) over real sockets: while
the batcher is on, an exchange that allows gathering is read once per window; its bytes all
arrive, in order; the client's own back-pressure is never undone by a window's end."""

from __future__ import annotations

import asyncio

import pytest

from proxy.upstream.api import Exchange
from tests.integration.upstream.helpers import CODECS, make_client
from tests.support.aio import eventually, run
from tests.support.h1server import ScriptedHttp1Server, sse
from tests.support.handlers import RecordingHandler

EVENTS = [b'data: {"n": %d}\n\n' % i for i in range(30)]
EVENT_GAP_S = 0.01  # the server writes one event every 10 ms: ~0.3 s in all


def bursts(times: list[float], within_s: float = 0.002) -> int:
    """How many groups of arrivals, an arrival within ``within_s`` of the last joining it."""
    groups = 0
    last = -1.0
    for t in times:
        if t - last > within_s:
            groups += 1
        last = t
    return groups


async def stream(
    codec: str, *, active: bool, allow: bool
) -> tuple[RecordingHandler, list[float], dict[str, int]]:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    exchange: list[Exchange] = []

    def on_data(chunk: bytes) -> None:
        arrivals.append(loop.time())
        if allow and len(arrivals) == 1:
            exchange[0].allow_gathering()  # as the router does once the client has content

    async with ScriptedHttp1Server(sse(EVENTS, delay_s=EVENT_GAP_S)) as server:
        client = make_client(codec, read_batch_window_s=0.1)
        client.reads.active = active
        handler = RecordingHandler(on_data)
        exchange.append(client.request(server.origin(), b"POST", b"/v1/chat", [], handler, True))
        await handler.wait()
        stats = client.stats()
        await client.close()
    return handler, arrivals, stats


@pytest.mark.parametrize("codec", CODECS)
def test_an_allowed_stream_is_read_once_per_window(codec: str) -> None:
    async def main() -> None:
        handler, arrivals, stats = await stream(codec, active=True, allow=True)
        assert handler.ended and handler.error is None
        assert handler.body == b"".join(EVENTS)
        # ~0.3 s of events read in windows of 0.1 s: a handful of reads, each carrying
        # several events (without batching, one read per event: see the test below).
        assert 2 <= stats["read_holds_total"] <= 6
        assert bursts(arrivals) <= stats["read_holds_total"] + 1
        assert stats["reads_held"] == 0 and stats["connections_idle"] == 1

    run(main())


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("active, allow", [(False, True), (True, False)])
def test_nothing_is_held_when_off_or_not_allowed(codec: str, active: bool, allow: bool) -> None:
    async def main() -> None:
        handler, arrivals, stats = await stream(codec, active=active, allow=allow)
        assert handler.body == b"".join(EVENTS)
        assert stats["read_holds_total"] == 0
        assert bursts(arrivals) > 6  # the events arrive as they were written

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_back_pressure_outlasts_the_window(codec: str) -> None:
    async def main() -> None:
        exchange: list[Exchange] = []

        def on_data(chunk: bytes) -> None:
            if len(handler.chunks) == 1:
                exchange[0].allow_gathering()

        async with ScriptedHttp1Server(sse(EVENTS, delay_s=0.005)) as server:
            client = make_client(codec, read_batch_window_s=0.05)
            client.reads.active = True
            handler = RecordingHandler(on_data)
            exchange.append(
                client.request(server.origin(), b"POST", b"/v1/chat", [], handler, True)
            )
            await eventually(lambda: client.stats()["reads_held"] == 1, interval=0.001)
            exchange[0].pause_reading()  # the client reads slowly, while the read is held
            stalled_at = len(handler.chunks)
            await asyncio.sleep(0.3)  # several windows end: none may resume the reading
            assert len(handler.chunks) == stalled_at and not handler.ended
            exchange[0].resume_reading()
            await handler.wait()
            assert handler.body == b"".join(EVENTS)
            await client.close()

    run(main())
