"""Share of a Claude Code session that reaches the background model: Junction's defaults
versus claude-code-router's rules. No network: the recorded TUI requests
(tests/fixtures/routing/cc_tui_*, Claude Code 2.1.197) go through the same routing decision
the gateway runs (`Decider.prepare` + `Decider.decide`).

The session replayed is what one interactive prompt session sends: a title call, a main turn,
an Explore subagent and a `/compact`, as recorded:

* ``plain``: no environment variables (the title call carries the main model's name, the
  subagent ``claude-haiku-4-5-20251001``);
* ``custom``: ANTHROPIC_SMALL_FAST_MODEL / ANTHROPIC_DEFAULT_HAIKU_MODEL set to names of the
  user's choosing (``cc-small-fast-x``, ``cc-haiku-x``), as recorded;
* ``junction claude``: the same variables set to Junction's aliases, as `junction claude`
  and `junction env` do.

The router config is the usual claude-code-router one: ``default`` (the main model),
``background`` (a cheap model) and ``long_context``. "CCR" is the same config with the Claude
Code signals switched off (``router.claude_code``), which leaves claude-code-router's rules.
Input tokens are Junction's local estimate (docs/token-counting.md).

With ``--timing`` it also measures the cost of scenario detection per capture (median of
repeats, µs per call): the claude-code-router rules alone and with the Claude Code signals.

    .venv/bin/python benchmarks/cc_session_share.py [--timing]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config.loader import load_config_dict
from proxy.dialects.tokens import count_tokens
from proxy.filters.api import Dialect
from proxy.routing.claude_code import HAIKU_ALIAS, SMALL_FAST_ALIAS
from proxy.routing.decide import Decider
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.scenarios import ScenarioRules, detect
from proxy.routing.sessions import SessionUsage

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "routing"
BACKGROUND = "cheap,small-model"
ROUTER = {"default": "main,main-model", "background": BACKGROUND, "long_context": "long,lc"}
CCR_SWITCHES = {"title": False, "compact": False, "subagent": False, "haiku_tier": False}
PROVIDERS = [
    {"name": name, "dialect": "anthropic", "base_url": "http://127.0.0.1:9"}
    for name in ("main", "cheap", "long")
]

# (capture, model override) per call, in the order Claude Code makes them.
SESSIONS: dict[str, list[tuple[str, str | None]]] = {
    "plain": [
        ("cc_tui_01_title_main_model", None),
        ("cc_tui_02_main_turn1", None),
        ("cc_tui_06_explore_subagent_default_haiku", None),
        ("cc_tui_03_compact", None),
    ],
    "custom": [
        ("cc_tui_04_title_small_fast", None),
        ("cc_tui_02_main_turn1", None),
        ("cc_tui_05_explore_subagent_custom_haiku", None),
        ("cc_tui_03_compact", None),
    ],
    "junction claude": [
        ("cc_tui_01_title_main_model", SMALL_FAST_ALIAS),
        ("cc_tui_02_main_turn1", None),
        ("cc_tui_06_explore_subagent_default_haiku", HAIKU_ALIAS),
        ("cc_tui_03_compact", None),
    ],
}


# claude-code-router has no aliases for the variables to name, so `junction claude` is
# replayed with Junction's rules only.
RUNS = [
    (label, session, rules_name, ccr)
    for label, session in SESSIONS.items()
    for rules_name, ccr in (("Junction", False), ("claude-code-router", True))
    if not (ccr and label == "junction claude")
]


def capture(name: str) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    raw = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    return raw["body"], [(k.lower().encode(), v.encode()) for k, v in raw["headers"]]


def runtime(ccr: bool) -> RuntimeConfig:
    router: dict[str, Any] = dict(ROUTER)
    if ccr:
        router["claude_code"] = CCR_SWITCHES
    cfg = load_config_dict({"providers": PROVIDERS, "router": router}, env={})
    return RuntimeConfig.from_config(cfg, clock=lambda: 0.0, rng=random.Random(1))


def replay(rt: RuntimeConfig, session: list[tuple[str, str | None]]) -> list[tuple[str, str, int]]:
    """(call, target, input tokens) per request of the session."""
    decider = Decider(rt, SessionUsage(clock=lambda: 0.0), lambda: 0.0)
    out = []
    for name, model in session:
        body, headers = capture(name)
        if model is not None:
            body["model"] = model
        tokens = count_tokens(body, Dialect.ANTHROPIC)
        facts, rules = decider.prepare(body, headers, Dialect.ANTHROPIC, len(orjson.dumps(body)))
        decision = decider.decide(facts, rules, None, body=body)
        first = decision.selection.ordered[0]
        target = f"{first.provider.name},{first.model}"
        out.append((f"{name[7:]} ({decision.scenario})", target, tokens))
    return out


def shares() -> None:
    print("| session | rules | requests to background | input tokens to background |")
    print("| --- | --- | --- | --- |")
    for label, session, rules_name, ccr in RUNS:
        rows = replay(runtime(ccr), session)
        bg = [r for r in rows if r[1] == BACKGROUND]
        total_tokens = sum(r[2] for r in rows)
        bg_tokens = sum(r[2] for r in bg)
        print(
            f"| {label} | {rules_name} | {len(bg)}/{len(rows)} "
            f"({100 * len(bg) / len(rows):.0f} %) | {bg_tokens:,}/{total_tokens:,} "
            f"({100 * bg_tokens / total_tokens:.1f} %) |"
        )
    print()
    for label, session, rules_name, ccr in RUNS:
        rows = replay(runtime(ccr), session)
        calls = ", ".join(f"{call} -> {target}" for call, target, _ in rows)
        print(f"{label} / {rules_name}: {calls}")


def timing(repeats: int = 15, number: int = 5000) -> None:
    ccr = ScenarioRules(
        background=True,
        long_context=True,
        cc_title=False,
        cc_compact=False,
        cc_subagent=False,
        haiku_tier=False,
    )
    junction = ScenarioRules(
        background=True, long_context=True, title=True, compact=True, subagent_readonly=True
    )
    print("| capture | body KB | CCR rules µs | with Claude Code signals µs |")
    print("| --- | --- | --- | --- |")
    for name in sorted({n for s in SESSIONS.values() for n, _ in s}):
        body, _ = capture(name)
        size = len(orjson.dumps(body)) / 1024
        cells = []
        for rules in (ccr, junction):

            def run(rules: ScenarioRules = rules, body: dict[str, Any] = body) -> None:
                detect(body, model=body["model"], tokens=10_000, previous_input_tokens=None,
                       rules=rules)  # fmt: skip

            times = timeit.repeat(run, repeat=repeats, number=number)
            cells.append(statistics.median(times) / number * 1e6)
        print(f"| {name} | {size:.0f} | {cells[0]:.2f} | {cells[1]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="also time scenario detection")
    args = parser.parse_args()
    shares()
    if args.timing:
        print()
        timing()


if __name__ == "__main__":
    main()
