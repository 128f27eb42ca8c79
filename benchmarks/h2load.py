"""HTTP/1.1 keep-alive against HTTP/2 multiplexed clients, both with h2load (nghttp2)."""

from __future__ import annotations

import re
from typing import Any

from benchmarks.suite import Suite, Target, median_spread
from benchmarks.workload import Bodies

H2LOAD_RPS = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
H2LOAD_REQS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored"
)
H2LOAD_TIME = re.compile(
    r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+"
    r"([\d.]+)(us|ms|s)"
)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_h2load(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m := H2LOAD_RPS.search(text):
        out["rps"] = float(m.group(1))
    if m := H2LOAD_REQS.search(text):
        out["succeeded"], out["failed"] = int(m.group(4)), int(m.group(5)) + int(m.group(6))
    if m := H2LOAD_TIME.search(text):
        out["mean_ms"] = round(float(m.group(5)) * _UNIT_MS[m.group(6)], 3)
        out["max_ms"] = round(float(m.group(3)) * _UNIT_MS[m.group(4)], 3)
    return out


def h2(suite: Suite, t: Target, b: Bodies) -> dict[str, Any]:
    """h2load, the same tool for both protocols: 32 HTTP/1.1 connections, or 2 HTTP/2
    connections with 16 streams each (32 in flight either way)."""
    import shutil

    from benchmarks.peers import apt_install

    missing = apt_install("h2load", "nghttp2-client", suite.logs / "apt.log")
    h2load = shutil.which("h2load")
    if h2load is None:
        return {"skipped": missing or "h2load not installed (apt-get install nghttp2-client)"}
    port = {"nginx": suite.ports.nginx_h2, "haproxy": suite.ports.haproxy_h2}.get(t.name, t.port)
    body_file = suite.logs / "h2-small.json"
    body_file.write_bytes(b.small)
    a = suite.args
    out: dict[str, Any] = {}
    modes = {"h1": (["--h1", "-c", "32", "-m", "1"], t.port), "h2": (["-c", "2", "-m", "16"], port)}
    for proto, (flags, p) in modes.items():
        runs = []
        for i in range(a.runs):
            argv = [
                h2load,
                *flags,
                "-t",
                "1",
                "-D",
                f"{round(a.duration * 1000)}ms",
                f"--warm-up-time={round(a.warmup * 1000)}ms",
                "-d",
                str(body_file),
            ]
            for k, v in t.headers:
                argv += ["-H", f"{k}: {v}"]
            argv.append(t.url(port=p))
            proc = suite.run_tool(f"h2load {proto} {t.name} #{i + 1}", argv, a.duration + 60)
            runs.append(parse_h2load(proc.stdout))
        ok = [r for r in runs if "rps" in r]
        out[proto] = {"rps": median_spread([r["rps"] for r in ok])} if ok else {}
        if ok:
            out[proto]["mean_ms"] = median_spread([r.get("mean_ms", 0.0) for r in ok])
            out[proto]["failed"] = median_spread([r.get("failed", 0) for r in ok])
    return out
