"""Where Junction's CPU goes under the small-request load: a py-spy profile, summarised.

py-spy samples the running worker from outside (no change to Junction); its raw output is one
collapsed stack per line with a sample count, from which the hot spots are the functions that
were on top of the stack (self time) and the ones that were anywhere on it (total time).
Modules compiled with mypyc run as native code and do not show as Python frames, so py-spy runs
with ``--native`` (its native unwinder needs to stop the process for each sample: throughput
while sampled is lower, which is why the profile is a scenario of its own). Compiled functions
then show as ``native:module.Class.method`` (mypyc's ``CPyDef_`` symbols), C code by file and
function (``stream.c:uv__read``), libraries by name (``libc.so.6:write``). Samples of threads
waiting for work (the log writer's condition wait, the loop's epoll wait) are idle time and
left out.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TOP = 15
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*?)(?::\d+)?\)$")
# mypyc: CPyDef_<module>___<Class>___<method> is the compiled body; CPyPy_ its Python-callable
# wrapper (a duplicate frame, skipped); CPyL/CPyStatic are not frames.
_NATIVE = re.compile(r"^CPyDef_(?P<name>\w+) \(")
_WRAPPER = re.compile(r"^CPyPy_\w+ \(")
_ADDRESS = re.compile(r"^0x[0-9a-f]+ \((?P<lib>[^()]*)\)$")
# The total column is about Junction's own functions, compiled or interpreted; the loop's and
# the interpreter's frames sit under nearly every sample and would crowd them out.
OWN_CODE = ("native:", "proxy/")
# Frames that mean the thread waits for work: such samples are idle time, not CPU.
IDLE_FRAMES = ("Condition.wait", "epoll_wait", "epoll_pwait", "pthread_cond_timedwait")


def frame_name(frame: str) -> str:
    """`handle (proxy/server/app.py:120)` -> `proxy/server/app.py:handle` (line numbers off,
    so one function's samples add up)."""
    frame = frame.strip()
    native = _NATIVE.match(frame)
    if native:
        return "native:" + native.group("name").replace("___", ".")
    address = _ADDRESS.match(frame)
    if address:  # no symbol: the library is all there is to say
        return f"{address.group('lib')}:?"
    m = _FRAME.match(frame)
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("/proxy/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + 1 :]
            break
    return f"{path}:{m.group('func')}"


def summarize_collapsed(text: str, top: int = TOP) -> dict[str, Any]:
    """Self and total samples per function from py-spy's raw (collapsed) output; idle
    samples (a thread waiting for work, see IDLE_FRAMES) are counted apart."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        raw = [f for f in stack.split(";") if f and not _WRAPPER.match(f.strip())]
        if any(marker in f for f in raw for marker in IDLE_FRAMES):
            idle += n
            continue
        samples += n
        frames = [frame_name(f) for f in raw]
        if not frames:
            continue
        own[frames[-1]] += n
        for name in set(frames):
            if name.startswith(OWN_CODE):
                total[name] += n

    def share(c: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / samples, 1)] for name, n in c.most_common(top)]

    # The frames under every sample (runpy, main, the event loop's run) say nothing: left out.
    total = Counter({k: n for k, n in total.items() if n < 0.95 * samples})

    return {
        "samples": samples,
        "idle_samples": idle,
        "self": share(own) if samples else [],
        "total": share(total) if samples else [],
    }


def record(
    pid: int, seconds: int, out: Path, cpu: int | None, *, native: bool | None = None
) -> tuple[subprocess.Popen[bytes], list[str]] | str:
    """Starts py-spy on `pid` for `seconds` (the process and its command line); a string
    says why it cannot. ``native`` walks C frames too (compiled modules); it stops the
    process for each sample, so py-spy refuses it with ``--nonblocking``. By default it is
    on where py-spy has a native unwinder (x86_64)."""
    if native is None:
        native = platform.machine() in ("x86_64", "AMD64")
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return "py-spy not installed (pip install -e '.[bench]')"
    argv = [
        exe,
        "record",
        "--format",
        "raw",
        "--native" if native else "--nonblocking",
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
