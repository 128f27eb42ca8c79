"""Usage totals price streams with the spend limits' function and price table."""

from __future__ import annotations

from pathlib import Path

import yaml

from proxy.config.loader import load_config
from proxy.filters.limit import catalog_pricing
from proxy.http.info import StreamInfo
from proxy.limits.spend import cost_usd
from proxy.observability.usage import UsageTotals
from proxy.routing.runtime import RuntimeConfig


def runtime(tmp_path: Path, house_input_price: float = 2.0) -> RuntimeConfig:
    path = tmp_path / "junction.yaml"
    cfg = {
        "providers": [
            {
                "name": "anthropic",
                "dialect": "anthropic",
                "base_url": "http://127.0.0.1:9",
                "api_key": "k",
                "models": ["claude-sonnet-4-5", "house-model"],
                "model_info": {
                    "house-model": {"input_price": house_input_price, "output_price": 4.0}
                },
            }
        ],
        "router": {"default": "anthropic,claude-sonnet-4-5"},
    }
    path.write_text(yaml.safe_dump(cfg))
    return RuntimeConfig.from_config(load_config(path, env={}))


def stream(model: str, key: str, tokens_in: int, tokens_out: int) -> StreamInfo:
    info = StreamInfo(1.0, "HTTP/1.1")
    info.upstream_provider = "anthropic"
    info.upstream_model = model
    info.api_key_name = key
    info.input_tokens = tokens_in
    info.output_tokens = tokens_out
    return info


def test_cost_is_the_spend_limits_cost(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    totals = UsageTotals()
    pricing = catalog_pricing(rt.providers)
    for model, n_in, n_out in (("claude-sonnet-4-5", 1000, 200), ("house-model", 500, 50)):
        info = stream(model, "ci", n_in, n_out)
        totals.record(info, rt)
        assert info.cost_usd == cost_usd(n_in, n_out, pricing("anthropic", model)) > 0
    assert totals.by(1)["anthropic,house-model"].cost_usd == (500 * 2 + 50 * 4) / 1e6
    assert totals.by(2)["ci"].requests == 2 and totals.by(0)["anthropic"].requests == 2
    doc = totals.doc(0.0)
    assert doc["total"] == {
        "requests": 2,
        "input_tokens": 1500,
        "output_tokens": 250,
        "cached_tokens": 0,
        "cost_usd": round((1000 * 3 + 200 * 15 + 500 * 2 + 50 * 4) / 1e6, 6),
    }


def test_streams_that_reached_no_provider_are_not_counted(tmp_path: Path) -> None:
    totals = UsageTotals()
    totals.record(StreamInfo(1.0, "HTTP/1.1"), runtime(tmp_path))
    assert totals.total.requests == 0


def test_names_beyond_the_bound_are_added_up_as_other(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    totals = UsageTotals(max_rows=2)
    for key in ("a", "b", "c", "d"):
        totals.record(stream("house-model", key, 10, 1), rt)
    assert sorted(totals.by(2)) == ["a", "b", "other"]
    assert totals.by(2)["other"].requests == 2
    assert totals.by(1)["anthropic,house-model"].requests == 2  # "other" adds up apart
    assert totals.by(1)["other,other"].requests == 2
    assert totals.total.requests == 4


def test_cached_input_is_priced_apart_as_spend_limits_price_it(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    totals = UsageTotals()
    info = stream("claude-sonnet-4-5", "ci", 1000, 100)
    info.cached_tokens = 800
    totals.record(info, rt)
    # 200 uncached at $3, 800 cache reads at $0.30, 100 output at $15 (per million).
    assert info.cost_usd == (200 * 3 + 800 * 0.3 + 100 * 15) / 1e6
    price = catalog_pricing(rt.providers)("anthropic", "claude-sonnet-4-5")
    assert info.cost_usd == cost_usd(1000, 100, price, 800)
    assert totals.total.cached_tokens == 800
    # house-model sets no cached price: cache reads cost the input price.
    other = stream("house-model", "ci", 1000, 0)
    other.cached_tokens = 800
    totals.record(other, rt)
    assert other.cost_usd == 1000 * 2 / 1e6


def test_usage_by_scenario(tmp_path: Path) -> None:
    """What each kind of Claude Code call costs: main turns, title calls, subagents."""
    rt = runtime(tmp_path)
    totals = UsageTotals()
    for scenario, n_in in (("default", 30_000), ("title", 800), ("title", 700), ("", 10)):
        info = stream("house-model", "ci", n_in, 10)
        info.scenario = scenario
        totals.record(info, rt)
    doc = totals.doc(0.0)["by_scenario"]
    assert isinstance(doc, dict)
    assert doc["title"]["requests"] == 2 and doc["title"]["input_tokens"] == 1500
    assert doc["default"]["cost_usd"] == round((30_000 * 2 + 10 * 4) / 1e6, 6)
    assert doc["-"]["requests"] == 1  # no scenario (a stream that was not routed as a turn)


def test_a_reload_prices_the_next_streams_at_the_new_prices(tmp_path: Path) -> None:
    # What a stream adds to is remembered per config snapshot: a new one must not keep the
    # old prices, and the rows it adds to stay the same rows.
    old, new = runtime(tmp_path), runtime(tmp_path, house_input_price=5.0)
    totals = UsageTotals()
    first, second, third = (stream("house-model", "ci", 1000, 0) for _ in range(3))
    totals.record(first, old)
    totals.record(second, new)
    totals.record(third, old)
    assert (first.cost_usd, second.cost_usd, third.cost_usd) == (2e-3, 5e-3, 2e-3)
    assert totals.by(2)["ci"].requests == 3
    assert totals.by(2)["ci"].cost_usd == 2e-3 + 5e-3 + 2e-3


def test_each_key_and_scenario_adds_to_its_own_rows(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    totals = UsageTotals()
    for key, scenario in (("a", "default"), ("b", "default"), ("a", "title"), ("a", "default")):
        info = stream("house-model", key, 10, 1)
        info.scenario = scenario
        totals.record(info, rt)
    assert {k: r.requests for k, r in totals.by(2).items()} == {"a": 3, "b": 1}
    assert {k: r.requests for k, r in totals.scenarios.items()} == {"default": 3, "title": 1}
