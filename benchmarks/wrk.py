"""wrk as a second opinion on max throughput: its Lua script and the parse of its report."""

from __future__ import annotations

import re
from typing import Any

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = re.compile(r"^\s*([\d.]+)(us|ms|s|m)\s*$")


def lua_script(method: str, headers: list[tuple[str, str]], body: str) -> str:
    """A wrk script that sends `body` with `headers`; long brackets need no escaping."""
    level = "="
    while f"]{level}]" in body:
        level += "="
    lines = [f'wrk.method = "{method}"', f"wrk.body = [{level}[{body}]{level}]"]
    for name, value in headers:
        lines.append(f'wrk.headers["{_lua_quote(name)}"] = "{_lua_quote(value)}"')
    return "\n".join(lines) + "\n"


def _lua_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _to_ms(text: str) -> float | None:
    m = _DURATION.match(text)
    return round(float(m.group(1)) * _UNITS_MS[m.group(2)], 6) if m else None


def parse_report(output: str) -> dict[str, Any]:
    """Requests/sec, latency percentiles (ms) and error counts from `wrk --latency` output."""
    result: dict[str, Any] = {"rps": None, "latency_ms": {}, "non_2xx_3xx": 0, "socket_errors": {}}
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("Requests/sec:"):
            result["rps"] = float(stripped.split(":", 1)[1])
        elif m := re.match(r"^(50|75|90|99)%\s+(\S+)$", stripped):
            result["latency_ms"][f"p{m.group(1)}"] = _to_ms(m.group(2))
        elif stripped.startswith("Non-2xx or 3xx responses:"):
            result["non_2xx_3xx"] = int(stripped.split(":", 1)[1])
        elif stripped.startswith("Socket errors:"):
            for part in stripped.split(":", 1)[1].split(","):
                name, _, count = part.strip().partition(" ")
                result["socket_errors"][name] = int(count)
        elif m := re.match(r"^(\d+) requests in ([\d.]+)(us|ms|s|m),", stripped):
            result["requests"] = int(m.group(1))
    return result
