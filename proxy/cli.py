"""The `junction` command: serve, check-config, import-ccr, env, claude, mock-provider.

Exit codes: 0 success, 2 a usage or configuration problem (always a plain message on stderr,
never a traceback); `serve` and `mock-provider` otherwise return what their runner returns;
`claude` replaces itself with the `claude` CLI (127 when it is not installed).

For claude-code-router users: `serve --ccr-config` runs on a claude-code-router config.json,
`import-ccr` writes the equivalent junction.yaml, and `env` / `claude` are `ccr activate` and
`ccr code`: the variables that point Claude Code at Junction, and a launcher that starts
Junction in the background first when nothing answers on its admin /healthz.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO, cast

from proxy import __version__
from proxy.config import JunctionConfig, config_from_env, find_config_path, load_config
from proxy.config.ccr import CcrImport, read_ccr_config, render_yaml
from proxy.config.expand import Problem, expand_string
from proxy.config.loader import load_config_dict, render_config
from proxy.errors import ConfigError
from proxy.routing.claude_code import HAIKU_ALIAS, SMALL_FAST_ALIAS

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127

CCR_CONFIG_PATH = Path("~/.claude-code-router/config.json")
# Claude Code wants some token; Junction does not check client keys yet.
PLACEHOLDER_TOKEN = "junction"
HEALTH_TIMEOUT_S = 1.0
READY_TIMEOUT_S = 20.0  # how long `junction claude` waits for the gateway it started
READY_POLL_S = 0.05
STOP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20
# Set for the imported config's validation when a secret's variable is unset while importing.
_UNSET_SECRET = "unset-at-import"
# proxy.config.expand's message for an unset ${VAR}, one per line of a ConfigError.
_UNSET_VARIABLE = re.compile(r"^[^:\n]+: environment variable (\w+) is not set$", re.MULTILINE)

_MOCK_CLI_MODULE = "proxy.mock_provider.cli"

NO_CONFIG_MESSAGE = """\
junction: no configuration found. Do one of:
  - pass a config file: junction serve --config path/to/junction.yaml
  - create ./junction.yaml or ~/.config/junction/junction.yaml
    (start from examples/demo.yaml or the commented examples/junction.example.yaml)
  - set ANTHROPIC_API_KEY and/or OPENAI_API_KEY to serve those providers with defaults"""

Handler = Callable[[argparse.Namespace], int]


class _MockProviderCli(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, ns: argparse.Namespace) -> int: ...


class _ServeFunction(Protocol):
    def __call__(
        self,
        config: JunctionConfig,
        *,
        config_path: Path | None,
        overrides: Mapping[str, Any] | None,
    ) -> int: ...


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["claude"]:
        # Everything after Junction's own options belongs to claude, flags included, which
        # argparse cannot express (REMAINDER stops at an unknown leading option).
        return _run_claude(args[1:])
    parser = build_parser()
    try:
        ns = parser.parse_args(args)
    except SystemExit as exit_:  # argparse's own exit: --help, --version, a bad flag
        return _exit_code(exit_.code)
    handler: Handler | None = getattr(ns, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="junction", description="Junction: an LLM gateway sidecar."
    )
    parser.add_argument("--version", action="version", version=f"junction {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    _add_config_options(serve)
    serve.add_argument("--host", help="listen address (overrides listen.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides listen.port)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")
    serve.set_defaults(handler=_run_serve)

    check = commands.add_parser(
        "check-config", help="validate a config file and print the effective config"
    )
    check.add_argument("path", type=Path, metavar="PATH")
    check.set_defaults(handler=_run_check_config)

    imp = commands.add_parser(
        "import-ccr", help="write the junction.yaml equivalent of a claude-code-router config"
    )
    imp.add_argument(
        "path",
        type=Path,
        nargs="?",
        default=CCR_CONFIG_PATH,
        metavar="PATH",
        help=f"claude-code-router config.json (default: {CCR_CONFIG_PATH})",
    )
    imp.add_argument("-o", "--output", type=Path, metavar="OUT", help="file (default: stdout)")
    imp.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    imp.set_defaults(handler=_run_import_ccr)

    env = commands.add_parser(
        "env", help="print shell exports that point Claude Code at Junction (like ccr activate)"
    )
    _add_config_options(env)
    env.set_defaults(handler=_run_env)

    claude = commands.add_parser(
        "claude",
        help="run the claude CLI through Junction, starting Junction if needed (like ccr code)",
        usage="junction claude [--config PATH | --ccr-config PATH] [--] [CLAUDE ARGS...]",
    )
    _add_config_options(claude)
    claude.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="CLAUDE ARGS", help="passed on to claude"
    )

    route = commands.add_parser(
        "route", help="show where a request would be routed, and why (--explain REQUEST.json)"
    )
    _add_config_options(route)
    route.add_argument(
        "--explain",
        type=Path,
        required=True,
        metavar="REQUEST.json",
        help="a request body, or a captured request with target, headers and body",
    )
    route.add_argument(
        "--dialect",
        choices=["anthropic", "openai"],
        help="the client's dialect of a bare body (default: anthropic)",
    )
    route.set_defaults(handler=_run_route)

    mock = commands.add_parser("mock-provider", help="run the simulated LLM provider")
    _add_mock_provider(mock)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file (default: ./junction.yaml, then ~/.config/junction/junction.yaml, "
        "then ANTHROPIC_API_KEY / OPENAI_API_KEY)",
    )
    group.add_argument(
        "--ccr-config",
        type=Path,
        metavar="PATH",
        help="a claude-code-router config.json, used as it is",
    )


def serve_overrides(ns: argparse.Namespace) -> dict[str, Any]:
    """The config keys that `serve`'s flags set."""
    flags = {"listen.host": ns.host, "listen.port": ns.port, "server.workers": ns.workers}
    return {key: value for key, value in flags.items() if value is not None}


