"""deploy/Dockerfile: what can be checked without a container engine.

The instructions are read as Docker reads them (continuation lines, exec-form JSON) and checked
against the properties the image promises: two stages, a slim base, no compiler in the final
stage, a non-root user, the config the command names copied to where it names it, a
HEALTHCHECK that asks /readyz. The image's command and its HEALTHCHECK then run for real from
this virtualenv with the image's config. deploy/check-image-install.sh repeats the
Dockerfile's pip steps in fresh virtualenvs; it needs the package index, so it runs only with
JUNCTION_TEST_IMAGE_INSTALL=1.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.config import load_config
from proxy.config.model import ServerConfig
from tests.support.ports import free_ports

from .support import (
    CHART,
    DEPLOY,
    REPO,
    Child,
    child_env,
    image_command,
    load_yaml,
)

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
INSTALL_SCRIPT = DEPLOY / "check-image-install.sh"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


def instructions() -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction is dropped, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions():
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def final_stage() -> list[Instruction]:
    return stages()[-1]


def one(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_multi_stage_on_a_slim_base() -> None:
    all_stages = stages()
    assert len(all_stages) == 2
    default_python = next(
        i.args.split("=", 1)[1] for i in instructions() if i.args.startswith("PYTHON_VERSION=")
    )
    assert re.fullmatch(r"3\.1[1-9]", default_python)
    for stage in all_stages:
        assert stage[0].args.split()[0] == "python:${PYTHON_VERSION}-slim"
    assert all_stages[0][0].args.endswith(" AS build")


def test_wheels_are_built_in_the_first_stage_and_no_compiler_reaches_the_last() -> None:
    build, final = stages()
    build_runs = " ".join(i.args for i in build if i.keyword == "RUN")
    assert "pip wheel --wheel-dir /wheels ." in build_runs
    final_runs = " ".join(i.args for i in final if i.keyword == "RUN")
    assert "apt-get" not in final_runs and "gcc" not in final_runs
    # The wheels arrive through a bind mount of the build stage: no layer keeps them.
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in final_runs
    assert "--no-index --find-links /wheels junction" in final_runs
    assert not any(i.keyword in ("COPY", "ADD") and "--from=build" in i.args for i in final)


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    user = one(final_stage(), "USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can verify it"
    values = load_yaml(CHART / "values.yaml")
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]


def test_command_config_healthcheck_and_ports_agree() -> None:
    final = final_stage()
    assert one(final, "ENTRYPOINT").exec_form() == ["junction"]
    cmd = one(final, "CMD").exec_form()
    assert cmd[:2] == ["serve", "--config"]
    copies = {i.args.split()[1]: i.args.split()[0] for i in final if i.keyword == "COPY"}
    assert copies[cmd[2]] == "deploy/junction.yaml"
    cfg = load_config(REPO / "deploy" / "junction.yaml", env={})
    exposed = set(one(final, "EXPOSE").args.split())
    assert exposed == {str(cfg.listen.port), str(cfg.admin.port)}
    assert cfg.listen.host == "0.0.0.0" and cfg.admin.host == "0.0.0.0"
    check = healthcheck_argv()
    assert check[0] == "python" and f"'{cfg.admin.port}'" in check[-1] and "'/readyz'" in check[-1]
    assert "ENV" in {i.keyword for i in final}
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # nothing to write on a read-only root


@pytest.mark.parametrize(
    "config",
    [DEPLOY / "junction.yaml", DEPLOY / "compose" / "junction.yaml"],
    ids=["image", "compose"],
)
def test_check_config_accepts_the_shipped_configs(config: Path) -> None:
    # Without any provider key set: the image must start with either key, or none.
    done = subprocess.run(
        image_command(["junction", "check-config", str(config)]),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "host: 0.0.0.0" in done.stdout


def test_image_config_drains_within_the_orchestrators_grace_periods() -> None:
    cfg = load_config(REPO / "deploy" / "junction.yaml", env={})
    assert cfg.server.drain_timeout_s == ServerConfig().drain_timeout_s
    values = load_yaml(CHART / "values.yaml")
    assert values["drainTimeoutSeconds"] == cfg.server.drain_timeout_s
    grace = (
        values["preStopSleepSeconds"]
        + values["drainTimeoutSeconds"]
        + values["terminationMarginSeconds"]
    )
    assert grace > values["preStopSleepSeconds"] + cfg.server.drain_timeout_s


def healthcheck_argv() -> list[str]:
    check = one(final_stage(), "HEALTHCHECK").args
    options, _, command = check.partition(" CMD ")
    assert all(opt.startswith("--") for opt in shlex.split(options))
    return json.loads(command)


def _ignored(path: str, patterns: list[str]) -> bool:
    # .dockerignore: the last matching pattern wins; "!" re-includes. A directory pattern
    # covers what is under it.
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes) or (
            pat.startswith("**/") and any(fnmatch.fnmatchcase(p, pat[3:]) for p in parts)
        ):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_copies_need_and_no_compiled_leftovers() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for i in instructions()
        if i.keyword == "COPY" and "--from" not in i.args
        for src in i.args.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert not _ignored(src.rstrip("/"), patterns), src
    assert not _ignored("proxy/protocol/http1.py", patterns)
    for leftover in (
        "proxy/protocol/http1.cpython-311-x86_64-linux-gnu.so",
        "proxy/__pycache__/cli.cpython-311.pyc",
        ".venv/bin/python",
        "tests/x.py",
    ):
        assert _ignored(leftover, patterns), leftover


def test_install_script_repeats_the_dockerfiles_pip_steps() -> None:
    script = INSTALL_SCRIPT.read_text(encoding="utf-8")
    assert 'pip wheel -q --wheel-dir "$WORK/wheels" .' in script
    assert (
        'pip" install -q --no-cache-dir --no-index --find-links "$WORK/wheels" junction' in script
    )
    assert " ".join(healthcheck_argv()[1:][-1:]) in script  # the very same check


def test_image_command_serves_and_its_healthcheck_passes(tmp_path: Path) -> None:
    """The image's ENTRYPOINT + CMD with the image's config, ports moved to loopback ones."""
    final = final_stage()
    argv = image_command(one(final, "ENTRYPOINT").exec_form() + one(final, "CMD").exec_form())
    argv[argv.index("/etc/junction/junction.yaml")] = str(DEPLOY / "junction.yaml")
    port, admin = free_ports(2)
    env = child_env(
        {
            "JUNCTION_LISTEN__HOST": "127.0.0.1",
            "JUNCTION_LISTEN__PORT": str(port),
            "JUNCTION_ADMIN__HOST": "127.0.0.1",
            "JUNCTION_ADMIN__PORT": str(admin),
        }
    )
    child = Child(argv, env, tmp_path)
    try:
        child.wait_until(f"http://127.0.0.1:{admin}/readyz")
        check = image_command(healthcheck_argv())
        done = subprocess.run(check, env=env, capture_output=True, timeout=10)
        assert done.returncode == 0, done.stderr
    finally:
        status = child.stop()
    assert status == 0, child.output()
    # Stopped: the same check now fails, as Docker would see it.
    done = subprocess.run(check, env=env, capture_output=True, timeout=10)
    assert done.returncode != 0


@pytest.mark.skipif(
    os.environ.get("JUNCTION_TEST_IMAGE_INSTALL") != "1",
    reason="builds wheels from the package index (~20 s): set JUNCTION_TEST_IMAGE_INSTALL=1",
)
def test_dockerfile_install_in_fresh_virtualenvs() -> None:
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/readyz: 200" in done.stdout
