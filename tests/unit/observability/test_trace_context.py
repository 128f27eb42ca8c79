"""W3C traceparent parsing, ids and the sampling decision."""

from __future__ import annotations

import random

import pytest

from proxy.observability.trace_context import TraceContextSource, parse_traceparent

VALID = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read() -> None:
    assert parse_traceparent(VALID) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        True,
    )
    unsampled = parse_traceparent(VALID[:-2] + b"00")
    assert unsampled is not None and unsampled[2] is False


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx: y",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(value: bytes) -> None:
    assert parse_traceparent(value) is None
    state = TraceContextSource(1.0, random.Random(1)).start([(b"traceparent", value)])
    assert not state.remote_parent and state.parent_span_id == 0


def test_the_clients_trace_and_sampled_flag_are_kept() -> None:
    source = TraceContextSource(0.0, random.Random(1))  # would sample nothing of its own
    state = source.start([(b"traceparent", VALID)])
    assert state.sampled and state.remote_parent
    assert state.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    headers = [(b"traceparent", VALID), (b"x-other", b"1")]
    state.stamp(headers)
    state.stamp(headers)
    first, second = state.attempt_span_ids
    assert first != second and first != state.span_id
    assert headers == [
        (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-%016x-01" % second),
        (b"x-other", b"1"),
    ]


def test_the_ratio_samples_about_that_share_of_new_traces() -> None:
    source = TraceContextSource(0.25, random.Random(7))
    sampled = sum(source.start([]).sampled for _ in range(4000))
    assert 850 < sampled < 1150
    assert not any(TraceContextSource(0.0).start([]).sampled for _ in range(100))
    assert all(TraceContextSource(1.0).start([]).sampled for _ in range(100))
