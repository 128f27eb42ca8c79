"""The Lua scripts against the in-process limiter, on a real redis-server: the same calls at
the same times give the same decisions, the same retry-after to the last bit, the same
messages. Also leases: renewed while held, expired when their worker is gone."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.limits.api import Admission, AdmitResult, LimitSettings, LimitSpec, ModelPrice, Rejection
from proxy.limits.local import LocalLimiter
from proxy.limits.redis import RedisLimiter, RedisSettings

from .server import RedisServer

T0 = 1_767_225_600.0 - 90  # 2025-12-31T23:58:30Z: runs cross a day, a month and a year
_runs = itertools.count()


def prices(provider: str, model: str) -> ModelPrice | None:
    return ModelPrice(3.0, 15.0) if model == "sonnet" else None


def redis_limiter(
    server: RedisServer, limits: LimitSettings, lease_ttl_s: float = 86_400.0
) -> RedisLimiter:
    lim = RedisLimiter(
        RedisSettings(
            url=server.url,
            shown_url=server.url,
            key_prefix=f"script{next(_runs)}:",
            timeout_s=2.0,  # correctness here, not speed: never fall back
            lease_ttl_s=lease_ttl_s,  # longer than any run in fake time, unless a test wants
        )
    )
    lim.configure(limits, prices)
    return lim


async def answer(result: AdmitResult | Awaitable[AdmitResult]) -> AdmitResult:
    return await result if inspect.isawaitable(result) else result


def same(local: AdmitResult, shared: AdmitResult) -> None:
    if isinstance(local, Rejection):
        assert isinstance(shared, Rejection), shared
        assert (shared.retry_after_s, shared.scope, shared.message) == (
            local.retry_after_s,
            local.scope,
            local.message,
        )
    else:
        assert isinstance(shared, Admission), shared
        assert (shared.tokens, shared.usd) == (local.tokens, local.usd)


specs = st.builds(
    LimitSpec,
    requests_per_minute=st.none() | st.integers(1, 6),
    tokens_per_minute=st.none() | st.integers(50, 3000),
    concurrent=st.none() | st.integers(1, 3),
    spend_per_day_usd=st.none() | st.sampled_from([0.001, 0.01, 0.05]),
    spend_per_month_usd=st.none() | st.sampled_from([0.02, 0.1]),
)
# (what, key, tokens or input tokens, output tokens, seconds since the previous step)
steps = st.lists(
    st.tuples(
        st.sampled_from(["admit", "admit", "usage", "release"]),
        st.sampled_from(["bot", "other"]),
        st.integers(0, 2500),
        st.integers(0, 4000),
        st.sampled_from([0.0, 0.001, 0.5, 3.0, 7.5, 20.0, 45.0]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key_spec=specs, model_spec=specs, plan=steps)
def test_same_calls_same_decisions_as_the_local_limiter(
    redis_server: RedisServer,
    key_spec: LimitSpec,
    model_spec: LimitSpec,
    plan: list[tuple[str, str, int, int, float]],
) -> None:
    limits = LimitSettings(keys={"bot": key_spec}, models={"sonnet": model_spec})

    async def run() -> None:
        local = LocalLimiter(limits, prices)
        shared = redis_limiter(redis_server, limits)
        held: list[tuple[Admission, Admission]] = []
        now = T0
        try:
            for what, key, a, b, dt in plan:
                now += dt
                if what == "admit":
                    mine = local.admit(key, "sonnet", "p", a, now)
                    theirs = await answer(shared.admit(key, "sonnet", "p", a, now))
                    same(mine, theirs)
                    if isinstance(mine, Admission) and isinstance(theirs, Admission):
                        held.append((mine, theirs))
                elif held and what == "usage":
                    mine, theirs = held[a % len(held)]
                    local.record_usage(mine, a, b, now)
                    shared.record_usage(theirs, a, b, now)
                elif held:
                    mine, theirs = held.pop(a % len(held))
                    local.release(mine)
                    shared.release(theirs)
                await shared.wait_idle()
            assert shared.stats()["fallbacks_total"] == 0
            assert shared.stats()["background_dropped_total"] == 0
        finally:
            await shared.aclose()

    asyncio.run(run())


def test_retry_after_is_exact_for_requests_and_tokens(redis_server: RedisServer) -> None:
    limits = LimitSettings(
        keys={"bot": LimitSpec(requests_per_minute=3)},
        models={"m": LimitSpec(tokens_per_minute=600)},
    )

    async def admit(lim: RedisLimiter, key: str | None, tokens: int, now: float) -> AdmitResult:
        return await answer(lim.admit(key, "m", "p", tokens, now))

    async def run() -> None:
        shared = redis_limiter(redis_server, limits)
        try:
            for i in range(3):
                assert isinstance(await admit(shared, "bot", 0, T0 + i), Admission)
            refused = await admit(shared, "bot", 0, T0 + 3)
            assert isinstance(refused, Rejection) and refused.scope == "key:bot"
            assert refused.retry_after_s == 17.0  # one request comes back every 20 s
            # Waiting exactly that long conforms.
            assert isinstance(await admit(shared, "bot", 0, T0 + 20), Admission)
            # 600 tokens per minute pay off one every 0.1 s: after 400, 300 more fit 10 s
            # later (the bucket holds one minute's worth).
            assert isinstance(await admit(shared, None, 400, T0), Admission)
            refused = await admit(shared, None, 300, T0)
            assert isinstance(refused, Rejection) and refused.scope == "model:m"
            assert refused.retry_after_s == 10.0
            assert "600 tokens per minute" in refused.message
            assert isinstance(await admit(shared, None, 300, T0 + 10.0), Admission)
        finally:
            await shared.aclose()

    asyncio.run(run())


def test_a_lease_is_renewed_while_held_and_expires_when_its_worker_is_gone(
    redis_server: RedisServer,
) -> None:
    limits = LimitSettings(keys={"bot": LimitSpec(concurrent=1)})

    async def run() -> None:
        ttl = 0.3
        holder = redis_limiter(redis_server, limits, lease_ttl_s=ttl)
        other = RedisLimiter(holder.settings)  # another worker on the same keys
        other.configure(limits, prices)
        try:
            assert isinstance(
                await answer(holder.admit("bot", "m", "p", 0, time.time())), Admission
            )
            # Held three lease lifetimes: renewed, so the slot stays taken.
            for _ in range(9):
                await asyncio.sleep(ttl / 3)
                refused = await answer(other.admit("bot", "m", "p", 0, time.time()))
                assert isinstance(refused, Rejection), refused
            # The holder goes away without releasing (a crash): its lease runs out.
            await holder.aclose()
            await asyncio.sleep(ttl + 0.05)
            assert isinstance(await answer(other.admit("bot", "m", "p", 0, time.time())), Admission)
        finally:
            await holder.aclose()
            await other.aclose()

    asyncio.run(run())
