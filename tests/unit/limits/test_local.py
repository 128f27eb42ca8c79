"""LocalLimiter: scopes combined, all-or-nothing admission, release, usage correction,
reconfiguration that keeps state."""

from __future__ import annotations

import pytest

from proxy.limits.api import Admission, LimitSettings, LimitSpec, ModelPrice, Rejection
from proxy.limits.local import CONCURRENCY_RETRY_AFTER_S, MAX_TRACKED_SCOPES, LocalLimiter

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def prices(provider: str, model: str) -> ModelPrice | None:
    return ModelPrice(3.0, 15.0) if model == "sonnet" else None


def admitted(result: Admission | Rejection) -> Admission:
    assert isinstance(result, Admission), result
    return result


def refused(result: Admission | Rejection) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


def test_nothing_configured_admits_everything_and_is_inactive() -> None:
    lim = LocalLimiter()
    assert not lim.active and len(lim) == 0
    a = admitted(lim.admit("k", "m", "p", 10**9, T0))
    lim.release(a)
    lim.record_usage(a, 10, 10, T0)


def test_requests_per_minute_per_key_with_exact_retry_after() -> None:
    lim = LocalLimiter(LimitSettings(keys={"bot": LimitSpec(requests_per_minute=2)}))
    admitted(lim.admit("bot", "m", "p", 0, T0))
    admitted(lim.admit("bot", "m", "p", 0, T0))
    r = refused(lim.admit("bot", "m", "p", 0, T0 + 5))
    assert r.retry_after_s == pytest.approx(25.0)
    assert r.scope == "key:bot"
    assert r.message == "rate limit exceeded for API key 'bot': 2 requests per minute"
    admitted(lim.admit("other", "m", "p", 0, T0))  # other keys are not limited
    admitted(lim.admit(None, "m", "p", 0, T0))
    admitted(lim.admit("bot", "m", "p", 0, T0 + 30))


def test_a_refusal_anywhere_debits_nothing_anywhere() -> None:
    lim = LocalLimiter(
        LimitSettings(
            keys={"bot": LimitSpec(requests_per_minute=1, concurrent=5)},
            providers={"p": LimitSpec(concurrent=1)},
        )
    )
    held = admitted(lim.admit(None, "m", "p", 0, T0))  # takes the provider's only slot
    refused(lim.admit("bot", "m", "p", 0, T0))
    assert lim.in_use("key:bot") == 0
    lim.release(held)
    # The refused attempt did not use the key's one request of the minute.
    admitted(lim.admit("bot", "m", "p", 0, T0))


def test_the_longest_wait_is_reported_when_several_limits_refuse() -> None:
    lim = LocalLimiter(
        LimitSettings(
            keys={"bot": LimitSpec(requests_per_minute=1)},
            models={"m": LimitSpec(requests_per_minute=60, concurrent=1)},
        )
    )
    admitted(lim.admit("bot", "m", "p", 0, T0))
    r = refused(lim.admit("bot", "m", "p", 0, T0))
    assert r.scope == "key:bot" and r.retry_after_s == pytest.approx(60.0)
    r = refused(lim.admit(None, "m", "p", 0, T0))
    assert r.scope == "model:m" and r.retry_after_s == CONCURRENCY_RETRY_AFTER_S
    assert "1 concurrent requests" in r.message


def test_concurrency_is_released_once_and_after_release_admits_again() -> None:
    lim = LocalLimiter(LimitSettings(providers={"p": LimitSpec(concurrent=2)}))
    a = admitted(lim.admit(None, "m", "p", 0, T0))
    b = admitted(lim.admit(None, "x", "p", 0, T0))
    refused(lim.admit(None, "m", "p", 0, T0))
    assert lim.in_use("provider:p") == 2
    lim.release(a)
    lim.release(a)  # idempotent: a second release frees nothing more
    assert lim.in_use("provider:p") == 1
    c = admitted(lim.admit(None, "m", "p", 0, T0))
    refused(lim.admit(None, "m", "p", 0, T0))
    lim.release(b)
    lim.release(c)
    assert lim.in_use("provider:p") == 0


