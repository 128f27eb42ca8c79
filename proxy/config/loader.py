"""Loading the config: file, `${VAR}` expansion, JUNCTION_* environment overlay, overrides.

How this works: the YAML file (or, with no file, providers made from ANTHROPIC_API_KEY /
OPENAI_API_KEY) gives a plain dict; its strings are expanded against the injected `env`;
relative file paths in it are made relative to the file's folder. pydantic-settings' env source,
fed the same injected mapping, turns `JUNCTION_LISTEN__PORT=8080` into `{"listen": {"port":
"8080"}}`. The layers are deep-merged (overrides > env > file > model defaults) and validated
once, so every problem is reported together, one `path.to.key: message` line each.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from proxy.config.expand import Problem, expand_tree
from proxy.config.model import ENV_PREFIX, JunctionConfig
from proxy.config.problems import validation_problems
from proxy.errors import ConfigError

CONFIG_FILE_NAME = "junction.yaml"
_MASK = "****"
_MASK_SHOW_TAIL_ABOVE = 12  # shorter keys are masked completely


def load_config(
    path: Path | None,
    *,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> JunctionConfig:
    """The effective config. `path=None` means no file: providers come from the API-key
    variables in `env` (see `config_from_env`). Raises ConfigError listing every problem."""
    if path is not None:
        return load_config_dict(_read_yaml(path), env=env, overrides=overrides, base=path.parent)
    data = _env_provider_data(env) or {}
    return _validate(data, [], env=env, overrides=overrides)


def load_config_dict(
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    base: Path | None = None,
) -> JunctionConfig:
    """The effective config for config data that did not come from a file Junction read
    itself (a claude-code-router import), validated exactly like a junction.yaml: `${VAR}`
    references expanded against `env`, then the JUNCTION_* overlay and `overrides`. `base`
    is the folder relative file paths are taken from (default: left as written). Raises
    ConfigError listing every problem."""
    expanded, problems = expand_tree(dict(data), env)
    if base is not None:
        expanded = _resolve_files(expanded, base)
    return _validate(expanded, problems, env=env, overrides=overrides)


def _validate(
    data: dict[str, Any],
    problems: list[Problem],
    *,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None,
) -> JunctionConfig:
    merged = _deep_merge(_deep_merge(data, _env_overlay(env)), _nest_overrides(overrides or {}))
    config: JunctionConfig | None = None
    try:
        config = JunctionConfig.model_validate(merged)
    except ValidationError as error:
        # A reference that failed to expand also fails validation; report it once.
        failed = {key for key, _ in problems}
        problems += [p for p in validation_problems(error, JunctionConfig) if p[0] not in failed]
    if problems or config is None:
        raise ConfigError("\n".join(f"{key}: {msg}" for key, msg in problems))
    return config


def find_config_path(cwd: Path, home: Path) -> Path | None:
    """./junction.yaml, then ~/.config/junction/junction.yaml."""
    for candidate in (cwd / CONFIG_FILE_NAME, home / ".config" / "junction" / CONFIG_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def config_from_env(env: Mapping[str, str]) -> JunctionConfig | None:
    """A config for the providers whose API key is set in `env`; None when none is."""
    if _env_provider_data(env) is None:
        return None
    return load_config(None, env=env)


def render_config(cfg: JunctionConfig) -> str:
    """The effective config as YAML, API keys masked (downstream keys entirely)."""
    data = cfg.model_dump(mode="json")
    for index, provider in enumerate(cfg.providers):
        data["providers"][index]["api_key"] = mask_secret(provider.api_key)
        for number, deployment in enumerate(provider.deployments):
            shown = data["providers"][index]["deployments"][number]
            shown["api_key"] = mask_secret(deployment.api_key)
    for index in range(len(cfg.auth.keys)):
        data["auth"]["keys"][index]["key"] = _MASK  # a client key: not even its tail
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def mask_secret(secret: SecretStr | None) -> str | None:
    if secret is None:
        return None
    value = secret.get_secret_value()
    return _MASK + value[-4:] if len(value) > _MASK_SHOW_TAIL_ABOVE else _MASK


def _env_provider_data(env: Mapping[str, str]) -> dict[str, Any] | None:
    # ANTHROPIC_BASE_URL is deliberately ignored: agents set it to point at Junction itself.
    providers: list[dict[str, Any]] = []
    if env.get("ANTHROPIC_API_KEY"):
        providers.append(
            {
                "name": "anthropic",
                "dialect": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key": env["ANTHROPIC_API_KEY"],
            }
        )
    if env.get("OPENAI_API_KEY"):
        providers.append(
            {
                "name": "openai",
                "dialect": "openai",
                "base_url": "https://api.openai.com",
                "api_key": env["OPENAI_API_KEY"],
            }
        )
    if not providers:
        return None
    first = providers[0]["name"]
    default = "anthropic,claude-sonnet-4-5" if first == "anthropic" else "openai,gpt-4.1"
    return {"providers": providers, "router": {"default": default}}


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key repeated in one mapping is an error, not a silent win for
    the last one (two `listen:` blocks are a mistake)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # SafeLoader subclass: plain data only
    except yaml.MarkedYAMLError as error:
        raise ConfigError(f"{path}: {_describe_yaml_error(error)}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (got {_kind(data)})")
    return data


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = error.problem or "unexpected content"
    if error.context:
        what += f" ({error.context})"
    return f"invalid YAML{where}: {what}"


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def _resolve_files(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative cert/key/CA paths in a file mean relative to that file, not to the cwd."""

    def resolve(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            value = Path(section[key]).expanduser()
            section[key] = str(value if value.is_absolute() else base / value)

    listen = data.get("listen")
    if isinstance(listen, dict):
        resolve(listen.get("tls"), "cert_file")
        resolve(listen.get("tls"), "key_file")
    providers = data.get("providers")
    if isinstance(providers, list):
        for provider in providers:
            resolve(provider, "ca_file")
    return data


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source (prefix, `__` nesting, JSON for complex values) reading an
    injected mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._injected_env = env  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._injected_env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _env_overlay(env: Mapping[str, str]) -> dict[str, Any]:
    try:
        return dict(_MappingEnvSource(JunctionConfig, env)())
    except SettingsError as error:
        # Raised for a complex field (JUNCTION_PROVIDERS) whose value is not valid JSON.
        field = re.search(r'field "([^"]+)"', str(error))
        name = ENV_PREFIX + field.group(1).upper() if field else "environment"
        raise ConfigError(f"{name}: must be JSON for this key") from None


def _nest_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """{"listen.port": 1} and {"listen": {"port": 1}} mean the same."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _deep_merge(node.get(leaf), value) if isinstance(value, Mapping) else value
    return nested


def _deep_merge(base: Any, top: Any) -> Any:
    if not isinstance(top, Mapping):
        return top
    below: Mapping[str, Any] = base if isinstance(base, Mapping) else {}
    merged = dict(below)
    for key, value in top.items():
        merged[key] = _deep_merge(below.get(key), value)
    return merged
