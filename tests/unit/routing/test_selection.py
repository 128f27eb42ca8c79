"""Deployment selection: every rejection reason, and each strategy's behaviour under a
simulated load with a seeded random source and a fake clock."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from proxy.dialects.transformers.registry import provider_transformers
from proxy.filters.api import Dialect
from proxy.routing.catalog import UNKNOWN
from proxy.routing.selection import (
    BACKLOG_MIN,
    BREAKER_OPEN,
    EXCLUDED,
    MAX_ADHOC_ROUTES,
    RECENT_ERROR_S,
    AffinityTable,
    Selector,
    failure_status,
    rejection_lines,
)
from proxy.routing.types import (
    Candidate,
    Deployment,
    ModelInfo,
    Provider,
    Requirements,
    Route,
    Selection,
    Strategy,
    Target,
)
from proxy.upstream.api import Origin

SMALL = Requirements(tokens=1_000, max_tokens=1_000)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def info(
    *,
    context: int | None = None,
    out: int | None = None,
    tools: bool = True,
    images: bool = True,
    thinking: bool = True,
    price: tuple[float, float] | None = None,
    quality: float | None = None,
) -> ModelInfo:
    return ModelInfo(
        context_window=context,
        max_output=out,
        tools=tools,
        images=images,
        thinking=thinking,
        input_price=None if price is None else price[0],
        output_price=None if price is None else price[1],
        quality=quality,
    )


def provider(
    name: str,
    weights: Sequence[float] = (1.0,),
    models: dict[str, ModelInfo] | None = None,
) -> Provider:
    deployments = tuple(
        Deployment(
            provider=name,
            name=f"d{i}",
            origin=Origin("http", f"{name}-{i}.test", 80),
            path_prefix=b"",
            auth_header=None,
            weight=weight,
            region=None,
        )
        for i, weight in enumerate(weights)
    )
    return Provider(
        name=name,
        dialect=Dialect.OPENAI,
        deployments=deployments,
        models=(),
        transformers=provider_transformers([], {}, where=f"providers.{name}"),
        model_info=models or {},
    )


def route(
    *targets: tuple[Provider, str],
    strategy: Strategy = Strategy.PRIORITY,
    affinity: bool = False,
    name: str = "default",
    **weights: float | None,
) -> Route:
    return Route(
        name=name,
        targets=tuple(Target(p, m) for p, m in targets),
        strategy=strategy,
        affinity=affinity,
        **weights,  # type: ignore[arg-type]
    )


def selector(*routes: Route, seed: int = 7, clock: Clock | None = None) -> Selector:
    return Selector(routes, clock=clock or Clock(), rng=random.Random(seed))


def keys(selection: Selection) -> list[str]:
    return [c.key for c in selection.ordered]


def serve(sel: Selector, cand: Candidate, ttft: float = 0.1, ok: bool = True) -> None:
    """One whole request: start, first byte, end."""
    sel.on_start(cand)
    sel.on_first_byte(cand, ttft)
    sel.on_end(cand, ok)


# -- expansion and filtering ---------------------------------------------------------------


def test_each_target_expands_to_one_candidate_per_deployment_in_config_order() -> None:
    a, b = provider("a", (1, 1, 1)), provider("b")
    r = route((a, "m1"), (b, "m2"), (a, "m1"))  # the repeated target adds nothing
    s = selector(r)
    assert [c.key for c in s.candidates(r)] == ["a/d0/m1", "a/d1/m1", "a/d2/m1", "b/d0/m2"]
    assert keys(s.select(r, SMALL)) == ["a/d0/m1", "a/d1/m1", "a/d2/m1", "b/d0/m2"]
    assert s.select(r, SMALL).choice is not None
    # Unknown models: the catalog's permissive defaults.
    assert s.candidates(r)[0].info == UNKNOWN


@pytest.mark.parametrize(
    ("model_info", "need", "reason"),
    [
        (
            info(context=8_192),
            Requirements(tokens=70_000, max_tokens=4_096),
            "context window 8192 < 70000 estimated tokens + 4096 max_tokens",
        ),
        # max_tokens counts up to the model's output cap (transformers enforce the cap).
        (
            info(context=128_000, out=8_192),
            Requirements(tokens=121_000, max_tokens=32_000),
            "context window 128000 < 121000 estimated tokens + 8192 max_tokens",
        ),
        (info(tools=False), Requirements(10, 10, tools=True), "tools unsupported"),
        (info(images=False), Requirements(10, 10, images=True), "images unsupported"),
        (info(thinking=False), Requirements(10, 10, thinking=True), "thinking unsupported"),
    ],
)
def test_capability_rejections(model_info: ModelInfo, need: Requirements, reason: str) -> None:
    small = provider("small", (1, 1), {"m": model_info})
    big = provider("big", models={"m": info(context=1_000_000)})
    r = route((small, "m"), (big, "m"))
    selection = selector(r).select(r, need)
    assert keys(selection) == ["big/d0/m"]
    assert [(c.key, why) for c, why in selection.rejected] == [
        ("small/d0/m", reason),
        ("small/d1/m", reason),
    ]


def test_fits_exactly_and_requests_without_needs_pass() -> None:
    p = provider("p", models={"m": info(context=2_000, tools=False, images=False, thinking=False)})
    r = route((p, "m"))
    assert keys(selector(r).select(r, SMALL)) == ["p/d0/m"]  # 1,000 + 1,000 = 2,000


def test_unhealthy_and_excluded_candidates_are_rejected() -> None:
    p = provider("p", (1, 1, 1))
    r = route((p, "m"))
    s = selector(r)
    selection = s.select(r, SMALL, healthy=lambda c: c.deployment.name != "d1", exclude={"p/d2/m"})
    assert keys(selection) == ["p/d0/m"]
    assert [(c.key, why) for c, why in selection.rejected] == [
        ("p/d1/m", BREAKER_OPEN),
        ("p/d2/m", EXCLUDED),
    ]


def test_nothing_eligible_lists_every_rejection_and_says_400_or_503() -> None:
    small = provider("small", models={"m": info(context=4_000)})
    nontool = provider("nontool", models={"m": info(tools=False)})
    r = route((small, "m"), (nontool, "m"))
    s = selector(r)
    need = Requirements(tokens=5_000, max_tokens=100, tools=True)
    capability = s.select(r, need)
    assert capability.ordered == () and capability.choice is None
    assert rejection_lines(capability) == [
        "small,m via d0: context window 4000 < 5000 estimated tokens + 100 max_tokens",
        "nontool,m via d0: tools unsupported",
    ]
    assert failure_status(capability) == 400
    # One candidate could serve but its breaker is open: worth retrying later.
    health = s.select(r, Requirements(10, 10, tools=True), healthy=lambda c: False)
    assert [why for _, why in health.rejected] == [BREAKER_OPEN, "tools unsupported"]
    assert failure_status(health) == 503
    assert failure_status(Selection((), ())) == 503


def test_quality_floor_rejects_only_under_the_cost_strategy() -> None:
    low = provider("low", models={"m": info(price=(0.1, 0.1), quality=0.4)})
    unknown = provider("unknown", models={"m": info(price=(0.1, 0.1))})
    good = provider("good", models={"m": info(price=(3, 15), quality=0.9)})
    targets = ((low, "m"), (unknown, "m"), (good, "m"))
    cost = route(*targets, strategy=Strategy.COST, quality_floor=0.8)
    selection = selector(cost).select(cost, SMALL)
    assert keys(selection) == ["good/d0/m"]
    assert [why for _, why in selection.rejected] == [
        "quality 0.4 < floor 0.8",
        "quality unknown, floor 0.8",
    ]
    assert failure_status(Selection((), selection.rejected[:1])) == 400
    priority = route(*targets, quality_floor=0.8)
    assert len(selector(priority).select(priority, SMALL).ordered) == 3


# -- priority and weighted ---------------------------------------------------------------


def test_priority_keeps_config_order_and_skips_the_unhealthy() -> None:
    a, b, c = provider("a"), provider("b"), provider("c")
    r = route((a, "m"), (b, "m"), (c, "m"))
    s = selector(r)
    for _ in range(5):
        assert keys(s.select(r, SMALL)) == ["a/d0/m", "b/d0/m", "c/d0/m"]
    down = s.select(r, SMALL, healthy=lambda cand: cand.provider is not a)
    assert keys(down) == ["b/d0/m", "c/d0/m"]


def test_weighted_round_robin_is_smooth_and_deterministic() -> None:
    p = provider("p", (2, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED)
    s = selector(r)
    picks = [s.select(r, SMALL).ordered[0].deployment.name for _ in range(6)]
    assert picks == ["d0", "d1", "d0", "d0", "d1", "d0"]
    # The fallback is the one due next.
    assert keys(s.select(r, SMALL)) == ["p/d0/m", "p/d1/m"]


def test_weighted_shares_over_many_picks() -> None:
    p = provider("p", (5, 3, 2))
    q = provider("q", (0.5,))
    r = route((p, "m"), (q, "m"), strategy=Strategy.WEIGHTED)
    s = selector(r)
    n = 10_500
    counts = Counter(s.select(r, SMALL).ordered[0].key for _ in range(n))
    total = 10.5
    for key, weight in [("p/d0/m", 5), ("p/d1/m", 3), ("p/d2/m", 2), ("q/d0/m", 0.5)]:
        assert counts[key] / n == pytest.approx(weight / total, abs=0.002)
    # With one deployment down, the others share its traffic in their own proportions.
    healthy = lambda c: c.key != "p/d0/m"  # noqa: E731
    counts = Counter(s.select(r, SMALL, healthy=healthy).ordered[0].key for _ in range(5_500))
    assert counts["p/d0/m"] == 0
    assert counts["p/d1/m"] / 5_500 == pytest.approx(3 / 5.5, abs=0.002)
    assert counts["q/d0/m"] / 5_500 == pytest.approx(0.5 / 5.5, abs=0.002)


# -- least outstanding (power of two choices) ------------------------------------------------


def _queue_simulation(pick: str, seed: int) -> tuple[float, float]:
    """A discrete-time queue: 20 deployments, 16 arrivals per tick, each request in flight
    ends with probability 0.1 per tick (mean 10 ticks), so ~160 requests are in flight, 8 per
    deployment on average. Returns the mean, over ticks, of the largest and of the mean
    outstanding count across deployments."""
    p = provider("p", [1.0] * 20)
    r = route((p, "m"), strategy=Strategy.LEAST_OUTSTANDING)
    s = selector(r, seed=seed)
    cands = s.candidates(r)
    sim = random.Random(seed + 1)
    in_flight: list[Candidate] = []
    sum_max = sum_mean = 0.0
    ticks = 600
    for tick in range(ticks):
        for _ in range(16):
            if pick == "p2c":
                cand = s.select(r, SMALL).ordered[0]
            else:  # the baseline: a uniformly random deployment
                cand = cands[sim.randrange(len(cands))]
            s.on_start(cand)
            in_flight.append(cand)
        still: list[Candidate] = []
        for cand in in_flight:
            if sim.random() < 0.1:
                s.on_end(cand, True)
            else:
                still.append(cand)
        in_flight = still
        if tick >= 100:  # after warm-up
            counts = [s.stats(c).outstanding for c in cands]
            sum_max += max(counts)
            sum_mean += sum(counts) / len(counts)
    return sum_max / (ticks - 100), sum_mean / (ticks - 100)


def test_power_of_two_choices_beats_random_on_outstanding_requests() -> None:
    p2c_max, p2c_mean = _queue_simulation("p2c", seed=3)
    random_max, random_mean = _queue_simulation("random", seed=3)
    # Same load, so the same mean; P2C keeps the busiest deployment much closer to it.
    assert p2c_mean == pytest.approx(random_mean, rel=0.05)
    assert p2c_max - p2c_mean < 0.5 * (random_max - random_mean)


def test_least_outstanding_orders_fallbacks_and_avoids_recent_errors() -> None:
    p = provider("p", (1, 1, 1))
    r = route((p, "m"), strategy=Strategy.LEAST_OUTSTANDING)
    clock = Clock()
    s = selector(r, clock=clock)
    c0, c1, c2 = s.candidates(r)
    for _ in range(3):
        s.on_start(c0)
    s.on_start(c1)
    for _ in range(50):
        assert keys(s.select(r, SMALL))[1:] in (
            ["p/d1/m", "p/d0/m"],
            ["p/d2/m", "p/d0/m"],
            ["p/d2/m", "p/d1/m"],
        )
        assert s.select(r, SMALL).ordered[0] is not c0  # the busiest never wins a pair
    # A deployment that just failed (and so is idle) does not attract the traffic.
    serve(s, c2, ok=False)
    assert all(s.select(r, SMALL).ordered[0] is not c2 for _ in range(50))
    assert s.select(r, SMALL).ordered[-1] is c2
    clock.now += RECENT_ERROR_S
    assert any(s.select(r, SMALL).ordered[0] is c2 for _ in range(50))


# -- latency ----------------------------------------------------------------------------------


def test_latency_explores_unmeasured_candidates_one_probe_at_a_time() -> None:
    a, b = provider("a"), provider("b")
    r = route((a, "m"), (b, "m"), strategy=Strategy.LATENCY)
    s = selector(r)
    first = s.select(r, SMALL).ordered[0]
    assert first.key == "a/d0/m"
    s.on_start(first)  # a's probe is in flight: the next request probes b, not a again
    second = s.select(r, SMALL).ordered[0]
    assert second.key == "b/d0/m"
    s.on_start(second)
    s.on_first_byte(second, 0.3)
    # b is measured and a's probe has not answered yet: b first, a last.
    assert keys(s.select(r, SMALL)) in (["b/d0/m", "a/d0/m"], ["a/d0/m", "b/d0/m"])
    s.on_first_byte(first, 0.1)
    s.on_end(first, True)
    s.on_end(second, True)
    picks = Counter(s.select(r, SMALL).ordered[0].key for _ in range(200))
    assert picks["a/d0/m"] > 180


def test_latency_converges_to_the_fastest_still_explores_and_follows_a_change() -> None:
    p = provider("p", (1, 1, 1, 1))
    r = route((p, "m"), strategy=Strategy.LATENCY)
    s = selector(r, seed=11)
    jitter = random.Random(5)
    ttft = {"p/d0/m": 0.8, "p/d1/m": 0.2, "p/d2/m": 0.5, "p/d3/m": 1.2}

    def run(n: int) -> Counter[str]:
        picks: Counter[str] = Counter()
        for _ in range(n):
            cand = s.select(r, SMALL).ordered[0]
            picks[cand.key] += 1
            serve(s, cand, ttft[cand.key] * jitter.uniform(0.8, 1.2))
        return picks

    run(50)  # every candidate measured
    picks = run(2_000)
    assert picks["p/d1/m"] / 2_000 > 0.9
    for slow in ("p/d0/m", "p/d2/m", "p/d3/m"):
        assert picks[slow] >= 10  # the others are still measured now and then
    assert keys(s.select(r, SMALL))[1:] in (
        ["p/d2/m", "p/d0/m", "p/d3/m"],
        ["p/d1/m", "p/d0/m", "p/d3/m"],  # an exploring decision put another first
        ["p/d1/m", "p/d2/m", "p/d3/m"],
        ["p/d1/m", "p/d2/m", "p/d0/m"],
    )
    ttft["p/d1/m"] = 3.0  # the fastest slows down: traffic moves to the next fastest
    run(200)
    picks = run(1_000)
    assert picks["p/d2/m"] / 1_000 > 0.9


def test_latency_does_not_keep_probing_a_deployment_that_fails_before_answering() -> None:
    a, b = provider("a"), provider("b")
    r = route((a, "m"), (b, "m"), strategy=Strategy.LATENCY)
    clock = Clock()
    s = selector(r, clock=clock)
    ca, cb = s.candidates(r)
    serve(s, cb, 0.5)
    s.on_start(ca)
    s.on_end(ca, False)  # failed before its first byte: still unmeasured
    picks = Counter(s.select(r, SMALL).ordered[0].key for _ in range(100))
    assert picks["a/d0/m"] == 0
    clock.now += RECENT_ERROR_S  # after a while it is probed again
    assert s.select(r, SMALL).ordered[0] is ca


# -- cost ----------------------------------------------------------------------------------------


def test_cost_picks_the_cheapest_above_the_floor() -> None:
    models = {
        "cheap-bad": info(price=(0.1, 0.4), quality=0.5),
        "cheap-ok": info(price=(0.3, 2.5), quality=0.8),
        "pricey": info(price=(3.0, 15.0), quality=0.92),
        "mid": info(price=(1.25, 10.0), quality=0.9),
        "no-price": info(quality=0.95),
    }
    p = provider("p", models=models)
    targets = [(p, m) for m in models]
    r = route(*targets, strategy=Strategy.COST, quality_floor=0.75)
    s = selector(r)
    assert keys(s.select(r, SMALL)) == ["p/d0/cheap-ok", "p/d0/mid", "p/d0/pricey", "p/d0/no-price"]
    # Without a floor the cheapest wins; an unknown price counts as the highest.
    free = route(*targets, strategy=Strategy.COST)
    assert keys(selector(free).select(free, SMALL))[0] == "p/d0/cheap-bad"
    # Quality weighs against price: score = price/top - 10 * quality.
    smart = route(*targets, strategy=Strategy.COST, quality_weight=10.0)
    assert keys(selector(smart).select(smart, SMALL))[0] == "p/d0/no-price"


def test_cost_latency_weight_prefers_the_faster_of_equal_prices() -> None:
    same = info(price=(1.0, 1.0), quality=0.8)
    a, b = provider("a", models={"m": same}), provider("b", models={"m": same})
    r = route((a, "m"), (b, "m"), strategy=Strategy.COST, latency_weight=1.0)
    s = selector(r)
    ca, cb = s.candidates(r)
    assert s.select(r, SMALL).ordered[0] is ca  # a tie keeps config order
    serve(s, ca, 2.0)
    serve(s, cb, 0.5)
    assert s.select(r, SMALL).ordered[0] is cb
    # Price still dominates with equal weights when the gap is large.
    dear = provider("dear", models={"m": info(price=(10.0, 10.0), quality=0.8)})
    r2 = route((dear, "m"), (a, "m"), strategy=Strategy.COST, latency_weight=1.0)
    s2 = selector(r2)
    cd, ca2 = s2.candidates(r2)
    serve(s2, cd, 0.1)
    serve(s2, ca2, 0.2)
    assert s2.select(r2, SMALL).ordered[0] is ca2


# -- affinity ----------------------------------------------------------------------------------


def test_affinity_holds_moves_when_unhealthy_and_stays_on_the_new_one() -> None:
    p = provider("p", (1, 1, 1, 1))
    r = route((p, "m"), strategy=Strategy.LEAST_OUTSTANDING, affinity=True)
    s = selector(r)
    home = s.select(r, SMALL, session="s1").ordered[0]
    for _ in range(50):  # other sessions pile load on it; s1 stays
        other = s.select(r, SMALL, session=None).ordered[0]
        s.on_start(other)
        s.on_start(home)
        assert s.select(r, SMALL, session="s1").ordered[0] is home
    down = home.key
    moved = s.select(r, SMALL, session="s1", healthy=lambda c: c.key != down).ordered[0]
    assert moved is not home
    for _ in range(20):  # back to healthy: the session stays where it moved
        assert s.select(r, SMALL, session="s1").ordered[0] is moved


def test_affinity_moves_when_the_candidate_cannot_serve_the_request() -> None:
    small = provider("small", (1, 1), {"m": info(context=32_000)})
    big = provider("big", models={"m": info(context=1_000_000)})
    r = route((small, "m"), (big, "m"), strategy=Strategy.WEIGHTED, affinity=True)
    s = selector(r)
    home = s.select(r, SMALL, session="s").ordered[0]
    assert home.provider is small
    assert all(s.select(r, SMALL, session="s").ordered[0] is home for _ in range(10))
    long = Requirements(tokens=50_000, max_tokens=1_000)
    moved = s.select(r, long, session="s").ordered[0]
    assert moved.provider is big
    assert all(s.select(r, SMALL, session="s").ordered[0] is moved for _ in range(10))


def test_affinity_is_per_route_and_session_and_off_without_a_session() -> None:
    p = provider("p", (1, 1))
    r1 = route((p, "m"), strategy=Strategy.WEIGHTED, affinity=True, name="default")
    r2 = route((p, "m"), strategy=Strategy.WEIGHTED, affinity=True, name="think")
    s = selector(r1, r2)
    one = s.select(r1, SMALL, session="a").ordered[0]
    two = s.select(r1, SMALL, session="b").ordered[0]
    assert one is not two  # weighted spreads new sessions
    assert s.select(r1, SMALL, session="a").ordered[0] is one
    assert s.select(r1, SMALL, session="b").ordered[0] is two
    # r2 has its own candidates (same keys) and its own round robin and sessions.
    assert s.select(r2, SMALL, session="b").ordered[0].key == one.key
    assert s.select(r2, SMALL, session="a").ordered[0].key == two.key
    assert s.select(r1, SMALL, session="a").ordered[0] is one
    no_session = [s.select(r1, SMALL).ordered[0] for _ in range(4)]
    assert {c.key for c in no_session} == {"p/d0/m", "p/d1/m"}


def test_weighted_shares_hold_with_affinity() -> None:
    p = provider("p", (3, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED, affinity=True)
    s = selector(r)
    homes = Counter(s.select(r, SMALL, session=f"s{i}").ordered[0].key for i in range(400))
    assert homes == {"p/d0/m": 300, "p/d1/m": 100}
    # Sticky sessions are charged to where they go, so new sessions keep the 3:1 split.
    for _ in range(3):
        for i in range(400):
            s.select(r, SMALL, session=f"s{i}")
    fresh = Counter(s.select(r, SMALL, session=f"n{i}").ordered[0].key for i in range(400))
    assert fresh == {"p/d0/m": 300, "p/d1/m": 100}


def test_affinity_table_expires_and_is_bounded() -> None:
    table = AffinityTable(max_sessions=2, ttl_s=10.0)
    table.put(("r", "a"), "x", now=0.0)
    table.put(("r", "b"), "y", now=1.0)
    assert table.get(("r", "a"), now=5.0) == "x"  # refreshes a's recency, not its TTL
    table.put(("r", "c"), "z", now=6.0)  # evicts b, the least recently used
    assert table.get(("r", "b"), now=6.0) is None
    assert table.get(("r", "a"), now=9.9) == "x"
    assert table.get(("r", "a"), now=10.0) is None  # expired
    assert len(table) == 1


def test_affinity_ttl_lets_a_session_move() -> None:
    p = provider("p", (1, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED, affinity=True)
    clock = Clock()
    s = Selector([r], clock=clock, rng=random.Random(1), affinity=AffinityTable(ttl_s=60.0))
    home = s.select(r, SMALL, session="s").ordered[0]
    clock.now += 59.0
    assert s.select(r, SMALL, session="s").ordered[0] is home  # not the round robin's turn
    clock.now += 61.0  # expired: the round robin decides again, and the session stays there
    moved = s.select(r, SMALL, session="s").ordered[0]
    assert moved is not home
    clock.now += 59.0
    assert s.select(r, SMALL, session="s").ordered[0] is moved


# -- stats and reload -----------------------------------------------------------------------------


def test_feedback_updates_the_stats() -> None:
    p = provider("p")
    r = route((p, "m"))
    clock = Clock()
    s = selector(r, clock=clock)
    (c,) = s.candidates(r)
    s.on_start(c)
    s.on_start(c)
    s.on_first_byte(c, 1.0)
    s.on_first_byte(c, 2.0)
    s.on_end(c, False)
    stats = s.stats(c)
    assert (stats.outstanding, stats.requests, stats.errors, stats.samples) == (1, 2, 1, 2)
    assert stats.ttft_s == pytest.approx(1.3)  # 1.0 + 0.3 * (2.0 - 1.0)
    assert stats.last_error_s == clock.now
    s.on_end(c, True)
    s.on_end(c, True)  # one end too many does not go below zero
    assert stats.outstanding == 0 and stats.last_error_s is None


def test_stats_and_sessions_survive_a_reload_when_keys_match() -> None:
    p = provider("p", (1, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED, affinity=True)
    old = selector(r)
    c0, c1 = old.candidates(r)
    serve(old, c0, 0.4)
    old.on_start(c1)
    home = old.select(r, SMALL, session="s").ordered[0]
    gone = route((provider("q"), "m"), name="gone")
    old.select(gone, SMALL)
    old.on_start(old.candidates(gone)[0])
    old.on_end(old.candidates(gone)[0], True)

    # The new config: the same provider rebuilt (new objects), plus a new deployment.
    p2 = provider("p", (1, 1, 1))
    r2 = route((p2, "m"), strategy=Strategy.WEIGHTED, affinity=True)
    new = Selector([r2], clock=Clock(), rng=random.Random(1), previous=old)
    n0, n1, n2 = new.candidates(r2)
    assert new.stats(n0).samples == 1 and new.stats(n0).ttft_s == 0.4
    assert new.stats(n1).outstanding == 1
    assert new.stats(n2).requests == 0
    new.on_end(n1, True)  # the in-flight request ends: shared with the old runtime
    assert old.stats(c1).outstanding == 0
    assert new.select(r2, SMALL, session="s").ordered[0].key == home.key
    # The old-only, idle candidate was not carried over: 3 configured candidates only.
    assert new.tracked == 3


def test_explicit_routes_built_per_request_share_stats_and_state() -> None:
    p = provider("p", (1, 1))
    s = selector()
    one = route((p, "m"), strategy=Strategy.WEIGHTED, name="explicit")
    two = route((p, "m"), strategy=Strategy.WEIGHTED, name="explicit")
    assert s.select(one, SMALL).ordered[0].key == "p/d0/m"
    assert s.select(two, SMALL).ordered[0].key == "p/d1/m"  # the same cached entry
    s.on_start(s.candidates(two)[0])
    assert s.stats(s.candidates(one)[0]).outstanding == 1


def test_routes_built_per_request_are_bounded_with_their_stats() -> None:
    p = provider("p", (1, 1))
    configured = route((p, "m"))
    s = selector(configured)
    assert s.tracked == 2
    in_flight = s.select(route((p, "model-0"), name="explicit"), SMALL).ordered[0]
    s.on_start(in_flight)
    for n in range(1, 3 * MAX_ADHOC_ROUTES):
        s.select(route((p, f"model-{n}"), name="explicit"), SMALL)
    # Configured, the cached explicit routes, and the request still in flight.
    assert s.tracked == 2 + 2 * MAX_ADHOC_ROUTES + 1
    s.on_end(in_flight, True)
    assert s.tracked == 2 + 2 * MAX_ADHOC_ROUTES
    assert s.stats(s.candidates(configured)[0]).requests == 0


# -- weighted: a backed-up deployment sits out ------------------------------------------------


def test_weighted_skips_a_deployment_that_stops_answering() -> None:
    """A deployment that accepts requests and never answers keeps its round-robin share only
    until BACKLOG_MIN of them are stuck; then it is a last fallback until they drain."""
    p = provider("p", (1, 1, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED)
    s = selector(r)
    stuck: list[Candidate] = []
    counts: Counter[str] = Counter()
    for _ in range(3_000):
        chosen = s.select(r, SMALL).ordered[0]
        counts[chosen.deployment.name] += 1
        s.on_start(chosen)
        if chosen.deployment.name == "d2":
            stuck.append(chosen)  # never answers
        else:
            s.on_end(chosen, ok=True)  # answers at once
    assert counts["d2"] == BACKLOG_MIN
    assert counts["d0"] == counts["d1"] == (3_000 - BACKLOG_MIN) // 2
    # Still a fallback, last.
    assert keys(s.select(r, SMALL))[-1] == "p/d2/m"
    # Its requests time out: it rejoins, without a burst to catch up on its missed turns.
    for cand in stuck:
        s.on_end(cand, ok=False)
    picks = Counter(s.select(r, SMALL).ordered[0].deployment.name for _ in range(300))
    assert picks == Counter({"d0": 100, "d1": 100, "d2": 100})


def test_weighted_backlog_is_relative_to_the_others() -> None:
    """Long streams keep many requests in flight everywhere: a backlog counts only against
    the least loaded candidate, per unit of weight."""
    p = provider("p", (2, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED)
    s = selector(r)
    d0, d1 = s.candidates(r)
    for _ in range(60):
        s.on_start(d0)  # 30 per unit of weight
    for _ in range(100):
        s.on_start(d1)  # 100 per unit: below 4 x (30 + 1)
    picks = Counter(s.select(r, SMALL).ordered[0].deployment.name for _ in range(30))
    assert picks == Counter({"d0": 20, "d1": 10})
    for _ in range(30):
        s.on_start(d1)  # 130: at least 4 x 31 = 124
    picks = Counter(s.select(r, SMALL).ordered[0].deployment.name for _ in range(30))
    assert picks == Counter({"d0": 30})
    assert keys(s.select(r, SMALL)) == ["p/d0/m", "p/d1/m"]


def test_weighted_never_leaves_nothing_to_choose() -> None:
    """When every candidate is backed up alike, the round robin goes on as usual."""
    p = provider("p", (1, 1))
    r = route((p, "m"), strategy=Strategy.WEIGHTED)
    s = selector(r)
    for cand in s.candidates(r):
        for _ in range(50):
            s.on_start(cand)
    picks = [s.select(r, SMALL).ordered[0].deployment.name for _ in range(4)]
    assert picks == ["d0", "d1", "d0", "d1"]
