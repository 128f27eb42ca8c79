"""LogWriter: batches written in order on a thread; a sink that blocks never blocks the
caller, and what does not fit the bound is dropped and counted."""

from __future__ import annotations

import io
import os
import threading

from proxy.observability.log_writer import LogWriter


def test_batches_are_written_in_order() -> None:
    out = io.BytesIO()
    writer = LogWriter(out)
    for i in range(100):
        assert writer.submit(b"line %d\n" % i, 1)
    assert writer.drain()
    assert out.getvalue().splitlines() == [b"line %d" % i for i in range(100)]
    writer.close()
    assert writer.submit(b"late\n", 1) is False
    assert writer.dropped_lines == 1


def test_a_stuck_pipe_does_not_block_the_caller_and_overflow_is_dropped() -> None:
    """stdout piped to a log collector that stopped reading: the pipe fills, the writer
    thread blocks in write(), the caller goes on; past the bound, batches are dropped."""
    read_fd, write_fd = os.pipe()
    out = os.fdopen(write_fd, "wb", buffering=0)
    writer = LogWriter(out, max_pending_bytes=256 * 1024)
    chunk = b"x" * 1023 + b"\n"
    accepted = dropped = 0
    for _ in range(2_000):  # 2 MB: far more than the pipe (64 KB) plus the bound
        if writer.submit(chunk, 1):
            accepted += 1
        else:
            dropped += 1
    assert dropped > 0 and writer.dropped_lines == dropped
    assert accepted * len(chunk) <= 256 * 1024 + 128 * 1024  # the bound, plus what the pipe took

    received = bytearray()

    def read_all() -> None:
        with os.fdopen(read_fd, "rb") as src:
            while block := src.read(65536):
                received.extend(block)

    reader = threading.Thread(target=read_all)
    reader.start()
    assert writer.drain(timeout_s=10)
    writer.close()
    out.close()
    reader.join(10)
    assert len(received) == accepted * len(chunk)  # every accepted line, whole, in order
    assert received.count(b"\n") == accepted


def test_a_failing_sink_is_survived() -> None:
    out = io.BytesIO()
    out.close()  # writes raise ValueError
    writer = LogWriter(out)
    assert writer.submit(b"lost\n", 1)
    assert writer.drain()
    writer.close()