def resolve_config(
    explicit: Path | None,
    *,
    env: Mapping[str, str],
    cwd: Path,
    home: Path,
    overrides: Mapping[str, Any],
) -> tuple[JunctionConfig, Path | None] | None:
    """The config `serve` runs with and the file it came from; None when there is nothing to
    go on (no file found and no provider API key in `env`). Raises ConfigError."""
    path = explicit or find_config_path(cwd, home)
    if path is None and config_from_env(env) is None:
        return None
    return load_config(path, env=env, overrides=overrides), path


def print_config_error(error: ConfigError, stream: TextIO) -> None:
    for line in error.message.splitlines():
        print(f"junction: config error: {line}", file=stream)


def load_ccr(
    path: Path,
    *,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    secrets_optional: bool = False,
) -> tuple[JunctionConfig, CcrImport]:
    """A claude-code-router config.json as a validated config, with the import (warnings,
    APIKEY). `secrets_optional`: an unset variable in a provider's key is no error (for
    commands that do not call providers). Raises ConfigError, with keys named as in
    config.json."""
    imported = read_ccr_config(_read_text(path), env, source=str(path))
    if secrets_optional:
        unset = [name for name in imported.secret_variables if name not in env]
        env = {**env, **dict.fromkeys(unset, _UNSET_SECRET)}
    try:
        config = load_config_dict(imported.config, env=env, overrides=overrides)
    except ConfigError as error:
        raise imported.translate(error) from None
    return config, imported


def claude_env(config: JunctionConfig, token: str) -> dict[str, str]:
    """What `junction env` exports and `junction claude` sets (besides unsetting
    CLAUDE_CODE_USE_BEDROCK): claude-code-router's `ccr activate` variables, plus Claude
    Code's small-model names set to Junction's background aliases."""
    host = _connect_host(config.listen.host)
    scheme = "https" if config.listen.tls is not None else "http"
    netloc = f"[{host}]" if ":" in host else host
    return {
        "ANTHROPIC_BASE_URL": f"{scheme}://{netloc}:{config.listen.port}",
        "ANTHROPIC_AUTH_TOKEN": token,
        "NO_PROXY": ",".join(dict.fromkeys(["127.0.0.1", host])),
        "DISABLE_TELEMETRY": "1",
        "DISABLE_COST_WARNINGS": "1",
        # Claude Code's own request timeout follows Junction's wait for a first byte
        # (claude-code-router's API_TIMEOUT_MS sets both).
        "API_TIMEOUT_MS": str(round(config.upstream.response_header_timeout_s * 1000)),
        # Title calls and Explore subagents name these instead of the main model; both
        # aliases resolve to router.background (else the default route).
        "ANTHROPIC_SMALL_FAST_MODEL": SMALL_FAST_ALIAS,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": HAIKU_ALIAS,
    }


