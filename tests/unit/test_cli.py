from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy import __version__
from proxy.cli import build_parser, main, resolve_config, serve_overrides
from proxy.config import load_config
from tests.support.ports import free_port, free_ports

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


# -- claude-code-router: serve --ccr-config, import-ccr, env, claude

CCR_FIXTURES = REPO / "tests" / "fixtures" / "ccr"

CCR_MINIMAL = """\
// a claude-code-router config.json
{
  Providers: [{
    name: "mock",
    api_base_url: "http://127.0.0.1:9/v1/messages",
    api_key: "$MOCK_KEY",
    models: ["claude-sonnet-4-5"],
    transformer: { use: ["Anthropic"] },
  }],
  Router: { default: "mock,claude-sonnet-4-5" },
}
"""


def test_import_ccr_prints_yaml_and_the_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CCR_APIKEY", raising=False)
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    monkeypatch.setenv("ARK_API_KEY", "ark-0123456789")
    assert main(["import-ccr", str(CCR_FIXTURES / "unsupported.json")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Junction config imported from claude-code-router's ")
    assert "api_key: ${MOONSHOT_API_KEY}" in captured.out
    assert "ark-0123456789" not in captured.out
    err = captured.err.splitlines()
    assert err[0] == (
        "junction: warning: parts of this claude-code-router config that Junction does not honour:"
    )
    assert "junction: warning:   - CUSTOM_ROUTER_PATH: a JavaScript router" in captured.err
    assert err[-1] == "junction: note: set MOONSHOT_API_KEY before `junction serve`"


def test_import_ccr_writes_a_private_file_and_will_not_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-real-0123456789")
    out = tmp_path / "junction.yaml"
    source = str(CCR_FIXTURES / "minimal.json")
    assert main(["import-ccr", source, "-o", str(out)]) == 0
    assert capsys.readouterr().err == f"junction: wrote {out}\n"
    assert out.stat().st_mode & 0o777 == 0o600
    text = out.read_text(encoding="utf-8")
    assert "api_key: ${DEEPSEEK_API_KEY}" in text and "sk-real" not in text
    cfg = load_config(out, env={"DEEPSEEK_API_KEY": "k"})
    assert cfg.router.default == "deepseek,deepseek-chat"
    assert main(["import-ccr", source, "-o", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["import-ccr", source, "-o", str(out), "--force"]) == 0


def test_import_ccr_bad_config_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path, CCR_MINIMAL.replace('"mock,', '"nope,'), "config.json")
    out = tmp_path / "junction.yaml"
    assert main(["import-ccr", str(bad), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        "junction: config error: Router.default: unknown provider 'nope' (providers: mock)\n"
    )
    assert not out.exists()


def test_serve_ccr_config_errors_name_the_config_json_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_KEY", "k")
    bad = _write(tmp_path, CCR_MINIMAL.replace('"http://127.0.0.1:9', '"ftp://h'), "c.json")
    assert main(["serve", "--ccr-config", str(bad)]) == 2
    assert capsys.readouterr().err == (
        "junction: config error: Providers[0].api_base_url: must start with http:// or "
        "https:// (got 'ftp://h')\n"
    )
    syntax = _write(tmp_path, CCR_MINIMAL.replace("}],", "}]"), "syntax.json")
    assert main(["serve", "--ccr-config", str(syntax)]) == 2
    assert capsys.readouterr().err == (
        f'junction: config error: {syntax}: invalid JSON5 at line 10, column 3: unexpected "R"\n'
    )
    monkeypatch.delenv("MOCK_KEY")
    good = _write(tmp_path, CCR_MINIMAL, "good.json")
    assert main(["serve", "--ccr-config", str(good)]) == 2
    assert capsys.readouterr().err == (
        "junction: config error: Providers[0].api_key: environment variable MOCK_KEY is not set\n"
    )
    assert main(["serve", "--ccr-config", str(good), "--config", str(good)]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_serve_ccr_config_as_a_process_exits_2_without_traceback(tmp_path: Path) -> None:
    _write(tmp_path, '{"Providers": [], "Router": {"default": "x,y"}}', "config.json")
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--ccr-config", "config.json"],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "junction: config error: Providers: at least one provider is required",
        "junction: config error: Router.default: unknown provider 'x' (providers: none)",
    ]


def test_env_prints_the_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOCK_KEY", raising=False)  # not needed to print the exports
    monkeypatch.setenv("CCR_KEY", "it's secret")
    ccr = CCR_MINIMAL.replace(
        "Router:", 'APIKEY: "$CCR_KEY", PORT: 4567, API_TIMEOUT_MS: 90000,\n  Router:'
    )
    path = _write(tmp_path, ccr, "config.json")
    assert main(["env", "--ccr-config", str(path)]) == 0
    assert capsys.readouterr().out == (
        "export ANTHROPIC_BASE_URL=http://127.0.0.1:4567\n"
        "export ANTHROPIC_AUTH_TOKEN='it'\"'\"'s secret'\n"
        "export NO_PROXY=127.0.0.1\n"
        "export DISABLE_TELEMETRY=1\n"
        "export DISABLE_COST_WARNINGS=1\n"
        "export API_TIMEOUT_MS=90000\n"
        "export ANTHROPIC_SMALL_FAST_MODEL=junction-small-fast\n"
        "export ANTHROPIC_DEFAULT_HAIKU_MODEL=junction-haiku\n"
        "unset CLAUDE_CODE_USE_BEDROCK\n"
    )
    yaml_path = _write(tmp_path, GOOD + "listen: {host: 0.0.0.0, port: 4000}\n")
    assert main(["env", "--config", str(yaml_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "export ANTHROPIC_BASE_URL=http://127.0.0.1:4000",
        "export ANTHROPIC_AUTH_TOKEN=junction",
    ]
    assert "export API_TIMEOUT_MS=600000" in out


def test_env_without_config_explains_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["env"]) == 2
    assert capsys.readouterr().err.startswith("junction: no configuration found.")


def test_claude_not_installed_exits_127_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CLAUDE_PATH", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = _write(tmp_path, GOOD + f"listen: {{port: {free_port()}}}\n")
    assert main(["claude", "--config", str(path), "-p", "hi"]) == 127
    assert "'claude' not found" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
    assert main(["claude", "--config"]) == 2
    assert main(["claude", "--config", str(path), "--ccr-config", str(path)]) == 2


FAKE_CLAUDE = """\
#!/bin/sh
echo "args:$*"
env | grep -E '^(ANTHROPIC_|NO_PROXY=|DISABLE_|API_TIMEOUT_MS=|CLAUDE_CODE_USE_BEDROCK=)' | sort
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """Where `junction claude` puts the gateway's pid file; the gateway is stopped after."""
    state = tmp_path / "state"
    yield state
    for pid_file in (state / "junction").glob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_claude_starts_junction_once_and_runs_claude_against_it(
    tmp_path: Path, state_dir: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    fake.write_text(FAKE_CLAUDE, encoding="utf-8")
    fake.chmod(0o755)
    port, admin = free_ports(2)
    ccr = CCR_MINIMAL.replace("Router:", f'APIKEY: "$CCR_KEY", PORT: {port},\n  Router:')
    config = _write(tmp_path, ccr, "config.json")
    env = _clean_env(tmp_path)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        XDG_STATE_HOME=str(state_dir),
        JUNCTION_ADMIN__PORT=str(admin),
        MOCK_KEY="mock-key-0123456789",
        CCR_KEY="ccr-secret",
        CLAUDE_CODE_USE_BEDROCK="1",
        ANTHROPIC_API_KEY="sk-ant-should-not-reach-claude",
    )
    env.pop("CLAUDE_PATH", None)
    command = [sys.executable, "-m", "proxy", "claude", "--ccr-config", str(config)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=30
        )

    first = run("-p", "hello world", "--model", "mock,claude-sonnet-4-5")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "args:-p hello world --model mock,claude-sonnet-4-5",
        "ANTHROPIC_AUTH_TOKEN=ccr-secret",
        f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL=junction-haiku",
        "ANTHROPIC_SMALL_FAST_MODEL=junction-small-fast",
        "API_TIMEOUT_MS=600000",
        "DISABLE_COST_WARNINGS=1",
        "DISABLE_TELEMETRY=1",
        "NO_PROXY=127.0.0.1",
    ]
    assert "junction: started in the background (pid" in first.stderr
    assert "APIKEY: not enforced yet" in first.stderr  # the config's one warning
    pid_file = state_dir / "junction" / f"junction-{port}.pid"
    pid = int(pid_file.read_text())
    assert _alive(pid)
    log = (state_dir / "junction" / f"junction-{port}.log").read_text()
    assert f"listening on http://127.0.0.1:{port}" in log

    second = run("--", "--config", "x")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == "args:--config x"
    assert second.stderr == ""  # already running: nothing started, nothing said
    assert int(pid_file.read_text()) == pid


def test_claude_reports_a_gateway_that_cannot_start(tmp_path: Path, state_dir: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "my-claude"
    fake.write_text(FAKE_CLAUDE, encoding="utf-8")
    fake.chmod(0o755)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _write(tmp_path, GOOD + f"listen: {{port: {port}}}\nadmin: {{enabled: false}}\n")
        env = _clean_env(tmp_path)
        env.update(XDG_STATE_HOME=str(state_dir), CLAUDE_PATH=str(fake))
        # The busy port answers connections, so Junction counts as running: claude runs.
        proc = subprocess.run(
            [sys.executable, "-m", "proxy", "claude", "--config", str(config), "x"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0 and proc.stdout.startswith("args:x\n")
    admin = free_port()
    config = _write(tmp_path, GOOD + f"listen: {{port: {port}}}\nadmin: {{port: {admin}}}\n")
    env["JUNCTION_LISTEN__HOST"] = "203.0.113.1"  # not this machine's: cannot listen
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "claude", "--config", str(config), "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "junction: the gateway exited with code" in proc.stderr
    assert proc.stdout == ""
    assert not (state_dir / "junction" / f"junction-{port}.pid").exists()


def test_env_does_not_need_the_provider_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUNCTION_TEST_UNSET_KEY", raising=False)
    text = GOOD.replace("demo-key-0123456789", "${JUNCTION_TEST_UNSET_KEY}")
    path = _write(tmp_path, text + "listen: {port: 4001}\n")
    assert main(["env", "--config", str(path)]) == 0
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:4001" in capsys.readouterr().out
    bad = _write(tmp_path, text + "listen: {port: -1}\n", "bad.yaml")
    assert main(["env", "--config", str(bad)]) == 2  # other problems still count
    assert capsys.readouterr().err.splitlines() == [
        "junction: config error: providers[0].api_key: environment variable "
        "JUNCTION_TEST_UNSET_KEY is not set",
        "junction: config error: listen.port: must be at least 0 (got -1)",
    ]
