"""What the benchmark ran on, and how busy the machine already was before it started."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def _first_line(argv: list[str]) -> str | None:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def _per_core_ticks() -> dict[str, tuple[int, int]]:
    """cpuN -> (busy, total) jiffies from /proc/stat."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields[:8]]
            idle = values[3] + values[4]  # idle + iowait
            ticks[name] = (sum(values) - idle, sum(values))
    return ticks


def background_busy_percent(seconds: float = 1.0) -> dict[str, float]:
    """How busy each core was over `seconds` while the benchmark had nothing running."""
    before = _per_core_ticks()
    time.sleep(seconds)
    after = _per_core_ticks()
    busy = {}
    for core, (b1, t1) in after.items():
        b0, t0 = before.get(core, (b1, t1))
        busy[core] = round(100.0 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else 0.0
    return busy


def machine_info(python: str) -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    wrk = shutil.which("wrk")
    py_version = _first_line([python, "-c", "import platform; print(platform.python_version())"])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": py_version or platform.python_version(),
        "uvloop": metadata.version("uvloop"),
        "httptools": metadata.version("httptools"),
        "wrk": _first_line([wrk, "-v"]) if wrk else None,
        "loadavg_start": os.getloadavg(),
        "background_busy_percent": background_busy_percent(),
    }
