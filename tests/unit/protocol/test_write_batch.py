"""WriteBatch: connections registered during one loop iteration write together at its end."""

from __future__ import annotations

import asyncio

from proxy.protocol.write_batch import WriteBatch


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def flush_batched(self) -> None:
        self.log.append(self.name)


def test_one_iteration_flushes_every_registered_connection_once_in_order() -> None:
    async def go() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        batch = WriteBatch(loop)
        log: list[str] = []
        a, b = Recorder("a", log), Recorder("b", log)
        batch.add(a)
        batch.add(b)
        assert log == []  # nothing is written inside the iteration that produced the bytes
        seen = []
        await asyncio.sleep(0)
        seen.append(list(log))
        batch.add(b)  # a later iteration: scheduled again
        await asyncio.sleep(0)
        seen.append(list(log))
        return seen

    assert asyncio.run(go()) == [["a", "b"], ["a", "b", "b"]]


def test_a_connection_added_while_flushing_waits_for_the_next_run() -> None:
    async def go() -> list[str]:
        loop = asyncio.get_running_loop()
        batch = WriteBatch(loop)
        log: list[str] = []
        late = Recorder("late", log)

        class Chains(Recorder):
            def flush_batched(self) -> None:
                super().flush_batched()
                batch.add(late)  # e.g. a write made while another connection was flushed

        batch.add(Chains("first", log))
        await asyncio.sleep(0)
        first = list(log)
        await asyncio.sleep(0)
        return [*first, "|", *log]

    assert asyncio.run(go()) == ["first", "|", "first", "late"]
