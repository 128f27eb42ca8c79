"""The `junction` command: serve, check-config, mock-provider.

Exit codes: 0 success, 2 a usage or configuration problem (always a plain message on stderr,
never a traceback); `serve` and `mock-provider` otherwise return what their runner returns.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO, cast

from proxy import __version__
from proxy.config import JunctionConfig, config_from_env, find_config_path, load_config
from proxy.config.loader import render_config
from proxy.errors import ConfigError

EXIT_OK = 0
EXIT_USAGE = 2

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
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
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
    serve.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file (default: ./junction.yaml, then ~/.config/junction/junction.yaml, "
        "then ANTHROPIC_API_KEY / OPENAI_API_KEY)",
    )
    serve.add_argument("--host", help="listen address (overrides listen.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides listen.port)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")
    serve.set_defaults(handler=_run_serve)

    check = commands.add_parser(
        "check-config", help="validate a config file and print the effective config"
    )
    check.add_argument("path", type=Path, metavar="PATH")
    check.set_defaults(handler=_run_check_config)

    mock = commands.add_parser("mock-provider", help="run the simulated LLM provider")
    _add_mock_provider(mock)
    return parser


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


def _run_serve(ns: argparse.Namespace) -> int:
    env = os.environ
    try:
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


def _run_check_config(ns: argparse.Namespace) -> int:
    try:
        config = load_config(ns.path, env=os.environ)
    except ConfigError as error:
        print_config_error(error, sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(f"# effective configuration of {ns.path} (API keys masked)\n")
    sys.stdout.write(render_config(config))
    return EXIT_OK


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