def test_tokens_per_minute_debits_the_estimate_and_usage_corrects_it() -> None:
    lim = LocalLimiter(LimitSettings(keys={"bot": LimitSpec(tokens_per_minute=1000)}))
    assert lim.counts_tokens("bot", "m", "p") and not lim.counts_tokens("x", "m", "p")
    a = admitted(lim.admit("bot", "m", "p", 400, T0))
    b = admitted(lim.admit("bot", "m", "p", 400, T0))
    r = refused(lim.admit("bot", "m", "p", 400, T0))  # 800 taken, 200 left
    assert r.retry_after_s == pytest.approx(12.0)  # 200 tokens at 1000/min
    lim.record_usage(a, 100, 50, T0)  # a used 150, not 400: 250 back
    admitted(lim.admit("bot", "m", "p", 400, T0))
    lim.record_usage(b, 300, 500, T0)  # b used 800: 400 more, 1350 taken, in debt
    r = refused(lim.admit("bot", "m", "p", 1, T0))
    assert r.retry_after_s == pytest.approx((1350 + 1 - 1000) * 0.06)
    # Cumulative: a stream reporting 150 again changes nothing.
    before = r.retry_after_s
    lim.record_usage(a, 100, 50, T0)
    assert refused(lim.admit("bot", "m", "p", 1, T0)).retry_after_s == pytest.approx(before)


def test_spend_per_day_counts_input_estimate_then_reported_usage_until_midnight() -> None:
    lim = LocalLimiter(
        LimitSettings(keys={"bot": LimitSpec(spend_per_day_usd=1.0)}), pricing=prices
    )
    a = admitted(lim.admit("bot", "sonnet", "p", 100_000, T0 + 3600))
    assert a.usd == pytest.approx(0.3)  # 100k input tokens at $3/M
    assert lim.spent_usd("key:bot", T0 + 3600) == (pytest.approx(0.3), None)
    lim.record_usage(a, 100_000, 50_000, T0 + 3700)  # + 50k output at $15/M
    assert lim.spent_usd("key:bot", T0 + 3700)[0] == pytest.approx(1.05)
    r = refused(lim.admit("bot", "sonnet", "p", 10, T0 + 3700))
    assert r.retry_after_s == pytest.approx(86_400 - 3700)
    assert "$1 spend per day (UTC)" in r.message
    # A model without a price costs nothing, but the window is spent for every model.
    refused(lim.admit("bot", "free", "p", 10, T0 + 3700))
    admitted(lim.admit("bot", "sonnet", "p", 10, T0 + 86_400))


def test_spend_per_month_refuses_until_the_first_of_next_month() -> None:
    lim = LocalLimiter(
        LimitSettings(models={"sonnet": LimitSpec(spend_per_month_usd=3.0)}), pricing=prices
    )
    jan_31 = T0 + 30 * 86_400
    admitted(lim.admit(None, "sonnet", "p", 1_000_000, jan_31))
    r = refused(lim.admit("anyone", "sonnet", "q", 1, jan_31 + 10))
    assert r.scope == "model:sonnet" and r.retry_after_s == pytest.approx(86_400 - 10)
    admitted(lim.admit(None, "sonnet", "p", 1, T0 + 31 * 86_400))


def test_reconfigure_keeps_counts_windows_and_held_slots() -> None:
    spec = LimitSpec(requests_per_minute=1, concurrent=1, spend_per_day_usd=0.1)
    lim = LocalLimiter(LimitSettings(keys={"bot": spec}), pricing=prices)
    held = admitted(lim.admit("bot", "sonnet", "p", 1000, T0))  # $0.003
    # Same limits plus a new scope: the minute's request and the slot still count.
    lim.configure(
        LimitSettings(keys={"bot": spec}, providers={"p": LimitSpec(concurrent=9)}), prices
    )
    r = refused(lim.admit("bot", "sonnet", "p", 0, T0 + 1))
    assert r.retry_after_s == pytest.approx(59.0)
    assert lim.spent_usd("key:bot", T0 + 1) == (pytest.approx(0.003), None)
    # A higher rate is a new bucket; the slot is still held.
    lim.configure(
        LimitSettings(keys={"bot": LimitSpec(requests_per_minute=10, concurrent=1)}), prices
    )
    assert refused(lim.admit("bot", "sonnet", "p", 0, T0 + 1)).scope == "key:bot"
    assert lim.in_use("key:bot") == 1
    lim.release(held)
    assert lim.in_use("key:bot") == 0
    lim.release(admitted(lim.admit("bot", "sonnet", "p", 0, T0 + 1)))
    # Removing the key's limits entirely drops its state; a late release is harmless.
    late = admitted(lim.admit("bot", "sonnet", "p", 0, T0 + 2))
    lim.configure(LimitSettings(), prices)
    assert not lim.active
    lim.release(late)


def test_state_is_bounded_by_configured_scopes() -> None:
    lim = LocalLimiter(LimitSettings(models={"m": LimitSpec(requests_per_minute=1)}))
    for i in range(1000):
        lim.admit(f"key{i}", f"model{i}", f"provider{i}", 0, T0)
    assert len(lim) == 1
    too_many = {f"m{i}": LimitSpec(concurrent=1) for i in range(MAX_TRACKED_SCOPES + 1)}
    with pytest.raises(ValueError):
        lim.configure(LimitSettings(models=too_many), prices)
    assert len(lim) == 1  # the running limits stay
