"""deploy/docker-compose.yml: valid against the Compose specification's JSON schema, wired as
its comments say, and its services' own commands run as a stack on loopback.

The schema is a copy of the specification's schema/compose-spec.json (tests/fixtures/deploy/
README.md says where it comes from). No container runs here: the stack test starts the
services' commands from this virtualenv, with the service names resolved to loopback ports as
Docker's DNS would resolve them to containers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from proxy.config import load_config
from tests.support.ports import free_ports

from .support import (
    COMPOSE_FILE,
    DEPLOY,
    FIXTURES,
    REPO,
    Child,
    child_env,
    compose,
    image_command,
    interpolate_values,
)

SCHEMA = FIXTURES / "compose-spec.json"


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The 2021 copy names draft 2019-09 with a trailing "#" that jsonschema does not know.
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft201909Validator)
    return cls(schema)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, f"unsupported duration {duration!r}"
    value, unit = int(match.group(1)), match.group(2)
    return value / 1000 if unit == "ms" else value * (60 if unit == "m" else 1)


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator().iter_errors(compose())
    ]
    assert errors == []


def test_the_schema_rejects_what_compose_rejects() -> None:
    # The check above is worth something only if the schema is strict.
    doc = compose()
    doc["services"]["junction"]["healthchek"] = doc["services"]["junction"].pop("healthcheck")
    assert not _validator().is_valid(doc)
    doc = compose()
    doc["services"]["agent"]["depends_on"]["junction"]["condition"] = "service_ready"
    assert not _validator().is_valid(doc)


def test_every_healthy_dependency_has_a_healthcheck() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "test" in services[dep].get("healthcheck", {}), (name, dep)


def test_stack_layout() -> None:
    services = compose()["services"]
    assert {"junction", "mock", "redis", "agent", "bench"} <= set(services)
    assert services["bench"]["profiles"] == ["bench"]  # not started by a plain `up`
    for name in ("junction", "mock", "bench"):
        build = services[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).is_file()
        assert services[name]["image"] == services["junction"]["image"]
    assert (COMPOSE_FILE.parent / services["agent"]["build"]["context"] / "Dockerfile").is_file()
    junction = services["junction"]
    assert junction["read_only"] is True and junction["tmpfs"] == ["/tmp"]
    assert junction["cap_drop"] == ["ALL"]
    # Published on the host's loopback only.
    assert all(p.startswith("127.0.0.1:") for p in junction["ports"])


def _junction_config_source() -> Path:
    for volume in compose()["services"]["junction"]["volumes"]:
        source, target, *_ = volume.split(":")
        if target == "/etc/junction/junction.yaml":
            return (COMPOSE_FILE.parent / str(source)).resolve()
    raise AssertionError("no config mounted over the image's")


def test_mounted_config_is_valid_and_drains_within_the_grace_period() -> None:
    path = _junction_config_source()
    cfg = load_config(path, env={})
    junction = compose()["services"]["junction"]
    assert cfg.server.drain_timeout_s < _seconds(junction["stop_grace_period"])
    assert cfg.listen.host == "0.0.0.0" and cfg.admin.host == "0.0.0.0"
    published = {p.rsplit(":", 1)[1] for p in junction["ports"]}
    assert published == {str(cfg.listen.port), str(cfg.admin.port)}
    assert any(str(cfg.admin.port) in part for part in junction["healthcheck"]["test"])
    assert cfg.redis is not None and "redis:6379" in str(cfg.redis.url)


# --- the stack, from the services' own commands ---------------------------------------------


class Stack:
    """The Compose services started from their commands, with host names mapped to ports."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.workdir = workdir
        self.env = {"MOCK_API_KEY": "stack-test-key-0123456789"}
        self.mock_port, self.port, self.admin_port = free_ports(3)
        self.redis_url = redis_url
        self.children: list[Child] = []

    def service(self, name: str) -> dict[str, Any]:
        service = interpolate_values(compose()["services"][name], self.env)
        assert isinstance(service, dict)
        return service

    def start(self) -> None:
        mock = self.service("mock")
        argv = _with_option(mock["command"], "--host", "127.0.0.1")
        argv = _with_option(argv, "--port", str(self.mock_port))
        self._run(image_command(["junction", *argv]), f"http://127.0.0.1:{self.mock_port}/")

        config = _junction_config_source().read_text(encoding="utf-8")
        text = config.replace("http://mock:8090", f"http://127.0.0.1:{self.mock_port}")
        text = text.replace("redis://redis:6379/0", self.redis_url)
        path = self.workdir / "junction.yaml"
        path.write_text(text, encoding="utf-8")
        junction = self.service("junction")
        env = {
            **junction["environment"],
            "JUNCTION_LISTEN__HOST": "127.0.0.1",
            "JUNCTION_LISTEN__PORT": str(self.port),
            "JUNCTION_ADMIN__HOST": "127.0.0.1",
            "JUNCTION_ADMIN__PORT": str(self.admin_port),
        }
        argv = ["junction", "serve", "--config", str(path)]
        self._run(image_command(argv), f"http://127.0.0.1:{self.admin_port}/readyz", env)

    def _run(self, argv: list[str], ready_url: str, env: dict[str, str] | None = None) -> None:
        child = Child(argv, child_env({**self.env, **(env or {})}), self.workdir)
        self.children.append(child)
        child.wait_until(ready_url)

    def healthcheck(self, name: str, port: int, own_port: int) -> list[str]:
        test = self.service(name)["healthcheck"]["test"]
        assert test[0] == "CMD"
        return image_command([part.replace(str(port), str(own_port)) for part in test[1:]])

    def stop(self) -> list[int]:
        return [child.stop() for child in reversed(self.children)]


