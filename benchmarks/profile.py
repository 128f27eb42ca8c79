"""Where Junction's CPU goes under the small-request load: a py-spy profile, summarised.

py-spy samples the running worker from outside (no change to Junction); its raw output is one
collapsed stack per line with a sample count, from which the hot spots are the functions that
were on top of the stack (self time) and the ones that were anywhere on it (total time).
Modules compiled with mypyc run as native code and do not show as Python frames: their time
counts against the nearest interpreted caller.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TOP = 15
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """`handle (proxy/server/app.py:120)` -> `proxy/server/app.py:handle` (line numbers off,
    so one function's samples add up)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("/proxy/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + 1 :]
            break
    return f"{path}:{m.group('func')}"


def summarize_collapsed(text: str, top: int = TOP) -> dict[str, Any]:
    """Self and total samples per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] += n
        for name in set(frames):
            total[name] += n

    def share(c: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / samples, 1)] for name, n in c.most_common(top)]

    # The frames under every sample (runpy, main, the event loop's run) say nothing: left out.
    total = Counter({k: n for k, n in total.items() if n < 0.95 * samples})

    return {
        "samples": samples,
        "self": share(own) if samples else [],
        "total": share(total) if samples else [],
    }


def record(
    pid: int, seconds: int, out: Path, cpu: int | None
) -> tuple[subprocess.Popen[bytes], list[str]] | str:
    """Starts py-spy on `pid` for `seconds` (the process and its command line); a string
    says why it cannot."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return "py-spy not installed (pip install -e '.[bench]')"
    argv = [
        exe,
        "record",
        "--format",
        "raw",
        "--nonblocking",
        "--rate",
        "250",
        "--duration",
        str(seconds),
        "--pid",
        str(pid),
        "--output",
        str(out),
    ]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), argv
