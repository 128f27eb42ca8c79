"""PNG plots of a suite run (matplotlib, no display): percentile curves and throughput vs p99."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "direct": "#888888",
    "junction": "#d62728",
    "nginx": "#2ca02c",
    "haproxy": "#1f77b4",
    "ccr": "#9467bd",
    "litellm": "#ff7f0e",
}
TICKS = (0.0, 50.0, 90.0, 99.0, 99.9, 99.99)


def _x(p: float) -> float:
    """Percentile p on the axis 1 / (1 - p): 50 -> 2, 99 -> 100, 99.9 -> 1,000."""
    return 1.0 / max(1e-6, 1.0 - p / 100.0)


def _percentile_plot(
    plt: Any, curves: dict[str, list[list[float]]], title: str, ylabel: str, path: Path
) -> Path | None:
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, curve in curves.items():
        ax.plot(
            [_x(p) for p, _ in curve],
            [v for _, v in curve],
            marker=".",
            label=name,
            color=COLORS.get(name),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([_x(p) for p in TICKS])
    ax.set_xticklabels([f"p{p:g}" for p in TICKS])
    ax.set_xlabel("percentile")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Every plot the run has data for; nothing (and no error) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        results.setdefault("errors", []).append(
            "matplotlib is not installed: no plots (pip install -e '.[bench]')"
        )
        return []
    out.mkdir(parents=True, exist_ok=True)
    sc = results.get("scenarios", {})
    made: list[Path | None] = []

    def curves(scenario: str, key: str = "curve") -> dict[str, list[list[float]]]:
        return {n: v.get(key) for n, v in sc.get(scenario, {}).items() if v.get(key)}

    made.append(
        _percentile_plot(
            plt,
            curves("small"),
            "Small request, closed loop, 32 conns",
            "latency (ms)",
            out / "small_percentiles.png",
        )
    )
    p99_points = {
        n: next((p for p in v.get("points", []) if p.get("offered") == 10_000.0), None)
        for n, v in sc.get("sweep", {}).items()
    }
    made.append(
        _percentile_plot(
            plt,
            {n: p.get("curve") for n, p in p99_points.items() if p},
            "Small request, open loop 10,000 req/s",
            "latency (ms)",
            out / "open_10k_percentiles.png",
        )
    )
    made.append(
        _percentile_plot(
            plt,
            curves("stream", "ttft_curve"),
            "Claude Code-sized request: time to first token",
            "TTFT (ms)",
            out / "stream_ttft_percentiles.png",
        )
    )
    made.append(
        _percentile_plot(
            plt,
            curves("translate", "ttft_curve"),
            "Translated Anthropic->OpenAI: time to first token",
            "TTFT (ms)",
            out / "translate_ttft_percentiles.png",
        )
    )
    made.append(_throughput_plot(plt, sc.get("sweep", {}), out / "throughput_vs_p99.png"))
    return [p for p in made if p is not None]


def _throughput_plot(plt: Any, sweep: dict[str, Any], path: Path) -> Path | None:
    series = {n: v["points"] for n, v in sweep.items() if v.get("points")}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in series.items():
        pts = [
            (p["rps"]["median"], p["p99"]["median"])
            for p in points
            if p.get("rps", {}).get("median")
        ]
        if pts:
            ax.plot(
                [x for x, _ in pts],
                [y for _, y in pts],
                marker="o",
                label=name,
                color=COLORS.get(name),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("achieved req/s (open loop, offered load rising)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("Throughput vs p99, small request")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