def render_exports(variables: Mapping[str, str]) -> str:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    return "\n".join([*lines, "unset CLAUDE_CODE_USE_BEDROCK"]) + "\n"


@dataclass(frozen=True)
class _Client:
    """What `env` and `claude` need: the config, the token, how to start the same gateway."""

    config: JunctionConfig
    token: str
    serve_args: tuple[str, ...]
    warning: str | None


def _client(config_path: Path | None, ccr_path: Path | None, env: Mapping[str, str]) -> _Client:
    """Raises ConfigError; NO_CONFIG_MESSAGE as a ConfigError when nothing is found."""
    if ccr_path is not None:
        path = ccr_path.expanduser().absolute()
        config, imported = load_ccr(path, env=env, secrets_optional=True)
        token = PLACEHOLDER_TOKEN
        if imported.api_key is not None:
            problems: list[Problem] = []
            token = expand_string(imported.api_key, env, ("APIKEY",), problems)
            if problems:
                raise ConfigError("\n".join(f"{key}: {msg}" for key, msg in problems))
        return _Client(config, token, ("--ccr-config", str(path)), imported.warning_message())
    cwd, home = Path.cwd(), Path.home()
    try:
        resolved = resolve_config(config_path, env=env, cwd=cwd, home=home, overrides={})
    except ConfigError as error:
        # Neither command calls a provider: its keys may be unset in this shell (the gateway
        # that serves claude checks them when it starts).
        unset = _UNSET_VARIABLE.findall(error.message)
        if len(unset) != len(error.message.splitlines()):
            raise
        env = {**env, **dict.fromkeys(unset, _UNSET_SECRET)}
        resolved = resolve_config(config_path, env=env, cwd=cwd, home=home, overrides={})
    if resolved is None:
        raise _NoConfigError(NO_CONFIG_MESSAGE)
    config, found = resolved
    args = ("--config", str(found.absolute())) if found is not None else ()
    return _Client(config, PLACEHOLDER_TOKEN, args, None)


class _NoConfigError(ConfigError):
    """No config anywhere: printed as it is, not as a config error line."""


def _run_serve(ns: argparse.Namespace) -> int:
    env = os.environ
    try:
        if ns.ccr_config is not None:
            config, imported = load_ccr(ns.ccr_config, env=env, overrides=serve_overrides(ns))
            _print_warning(imported.warning_message())
            # No reload from a config.json: SIGHUP re-reads junction.yaml files only.
            resolved: tuple[JunctionConfig, Path | None] | None = (config, None)
        else:
            resolved = resolve_config(
                ns.config, env=env, cwd=Path.cwd(), home=Path.home(), overrides=serve_overrides(ns)
            )
    except ConfigError as error:
        print_config_error(error, sys.stderr)
        return EXIT_USAGE
    if resolved is None:
        print(NO_CONFIG_MESSAGE, file=sys.stderr)
        return EXIT_USAGE
    config, path = resolved
    # Imported here so that check-config and mock-provider never load the server stack.
    app = importlib.import_module("proxy.server.app")
    serve = cast(_ServeFunction, app.serve)
    return serve(config, config_path=path, overrides=serve_overrides(ns))


