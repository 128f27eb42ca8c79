"""GcPacer: collections by generation on a loop timer, and why the worker needs them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from proxy.server.gc_pacer import GcPacer
from tests.support.aio import LOOPS, LoopName, run


@pytest.mark.parametrize("loop", LOOPS)
def test_ticks_collect_young_then_middle_then_all(loop: LoopName) -> None:
    async def main() -> None:
        calls: list[int] = []
        pacer = GcPacer(
            asyncio.get_running_loop(),
            interval_s=0.002,
            middle_every=3,
            full_every=7,
            collect=calls.append,
        )
        assert not pacer.running
        pacer.start()
        pacer.start()  # idempotent: still one timer
        while len(calls) < 9:
            await asyncio.sleep(0.002)
        pacer.stop()
        assert not pacer.running
        assert calls[:9] == [0, 0, 1, 0, 0, 1, 2, 0, 1]
        seen = len(calls)
        await asyncio.sleep(0.02)
        assert len(calls) == seen  # stopped: no tick after stop()

    run(main(), loop=loop)


@pytest.mark.parametrize(
    "kwargs", [{"interval_s": 0.0}, {"middle_every": 0}, {"full_every": 0}, {"interval_s": -1.0}]
)
def test_bad_periods_are_refused(kwargs: dict[str, float]) -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError):
            GcPacer(loop, **kwargs)  # type: ignore[arg-type]
    finally:
        loop.close()


# Long-lived objects freed as fast as new ones are made: the young generation's count (made
# minus freed) stays near zero, so the automatic collector never runs and the young objects
# pile up. Run in a child process: it changes the collector's global state.
CHURN = textwrap.dedent(
    """
    import asyncio, gc, sys
    from proxy.server.gc_pacer import GcPacer, tune_gc

    class Stream:  # a tracked object, like a stream's state
        __slots__ = ("parts",)
        def __init__(self) -> None:
            self.parts = [self]  # a list too, as real state holds

    async def main(paced: bool) -> int:
        tune_gc()
        live = [Stream() for _ in range(20_000)]
        gc.collect()  # the streams open before the measurement: old objects
        pacer = GcPacer(asyncio.get_running_loop(), interval_s=0.005)
        if paced:
            pacer.start()
        most = 0
        for _ in range(40):
            for i in range(500):  # 500 streams end, 500 start
                live[i].parts = []
                live[i] = Stream()
            live = live[500:] + live[:500]
            most = max(most, len(gc.get_objects(0)))
            await asyncio.sleep(0.006)
        pacer.stop()
        return most

    print(asyncio.run(main(sys.argv[1] == "paced")))
    """
)


def _most_young_objects(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="3.14's incremental collector counts differently"
)
def test_churn_starves_the_automatic_collector_and_the_pacer_bounds_the_young_generation() -> None:
    unpaced = _most_young_objects("unpaced")
    paced = _most_young_objects("paced")
    # 40 rounds x 500 new streams x 2 tracked objects each, none collected without the pacer.
    assert unpaced >= 30_000
    # Paced: at most a few rounds' worth between ticks.
    assert paced <= 6_000