def _with_option(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.integration.redis.server import RedisServer, redis_binary

    redis_binary()  # skips, saying why, when redis-server is missing
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    s = Stack(tmp_path_factory.mktemp("stack"), redis.url)
    try:
        s.start()
        yield s
    finally:
        statuses = s.stop()
        redis.stop()
    assert statuses == [0, 0], "Junction and the mock provider exit 0 after SIGTERM"


def _run(argv: list[str], env: dict[str, str], timeout_s: float = 30) -> str:
    done = subprocess.run(
        argv, env=child_env(env), cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_healthchecks_pass_against_the_running_services(stack: Stack) -> None:
    _run(stack.healthcheck("junction", 9901, stack.admin_port), {})
    _run(stack.healthcheck("mock", 8090, stack.mock_port), {})


def test_limits_are_shared_through_redis(stack: Stack) -> None:
    # A ProxyHandler without proxies: the request stays on loopback whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{stack.admin_port}/stats", timeout=5) as response:
        stats = json.loads(response.read())
    assert stats["limits"]["backend"] == "redis"


def test_agent_talks_to_junction_with_the_official_sdks(stack: Stack) -> None:
    agent = stack.service("agent")
    base = f"http://127.0.0.1:{stack.port}"
    env = {k: v.replace("http://junction:3456", base) for k, v in agent["environment"].items()}
    out = _run([sys.executable, str(DEPLOY / "agent" / "agent.py")], env)
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["anthropic", "streamed", "openai"]
    assert "route=mock,claude-sonnet-4-5" in lines[0]
    assert "stop=end_turn" in lines[1]


def test_bench_profile_command_runs_against_the_stack(stack: Stack) -> None:
    # The profile's own command, made tiny: one second at 50 requests per second.
    stack.env.update(BENCH_RATE="50", BENCH_DURATION="1", BENCH_CONNECTIONS="2")
    bench = stack.service("bench")
    assert bench["network_mode"] == "service:junction"  # the generator only targets loopback
    assert bench["volumes"] == ["../benchmarks:/opt/bench/benchmarks:ro"]
    entry = [
        part.replace("/opt/bench/benchmarks", str(REPO / "benchmarks"))
        for part in bench["entrypoint"]
    ]
    command = [
        part.replace("127.0.0.1:3456", f"127.0.0.1:{stack.port}") for part in bench["command"]
    ]
    command = _with_option(command, "--warmup", "0")
    out_file = stack.workdir / "bench.json"
    _run(image_command([*entry, *command, "--json-out", str(out_file), "--quiet"]), {})
    result = json.loads(out_file.read_text())
    assert result["target_rate"] == 50 and result["connections"] == 2
    assert result["ok"] == result["requests"] > 0
    assert result["errors"]["total"] == 0
