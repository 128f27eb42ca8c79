"""classify: what counts against a deployment, and what never does."""

from __future__ import annotations

import pytest

from proxy.errors import (
    BadRequestError,
    ConfigError,
    DownstreamDisconnectError,
    ProxyError,
    ShuttingDownError,
    TranslationError,
    UpstreamBadResponseError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamOverflowError,
    UpstreamProtocolError,
    UpstreamResetError,
    UpstreamTimeoutError,
)
from proxy.resilience.outcome import SLOW_CALL_S, Outcome, classify


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Outcome.SUCCESS),
        (201, Outcome.SUCCESS),
        (304, Outcome.SUCCESS),
        (400, Outcome.CLIENT_ERROR),
        (401, Outcome.CLIENT_ERROR),
        (403, Outcome.CLIENT_ERROR),
        (404, Outcome.CLIENT_ERROR),
        (413, Outcome.CLIENT_ERROR),
        (422, Outcome.CLIENT_ERROR),
        (408, Outcome.SERVER_ERROR),
        (429, Outcome.RATE_LIMITED),
        (500, Outcome.SERVER_ERROR),
        (502, Outcome.SERVER_ERROR),
        (503, Outcome.SERVER_ERROR),
        (504, Outcome.SERVER_ERROR),
        (529, Outcome.SERVER_ERROR),
        (None, Outcome.ABANDONED),
    ],
)
def test_status(status: int | None, expected: Outcome) -> None:
    assert classify(status, None, 0.5) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamConnectError("refused"), Outcome.CONNECT_FAILURE),
        (UpstreamTimeoutError("first byte"), Outcome.TIMEOUT),
        (UpstreamResetError("rst"), Outcome.RESET),
        (UpstreamProtocolError("garbage"), Outcome.SERVER_ERROR),
        (UpstreamBadResponseError("bad json"), Outcome.SERVER_ERROR),
        (UpstreamError("in-band overloaded_error"), Outcome.SERVER_ERROR),
        (UpstreamOverflowError("queue full"), Outcome.ABANDONED),
        (DownstreamDisconnectError("client left"), Outcome.ABANDONED),
        (ShuttingDownError("bye"), Outcome.ABANDONED),
        (TranslationError("messages.0", "no"), Outcome.CLIENT_ERROR),
        (BadRequestError("bad"), Outcome.CLIENT_ERROR),
        (ConfigError("x"), Outcome.ABANDONED),
        (ProxyError("x"), Outcome.ABANDONED),
    ],
)
def test_error_wins_over_status(error: ProxyError, expected: Outcome) -> None:
    assert classify(200, error, 0.1) is expected
    assert classify(None, error, 0.1) is expected


def test_slow_success() -> None:
    assert classify(200, None, SLOW_CALL_S) is Outcome.SUCCESS  # at the threshold: not slow
    assert classify(200, None, SLOW_CALL_S + 0.001) is Outcome.SLOW
    assert classify(200, None, 2.0, slow_call_s=1.0) is Outcome.SLOW
    assert classify(500, None, 99.0, slow_call_s=1.0) is Outcome.SERVER_ERROR  # failures stay


def test_properties() -> None:
    failures = {o for o in Outcome if o.failure}
    assert failures == {
        Outcome.SERVER_ERROR,
        Outcome.CONNECT_FAILURE,
        Outcome.RESET,
        Outcome.TIMEOUT,
    }
    assert {o for o in Outcome if o.local_origin} == {
        Outcome.CONNECT_FAILURE,
        Outcome.RESET,
        Outcome.TIMEOUT,
    }
    assert {o for o in Outcome if o.success} == {Outcome.SUCCESS, Outcome.SLOW}
    # Client errors, 429 and abandoned attempts are neither: they are not counted.
    neutral = set(Outcome) - failures - {Outcome.SUCCESS, Outcome.SLOW}
    assert neutral == {Outcome.CLIENT_ERROR, Outcome.RATE_LIMITED, Outcome.ABANDONED}
