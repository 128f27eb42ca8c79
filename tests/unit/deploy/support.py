"""What the deployment tests share: the repository's deploy files, the Compose file's variable
interpolation, and child processes started from the commands those files name.

Nothing here imitates Docker or Helm. The tests run the commands the files give, with the
interpreter and the ``junction`` script of the current virtualenv in place of the image's.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
CHART = REPO / "helm" / "junction"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
FIXTURES = REPO / "tests" / "fixtures" / "deploy"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

# ${VAR}, ${VAR:-default}, ${VAR-default} and $$, as the Compose specification interpolates.
_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\})")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name, op, default = match.group(2), match.group(3), match.group(4)
        value = env.get(name)
        if op == ":-" and not value:
            return default
        if op == "-" and value is None:
            return default
        if value is None:
            raise KeyError(f"compose variable {name} is not set and has no default")
        return value

    return _INTERPOLATION.sub(one, text)


def interpolate_values(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value of a loaded Compose file (Compose never touches comments
    or keys)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_values(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_values(value, env) for key, value in node.items()}
    return node


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE_FILE)
    assert isinstance(doc, dict)
    return doc


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answers. http.client, not urllib: an
    HTTP_PROXY in the environment must not carry a loopback request away."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path or "/")
        return int(conn.getresponse().status)
    except OSError:
        return None
    finally:
        conn.close()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without provider keys or JUNCTION_* overrides, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JUNCTION_") and k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def image_command(argv: Sequence[str]) -> list[str]:
    """An image's command run from this virtualenv: `junction` and `python` are its own."""
    first = argv[0]
    if first == "python":
        return [sys.executable, *argv[1:]]
    script = BIN / first
    if script.exists():
        return [str(script), *argv[1:]]
    found = shutil.which(first)
    assert found is not None, f"{first} is not installed"
    return [found, *argv[1:]]


class Child:
    """A process started for a test; stopped with SIGTERM (then SIGKILL) by `stop`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.argv = list(argv)
        # A file, not a pipe: an access log nobody reads must never block the child.
        self.log_path = cwd / f"{Path(self.argv[0]).name}-{id(self)}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until(self, url: str, status: int = 200) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if http_status(url, 0.5) == status:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv} exited early:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"{url} never answered {status}:\n{self.stop_and_output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop_and_output(self) -> str:
        self.stop()
        return self.output()
