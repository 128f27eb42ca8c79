from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import __version__
from proxy.cli import build_parser, main, resolve_config, serve_overrides

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
providers:
  - name: mock
    dialect: anthropic
    base_url: http://127.0.0.1:8090
    api_key: demo-key-0123456789
    models: [claude-sonnet-4-5]
router:
  default: mock,claude-sonnet-4-5
"""

BAD = GOOD.replace("dialect: anthropic", "dialect: antropic") + "listen: {prot: 1}\n"


def _write(tmp_path: Path, text: str, name: str = "junction.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """A child environment with no provider keys, no JUNCTION_* and HOME in tmp."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JUNCTION_") and k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    }
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO))
    return env


def test_check_config_prints_effective_config_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(_write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert "demo-key-0123456789" not in out
    assert "api_key: '****6789'" in out
    assert "default: mock,claude-sonnet-4-5" in out
    assert "port: 3456" in out


def test_check_config_errors_name_each_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(_write(tmp_path, BAD))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "junction: config error: listen.prot: unknown key (did you mean 'port'?)",
        "junction: config error: providers[0].dialect: must be one of anthropic, openai "
        "(got 'antropic')",
    ]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_check_config_as_a_process_exits_2_without_traceback(tmp_path: Path) -> None:
    _write(tmp_path, BAD, "bad.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "check-config", "bad.yaml"],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "junction: config error: providers[0].dialect:" in proc.stderr


def test_serve_without_any_config_explains_what_to_do(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "serve"],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--config" in proc.stderr
    assert "junction.yaml" in proc.stderr and "examples/" in proc.stderr
    assert "ANTHROPIC_API_KEY" in proc.stderr and "OPENAI_API_KEY" in proc.stderr


def test_serve_config_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["serve", "--config", str(path), "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err == "junction: config error: listen.port: must be at most 65535 (got 70000)\n"


def test_serve_flags_become_overrides(tmp_path: Path) -> None:
    ns = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "0", "--workers", "2"])
    assert serve_overrides(ns) == {"listen.host": "0.0.0.0", "listen.port": 0, "server.workers": 2}
    assert serve_overrides(build_parser().parse_args(["serve"])) == {}
    path = _write(tmp_path, GOOD + "listen: {port: 1111}\n")
    env = {"JUNCTION_LISTEN__PORT": "2222", "JUNCTION_SERVER__WORKERS": "3"}
    resolved = resolve_config(
        path, env=env, cwd=tmp_path, home=tmp_path, overrides=serve_overrides(ns)
    )
    assert resolved is not None
    cfg, used = resolved
    assert used == path
    assert (cfg.listen.host, cfg.listen.port, cfg.server.workers) == ("0.0.0.0", 0, 2)


def test_resolve_config_search_order(tmp_path: Path) -> None:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    assert resolve_config(None, env={}, cwd=cwd, home=home, overrides={}) is None
    from_env = resolve_config(
        None, env={"OPENAI_API_KEY": "k"}, cwd=cwd, home=home, overrides={"listen.port": 5}
    )
    assert from_env is not None
    assert from_env[1] is None
    assert from_env[0].router.default == "openai,gpt-4.1" and from_env[0].listen.port == 5
    found = _write(cwd, GOOD)
    from_file = resolve_config(None, env={"OPENAI_API_KEY": "k"}, cwd=cwd, home=home, overrides={})
    assert from_file is not None
    assert from_file[1] == found and from_file[0].router.default == "mock,claude-sonnet-4-5"


def test_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "eighty"]) == 2
    assert "invalid int value: 'eighty'" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert "usage: junction" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"junction {__version__}"


def test_mock_provider_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock-provider", "--help"]) == 0
    assert "usage: junction mock-provider" in capsys.readouterr().out
