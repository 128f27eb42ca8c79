"""Token usage and cost: priced once per stream, added up for ``/admin/usage`` and metrics.

How this works. When a stream ends, `UsageTotals.record` prices the usage the provider
reported with the same function and the same price table the spend limits use
(`proxy.limits.spend.cost_usd`, prices from `proxy.filters.limit.catalog_pricing`: the model
catalog's defaults with each provider's ``model_info`` overrides), stores the cost on the
stream's info (the access log and traces read it there) and adds it to one row per
(provider, model, key) since the worker started. ``/admin/usage`` and the token and cost
metrics add the rows up when they are read. What a stream adds to (its price, its row and
its scenario's row) is remembered per (provider, model, key, scenario) for the current config,
so a stream costs one dictionary lookup here.

Looking a price up can run the catalog's patterns, so prices are remembered per
(provider, model) until the config changes (``MAX_PRICED_MODELS`` of them). The totals are
bounded too: past ``MAX_USAGE_ROWS`` rows, new combinations are added up under "other".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from proxy.filters.limit import catalog_pricing
from proxy.limits.api import ModelPrice, Pricing
from proxy.limits.spend import cost_usd

if TYPE_CHECKING:
    from proxy.http.info import StreamInfo
    from proxy.routing.runtime import RuntimeConfig

MAX_PRICED_MODELS: Final = 1024
MAX_USAGE_ROWS: Final = 1000
MAX_SCENARIO_ROWS: Final = 64  # scenarios are a handful; a custom router could name more
OTHER: Final = "other"
NO_KEY: Final = "-"  # requests without a configured downstream key (auth off)


@dataclass(slots=True)
class UsageRow:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, tokens_in: int, tokens_out: int, cached: int, usd: float) -> None:
        self.requests += 1
        self.input_tokens += tokens_in
        self.output_tokens += tokens_out
        self.cached_tokens += cached
        self.cost_usd += usd

    def doc(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


class PriceBook:
    """Prices per (provider, model) for one config snapshot, remembered after the first use."""

    __slots__ = ("_prices", "_pricing", "_runtime")

    def __init__(self) -> None:
        self._runtime: object = None
        self._pricing: Pricing | None = None
        self._prices: dict[tuple[str, str], ModelPrice | None] = {}

    def price(self, runtime: RuntimeConfig, provider: str, model: str) -> ModelPrice | None:
        if runtime is not self._runtime or self._pricing is None:
            self._runtime = runtime  # a reload may change prices: start again
            self._pricing = catalog_pricing(runtime.providers)
            self._prices.clear()
        key = (provider, model)
        try:
            return self._prices[key]
        except KeyError:
            pass
        found = self._pricing(provider, model)
        if len(self._prices) < MAX_PRICED_MODELS:
            self._prices[key] = found
        return found


Row = tuple[str, str, str]  # (provider, model, key name)
_OTHER_ROW: Final = (OTHER, OTHER, OTHER)
# What a stream of (provider, model, key name, scenario) adds to, remembered per config
# snapshot: one lookup per stream instead of a price, a row and a scenario lookup.
MAX_REMEMBERED_TARGETS: Final = 4096
Target = tuple[ModelPrice | None, UsageRow, UsageRow]


class UsageTotals:
    """Usage and cost since the worker started (see the module docstring)."""

    def __init__(self, max_rows: int = MAX_USAGE_ROWS) -> None:
        self.max_rows = max_rows
        self.prices = PriceBook()
        self.total = UsageRow()
        self.rows: dict[Row, UsageRow] = {}
        # By routing scenario (main turn, title, subagent, compact, ...): what each kind of
        # Claude Code call costs.
        self.scenarios: dict[str, UsageRow] = {}
        self._targets: dict[tuple[str, str, str, str], Target] = {}
        self._targets_runtime: object = None  # the config snapshot the targets' prices are of

    def record(self, info: StreamInfo, runtime: RuntimeConfig) -> None:
        """Price the stream's usage onto ``info.cost_usd`` and count it. Streams that never
        reached a provider are not counted."""
        provider = info.upstream_provider
        if not provider:
            return
        if runtime is not self._targets_runtime:
            self._targets_runtime = runtime  # a reload may change prices
            self._targets.clear()
        key = (provider, info.upstream_model, info.api_key_name, info.scenario)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= MAX_REMEMBERED_TARGETS:
                self._targets.clear()
            target = self._targets[key] = self._target(runtime, key)
        price, row, srow = target
        tokens_in = max(info.input_tokens, 0)
        tokens_out = max(info.output_tokens, 0)
        cached = max(info.cached_tokens, 0)
        usd = 0.0
        if tokens_in or tokens_out:
            usd = info.cost_usd = cost_usd(tokens_in, tokens_out, price, cached)
        self.total.add(tokens_in, tokens_out, cached, usd)
        row.add(tokens_in, tokens_out, cached, usd)
        srow.add(tokens_in, tokens_out, cached, usd)

    def _target(self, runtime: RuntimeConfig, key: tuple[str, str, str, str]) -> Target:
        provider, model, key_name, scenario = key
        price = self.prices.price(runtime, provider, model)
        rkey = (provider, model, key_name or NO_KEY)
        row = self.rows.get(rkey)
        if row is None:
            if len(self.rows) >= self.max_rows:
                rkey = _OTHER_ROW
                row = self.rows.get(rkey)
            if row is None:
                row = self.rows[rkey] = UsageRow()
        scenario = scenario or NO_KEY
        srow = self.scenarios.get(scenario)
        if srow is None:
            if len(self.scenarios) >= MAX_SCENARIO_ROWS:
                scenario = OTHER
                srow = self.scenarios.get(scenario)
            if srow is None:
                srow = self.scenarios[scenario] = UsageRow()
        return price, row, srow

    def by(self, part: int) -> dict[str, UsageRow]:
        """The rows added up by provider (0), model (1, as "provider,model") or key (2)."""
        out: dict[str, UsageRow] = {}
        for key, row in self.rows.items():
            name = f"{key[0]},{key[1]}" if part == 1 else key[part]
            into = out.get(name)
            if into is None:
                into = out[name] = UsageRow()
            into.requests += row.requests
            into.input_tokens += row.input_tokens
            into.output_tokens += row.output_tokens
            into.cached_tokens += row.cached_tokens
            into.cost_usd += row.cost_usd
        return out

    def doc(self, since_unix_s: float) -> dict[str, object]:
        return {
            "since_unix_s": round(since_unix_s, 3),
            "total": self.total.doc(),
            "by_key": {k: r.doc() for k, r in self.by(2).items()},
            "by_model": {k: r.doc() for k, r in self.by(1).items()},
            "by_provider": {k: r.doc() for k, r in self.by(0).items()},
            "by_scenario": {k: r.doc() for k, r in self.scenarios.items()},
        }