def _run_route(ns: argparse.Namespace) -> int:
    from proxy.filters.api import Dialect
    from proxy.routing.explain import ExplainInputError, explain, read_request

    env = os.environ
    try:
        if ns.ccr_config is not None:
            config, _ = load_ccr(ns.ccr_config, env=env, secrets_optional=True)
            resolved: tuple[JunctionConfig, Path | None] | None = (config, None)
        else:
            resolved = resolve_config(
                ns.config, env=env, cwd=Path.cwd(), home=Path.home(), overrides={}
            )
    except ConfigError as error:
        print_config_error(error, sys.stderr)
        return EXIT_USAGE
    if resolved is None:
        print(NO_CONFIG_MESSAGE, file=sys.stderr)
        return EXIT_USAGE
    try:
        raw = ns.explain.read_bytes()
        dialect = Dialect(ns.dialect) if ns.dialect else None
        body, headers, dialect = read_request(raw, dialect)
    except (OSError, ExplainInputError) as exc:
        print(f"junction route: {ns.explain}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(explain(resolved[0], body, headers, dialect))
    return EXIT_OK


def _run_check_config(ns: argparse.Namespace) -> int:
    try:
        config = load_config(ns.path, env=os.environ)
    except ConfigError as error:
        print_config_error(error, sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(f"# effective configuration of {ns.path} (API keys masked)\n")
    sys.stdout.write(render_config(config))
    return EXIT_OK


def _run_import_ccr(ns: argparse.Namespace) -> int:
    path: Path = ns.path  # shown as given (~ and all); read expanded
    out: Path | None = ns.output
    if out is not None and out.exists() and not ns.force:
        print(f"junction: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Validated now, so a file that cannot run is never written. A secret's variable need
        # not be set on the machine that imports.
        _, imported = load_ccr(path, env=os.environ, secrets_optional=True)
    except ConfigError as error:
        print_config_error(error, sys.stderr)
        return EXIT_USAGE
    _print_warning(imported.warning_message())
    text = render_yaml(imported, source=str(path), version=__version__)
    if out is None:
        sys.stdout.write(text)
    else:
        _write_private(out, text)
        print(f"junction: wrote {out}", file=sys.stderr)
    unset = [name for name in imported.secret_variables if name not in os.environ]
    if unset:
        names = ", ".join(unset)
        print(f"junction: note: set {names} before `junction serve`", file=sys.stderr)
    return EXIT_OK


def _run_env(ns: argparse.Namespace) -> int:
    try:
        client = _client(ns.config, ns.ccr_config, os.environ)
    except ConfigError as error:
        _print_client_error(error)
        return EXIT_USAGE
    sys.stdout.write(render_exports(claude_env(client.config, client.token)))
    return EXIT_OK


def _run_claude(argv: Sequence[str]) -> int:
    parsed = _parse_claude_args(argv)
    if isinstance(parsed, int):
        return parsed
    config_path, ccr_path, args = parsed
    env = os.environ
    try:
        client = _client(config_path, ccr_path, env)
    except ConfigError as error:
        _print_client_error(error)
        return EXIT_USAGE
    config = client.config
    if config.listen.port == 0:
        print("junction: `junction claude` needs a fixed listen.port, not 0", file=sys.stderr)
        return EXIT_USAGE
    program = env.get("CLAUDE_PATH") or "claude"
    claude = shutil.which(program, path=env.get("PATH"))
    if claude is None:
        print(
            f"junction: {program!r} not found. Install Claude Code "
            "(npm install -g @anthropic-ai/claude-code) or set CLAUDE_PATH to its path.",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if not _is_running(config):
        _print_warning(client.warning)
        code = _start_gateway(client, env)
        if code != EXIT_OK:
            return code
    child_env = {**env, **claude_env(config, client.token)}
    child_env.pop("CLAUDE_CODE_USE_BEDROCK", None)
    # With ANTHROPIC_API_KEY also set, claude warns of an auth conflict and may prefer it.
    child_env.pop("ANTHROPIC_API_KEY", None)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(claude, [claude, *args], child_env)
    except OSError as error:
        print(f"junction: cannot run {claude}: {error.strerror}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_FAILURE  # not reached: execve returns only by raising


def _parse_claude_args(argv: Sequence[str]) -> tuple[Path | None, Path | None, list[str]] | int:
    """Junction's options come first; the first other word (or `--`) starts claude's."""
    found: dict[str, Path] = {}
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            index += 1
            break
        if word in ("-h", "--help"):
            build_parser().parse_args(["claude", "--help"])  # prints the help, exits
        name, equals, value = word.partition("=")
        if name not in ("--config", "--ccr-config"):
            break
        if not equals:
            if index + 1 >= len(argv):
                print(f"junction claude: {name} needs a PATH", file=sys.stderr)
                return EXIT_USAGE
            index += 1
            value = argv[index]
        found[name] = Path(value)
        index += 1
    if len(found) > 1:
        print("junction claude: give --config or --ccr-config, not both", file=sys.stderr)
        return EXIT_USAGE
    return found.get("--config"), found.get("--ccr-config"), list(argv[index:])


def _is_running(config: JunctionConfig) -> bool:
    """Whether a Junction answers for this config: its admin /healthz, or with the admin
    listener off (or on an ephemeral port) a connection to its listen port."""
    admin = config.admin
    if admin.enabled and admin.port != 0:
        try:
            conn = http.client.HTTPConnection(
                _connect_host(admin.host), admin.port, timeout=HEALTH_TIMEOUT_S
            )
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False
    try:
        address = (_connect_host(config.listen.host), config.listen.port)
        with socket.create_connection(address, timeout=HEALTH_TIMEOUT_S):
            return True
    except OSError:
        return False


def _start_gateway(client: _Client, env: Mapping[str, str]) -> int:
    """`junction serve` for the same config, detached, its output in a log file; waits until
    it answers. EXIT_OK once it does."""
    port = client.config.listen.port
    state = state_dir(env)
    state.mkdir(parents=True, exist_ok=True)
    log_path, pid_path = state / f"junction-{port}.log", state / f"junction-{port}.pid"
    command = [sys.executable, "-m", "proxy", "serve", *client.serve_args]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # not stopped by the terminal's ^C meant for claude
        )
    pid_path.write_text(f"{child.pid}\n", encoding="ascii")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _is_running(client.config):
            print(
                f"junction: started in the background (pid {child.pid}, log {log_path}); "
                f"stop it with: kill {child.pid}",
                file=sys.stderr,
            )
            return EXIT_OK
        code = child.poll()
        if code is not None:
            pid_path.unlink(missing_ok=True)
            print(f"junction: the gateway exited with code {code}:", file=sys.stderr)
            for line in _tail(log_path, LOG_TAIL_LINES):
                print(f"  {line}", file=sys.stderr)
            return EXIT_FAILURE
        time.sleep(READY_POLL_S)
    child.terminate()
    try:
        child.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
    pid_path.unlink(missing_ok=True)
    print(
        f"junction: the gateway did not answer within {READY_TIMEOUT_S:g} s (log: {log_path})",
        file=sys.stderr,
    )
    return EXIT_FAILURE


def state_dir(env: Mapping[str, str]) -> Path:
    """Where `junction claude` keeps the background gateway's log and pid files."""
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "junction"
    return Path.home() / ".cache" / "junction"


def _connect_host(host: str) -> str:
    """The address to reach a listener bound to `host` (a wildcard means this machine)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _read_text(path: Path) -> str:
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None


def _write_private(path: Path, text: str) -> None:
    # The file may hold API keys that were written literally in config.json.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _print_warning(message: str | None) -> None:
    if message:
        for line in message.splitlines():
            print(f"junction: warning: {line}", file=sys.stderr)


def _print_client_error(error: ConfigError) -> None:
    if isinstance(error, _NoConfigError):
        print(error.message, file=sys.stderr)
    else:
        print_config_error(error, sys.stderr)


def _add_mock_provider(parser: argparse.ArgumentParser) -> None:
    try:
        module = importlib.import_module(_MOCK_CLI_MODULE)
    except ModuleNotFoundError as error:
        if error.name != _MOCK_CLI_MODULE:
            raise
        parser.set_defaults(handler=_mock_provider_missing)
        return
    mock_cli = cast(_MockProviderCli, module)
    mock_cli.add_arguments(parser)
    parser.set_defaults(handler=mock_cli.run)


def _mock_provider_missing(ns: argparse.Namespace) -> int:
    print("junction: the mock provider is not part of this build", file=sys.stderr)
    return EXIT_USAGE


def _exit_code(code: str | int | None) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_USAGE
