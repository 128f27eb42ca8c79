"""Reading a claude-code-router `config.json` as Junction config data.

How it works: the text is parsed as JSON5 (comments, trailing commas, unquoted keys), as
claude-code-router reads it. Each key is mapped to the Junction key that does the same job
(the table is in docs/claude-code-router.md). The result is plain config data with
junction.yaml's keys, which the caller validates like a file (`load_config_dict`) or writes
out (`render_yaml`).

Variables: claude-code-router replaces `$NAME` (capitals, digits, `_`) and `${NAME}` in
every string. Strings that Junction passes on unchanged and that may hold secrets (a
provider's `api_key`, `APIKEY`, transformer options) keep their references, rewritten in
Junction's `${NAME}` form. The loader resolves them when Junction starts, and `import-ccr`
never writes a secret out. Every other string (URLs, routes, numbers) must be understood
here, so it is expanded now against the injected `env`. An unset variable is an error that
names the key, as in junction.yaml. claude-code-router would instead send the text `$NAME`
on and fail at the first request. A literal `${` in the output is escaped as `$${`, so the
loader leaves it alone.

What Junction cannot honour (a JavaScript router, plugins, presets, ...) is not an error. It
goes into `warnings`, each with what to use instead, and is reported as one message. Wrong
shapes, an unknown provider in a route and unset variables are errors: a `ConfigError` with
one `key.path: message` line each, with keys as written in config.json
(`Providers[1].api_base_url`).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import json5
import yaml

from proxy.dialects.transformers.registry import BUILTIN, build_transformer, supports
from proxy.errors import ConfigError
from proxy.filters.api import Dialect

# What claude-code-router exports to Claude Code as API_TIMEOUT_MS when the key is unset.
DEFAULT_API_TIMEOUT_MS = 600_000

# claude-code-router's own pattern: any `${...}`, and `$NAME` in capitals only.
_CCR_REFERENCE = re.compile(r"\$\{([^}]+)\}|\$([A-Z_][A-Z0-9_]*)")
_JUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON5_ERROR = re.compile(r"<string>:(\d+) (.*) at column (\d+)", re.DOTALL)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

# claude-code-router Router key -> junction.yaml router key (fallback uses the same names).
SCENARIOS: Mapping[str, str] = {
    "default": "default",
    "background": "background",
    "think": "think",
    "longContext": "long_context",
    "webSearch": "web_search",
    "image": "image",
}
# junction provider key -> the config.json key it comes from
_PROVIDER_KEYS = {
    "name": "name",
    "dialect": "api_base_url",
    "base_url": "api_base_url",
    "api_key": "api_key",
    "models": "models",
    "transformers": "transformer.use",
    "model_transformers": "transformer",
}
_LOG_LEVELS = {
    "fatal": "error",
    "error": "error",
    "warn": "warning",
    "warning": "warning",
    "info": "info",
    "debug": "debug",
    "trace": "debug",
}
_HANDLED = frozenset(
    {"Providers", "providers", "Router", "fallback", "APIKEY", "HOST", "PORT"}
    | {"API_TIMEOUT_MS", "LOG", "LOG_LEVEL"}
)
# In claude-code-router's default config but read by nothing.
_LEGACY = frozenset({"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"})
_NO_PROXY_ADVICE = (
    "Junction connects to providers directly; an outbound HTTP proxy is not supported"
)
UNSUPPORTED: Mapping[str, str] = {
    "CUSTOM_ROUTER_PATH": "a JavaScript router cannot run in Junction; write the same rule as a "
    "Python function and set router.custom: package.module:function",
    "plugins": "claude-code-router plugins do not run in Junction; per-request tokens and "
    "timings are in Junction's access log and admin /stats",
    "presets": "run one Junction per preset, each with its own config and port",
    "Presets": "run one Junction per preset, each with its own config and port",
    "transformers": "JavaScript transformers cannot run in Junction; write a Python "
    "transformer class and name it by import path in a provider's transformers",
    "StatusLine": "Junction has no status line command; use Claude Code's own statusLine setting",
    "REWRITE_SYSTEM_PROMPT": "not supported; pass --append-system-prompt to claude, or rewrite "
    "the system prompt in a Python transformer",
    "forceUseImageAgent": "the image-analysis tool agent is not available; requests with images "
    "go to router.image",
    "PROXY_URL": _NO_PROXY_ADVICE,
    "HTTPS_PROXY": _NO_PROXY_ADVICE,
    "https_proxy": _NO_PROXY_ADVICE,
    "httpsProxy": _NO_PROXY_ADVICE,
    "NON_INTERACTIVE_MODE": "set CI=true and FORCE_COLOR=0 in claude's environment yourself",
    "CLAUDE_PATH": "`junction claude` reads the CLAUDE_PATH environment variable instead",
    "TIMEOUT": "Junction has no total time limit per request; see "
    "upstream.response_header_timeout_s and upstream.stream_idle_timeout_s",
}
# claude-code-router's endpoint transformers: they pick the dialect, Junction needs no entry.
_ENDPOINT_TRANSFORMERS = frozenset({"anthropic", "openai"})
_NATIVE_ADVICE = {
    "gemini": "Junction has no native Gemini API dialect; reach Gemini through an "
    "OpenAI-compatible gateway such as OpenRouter",
    "vertex-gemini": "Vertex AI sign-in is not supported; reach these models through an "
    "OpenAI-compatible gateway",
    "vertex-claude": "Vertex AI sign-in is not supported; use the Anthropic API (dialect "
    "anthropic) or a gateway",
    "openai-responses": "Junction calls OpenAI-dialect providers at /v1/chat/completions, not "
    "the Responses API",
}
_TRANSFORMER_ADVICE = {
    **_NATIVE_ADVICE,
    "cerebras": "Cerebras speaks the OpenAI dialect and usually needs nothing (add cleancache "
    "if it rejects cache_control)",
    "vercel": "try openrouter, which handles cache_control and reasoning the same way",
    "forcereasoning": "no equivalent; models without native reasoning answer without "
    "thinking blocks",
}
_UNKNOWN_TRANSFORMER = (
    "no Junction equivalent; for your own JavaScript transformer, write a Python class and "
    "name it by import path (docs/configuration.md#transformers)"
)


@dataclass(frozen=True)
class CcrImport:
    """A claude-code-router config read as Junction config data."""

    config: dict[str, Any]  # junction.yaml keys; secrets as ${VAR} references
    warnings: list[str]  # one "key: what to use instead" line per key Junction cannot honour
    api_timeout_ms: int | None  # API_TIMEOUT_MS, for Claude Code (`junction env`)
    api_key: str | None  # APIKEY in Junction's ${VAR} form; expand with proxy.config.expand
    secret_variables: tuple[str, ...] = ()  # in the config's secrets, resolved at startup
    expanded_variables: tuple[str, ...] = ()  # expanded while importing
    key_paths: dict[str, str] = field(default_factory=dict)  # junction key -> config.json key

    def warning_message(self) -> str | None:
        """The one warning for everything Junction does not honour; None when nothing."""
        if not self.warnings:
            return None
        lines = "\n".join(f"  - {item}" for item in self.warnings)
        return f"parts of this claude-code-router config that Junction does not honour:\n{lines}"

    def source_path(self, junction_path: str) -> str:
        """The config.json key a junction key came from ('providers[0].base_url' ->
        'Providers[0].api_base_url'); the junction key itself when it has no source."""
        for length in range(len(junction_path), 0, -1):
            prefix = junction_path[:length]
            rest = junction_path[length:]
            if prefix in self.key_paths and (not rest or rest[0] in ".["):
                return self.key_paths[prefix] + rest
        return junction_path

    def translate(self, error: ConfigError) -> ConfigError:
        """The same error with each line's key written as in config.json."""
        lines = []
        for line in error.message.splitlines():
            key, sep, message = line.partition(": ")
            lines.append(f"{self.source_path(key)}{sep}{message}" if sep else line)
        return ConfigError("\n".join(lines))


def read_ccr_config(text: str, env: Mapping[str, str], *, source: str = "config.json") -> CcrImport:
    """`text` (a claude-code-router config.json) as Junction config data. `source` names the
    file in syntax errors. Raises ConfigError listing every problem."""
    try:
        data = json5.loads(text)
    except ValueError as error:
        raise ConfigError(f"{source}: {_describe_json5_error(error)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be an object (got {_kind(data)})")
    reader = _Reader(env)
    result = reader.read(data)
    if reader.problems:
        raise ConfigError("\n".join(dict.fromkeys(reader.problems)))
    return result


def render_yaml(imported: CcrImport, *, source: str, version: str) -> str:
    """junction.yaml text for an import: a header comment, then the config."""
    head = [
        f"# Junction config imported from claude-code-router's {source}",
        f"# by `junction import-ccr` (Junction {version}).",
    ]
    body = yaml.dump(
        _flow_lists(imported.config),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    kept = [name for name in imported.secret_variables if f"${{{name}}}" in body]
    if kept:
        names = ", ".join(kept)
        head.append(f"# Secrets stay ${{VAR}} references, read when Junction starts: {names}.")
    if imported.expanded_variables:
        names = ", ".join(imported.expanded_variables)
        head.append(f"# Expanded while importing (edit below if they change): {names}.")
    message = imported.warning_message()
    if message:
        head.append("#")
        head += [f"# {line}" for line in message.splitlines()]
    return "\n".join(head) + "\n\n" + body


@dataclass
class _Provider:
    path: str  # "Providers[0]"
    out: dict[str, Any]  # the junction provider entry being built
    models: list[str]
    model_use: list[tuple[str, str, Any]]  # (config.json path, model, raw `use`)


class _Reader:
    """One pass over a parsed config.json; problems and warnings accumulate."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.key_paths: dict[str, str] = {}
        self.secret_variables: dict[str, None] = {}  # ordered sets
        self.expanded_variables: dict[str, None] = {}

    def read(self, data: dict[str, Any]) -> CcrImport:
        providers = self.providers(data)
        config: dict[str, Any] = {}
        listen = self.listen(data)
        if listen:
            config["listen"] = listen
        timeout_ms = self.timeout(data.get("API_TIMEOUT_MS"))
        if timeout_ms is not None:
            seconds = timeout_ms // 1000 if timeout_ms % 1000 == 0 else timeout_ms / 1000
            config["upstream"] = {"response_header_timeout_s": seconds}
            self.key_paths["upstream.response_header_timeout_s"] = "API_TIMEOUT_MS"
        config["providers"] = [p.out for p in providers]
        self.key_paths["providers"] = "Providers"
        config["router"] = self.router(data, providers)
        for provider in providers:
            self.model_transformers(provider)
        log = self.log(data)
        if log:
            config["log"] = log
        for key, value in data.items():
            if key in _HANDLED or key in _LEGACY or not _is_set(key, value):
                continue
            self.warn(key, UNSUPPORTED.get(key, "not a claude-code-router key Junction knows"))
        api_key = data.get("APIKEY")
        if api_key is not None and not isinstance(api_key, str):
            self.problem("APIKEY", f"must be a string (got {_kind(api_key)})")
        return CcrImport(
            config=config,
            warnings=self.warnings,
            api_timeout_ms=timeout_ms,
            api_key=self.reference(api_key, "APIKEY", record=False)
            if isinstance(api_key, str) and api_key
            else None,
            secret_variables=tuple(self.secret_variables),
            expanded_variables=tuple(self.expanded_variables),
            key_paths=self.key_paths,
        )

    # -- messages and strings

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")

    def expand(self, value: str, path: str) -> str:
        """`value` with claude-code-router's references replaced, escaped for the loader."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            found = self.env.get(name)
            if found is None:
                self.problem(path, f"environment variable {name} is not set")
                return match.group(0)
            self.expanded_variables[name] = None
            return found

        return _escape(_CCR_REFERENCE.sub(replace, value))

    def reference(self, value: str, path: str, *, record: bool = True) -> str:
        """`value` with its references kept, in Junction's ${NAME} form. `record`: list the
        variables in `secret_variables` (the config needs them)."""
        out = ""
        position = 0
        for match in _CCR_REFERENCE.finditer(value):
            out += _escape(value[position : match.start()])
            position = match.end()
            name = match.group(1) or match.group(2)
            if not _JUNCTION_NAME.fullmatch(name) or out.endswith("$"):
                self.problem(path, f"{match.group(0)!r} cannot be kept as a reference")
            if record:
                self.secret_variables[name] = None
            out += "${" + name + "}"
        return out + _escape(value[position:])

    def string(self, container: Mapping[str, Any], key: str, path: str) -> str | None:
        value = container.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(path, f"must be a string (got {_kind(value)})")
            return None
        return self.expand(value, path)

    # -- sections

    def providers(self, data: Mapping[str, Any]) -> list[_Provider]:
        raw = data.get("Providers", data.get("providers"))
        if raw is None or raw == []:
            self.problem("Providers", "at least one provider is required")
            return []
        if not isinstance(raw, list):
            self.problem("Providers", f"must be a list (got {_kind(raw)})")
            return []
        out = []
        for index, entry in enumerate(raw):
            provider = self.provider(index, entry)
            if provider is not None:
                out.append(provider)
        return out

    def provider(self, index: int, raw: Any) -> _Provider | None:
        path, junction = f"Providers[{index}]", f"providers[{index}]"
        if not isinstance(raw, dict):
            self.problem(path, f"must be an object (got {_kind(raw)})")
            return None
        self.key_paths[junction] = path
        name = self.string(raw, "name", f"{path}.name")
        url = self.string(raw, "api_base_url", f"{path}.api_base_url")
        for key, value in (("name", name), ("api_base_url", url)):
            if value is None and key not in raw:
                self.problem(f"{path}.{key}", "required")
        models = self.models(raw.get("models"), f"{path}.models")
        transformer = raw.get("transformer") or {}
        if not isinstance(transformer, dict):
            self.problem(f"{path}.transformer", f"must be an object (got {_kind(transformer)})")
            transformer = {}
        use = transformer.get("use") or []
        entries = list(self.use_entries(use, f"{path}.transformer.use"))
        anthropic = any(name_.lower() == "anthropic" for _, _, name_, _ in entries)
        # A provider behind a native-API or unknown transformer gets that warning alone.
        foreign = any(_is_foreign(name_) for _, _, name_, _ in entries)
        base_url, dialect = _endpoint(url or "", anthropic)
        out: dict[str, Any] = {"name": name or "", "dialect": dialect, "base_url": base_url}
        for key, source in _PROVIDER_KEYS.items():
            self.key_paths[f"{junction}.{key}"] = f"{path}.{source}"
        if url and not foreign:
            self.check_endpoint(url, base_url, dialect, f"{path}.api_base_url")
        api_key = raw.get("api_key")
        if isinstance(api_key, str):
            if api_key:
                out["api_key"] = self.reference(api_key, f"{path}.api_key")
        elif api_key is not None:
            self.problem(f"{path}.api_key", f"must be a string (got {_kind(api_key)})")
        out["models"] = models
        chain = self.chain(entries, dialect, f"{junction}.transformers")
        if chain:
            out["transformers"] = chain
        model_use = [
            (f"{path}.transformer.{model}", model, spec)
            for model, spec in transformer.items()
            if model != "use"
        ]
        for key in raw:
            if key == "tokenizer":
                self.warn(f"{path}.tokenizer", "Junction counts tokens with its own estimator")
            elif key not in ("name", "api_base_url", "api_key", "models", "transformer"):
                self.warn(f"{path}.{key}", "not a claude-code-router key Junction knows")
        return _Provider(path, out, models, model_use)

    def models(self, raw: Any, path: str) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(path, f"must be a list of model names (got {_kind(raw)})")
            return []
        out = []
        for index, model in enumerate(raw):
            if isinstance(model, str) and model.strip():
                out.append(self.expand(model.strip(), f"{path}[{index}]"))
            else:
                self.problem(f"{path}[{index}]", "must be a model name")
        return out

    def check_endpoint(self, url: str, base_url: str, dialect: str, path: str) -> None:
        suffix = "/v1/messages" if dialect == "anthropic" else "/v1/chat/completions"
        called = base_url + suffix
        given = url.rstrip("/")
        # A bare host with /chat/completions: OpenAI-compatible servers answer under /v1 too.
        root_chat = given.lower().endswith("/chat/completions") and not urlsplit(base_url).path
        # A base URL instead of an endpoint: claude-code-router would fail, Junction works.
        if not called.startswith(given) and not root_chat:
            self.warn(
                path,
                f"Junction sends requests to {called}, not {url} (it has no setting for "
                "another endpoint path); check that the provider answers there",
            )

    def use_entries(self, use: Any, path: str) -> Iterator[tuple[str, int, str, Any]]:
        """(config.json path, index, name, options or None) for each entry of `use`."""
        if not isinstance(use, list):
            self.problem(path, "must be a list of transformer names or [name, {options}]")
            return
        for index, entry in enumerate(use):
            where = f"{path}[{index}]"
            if isinstance(entry, str) and entry.strip():
                yield where, index, entry.strip(), None
            elif (
                isinstance(entry, list)
                and len(entry) in (1, 2)
                and isinstance(entry[0], str)
                and (len(entry) == 1 or entry[1] is None or isinstance(entry[1], dict))
            ):
                yield where, index, entry[0].strip(), entry[1] if len(entry) == 2 else None
            else:
                self.problem(where, "must be a transformer name or [name, {options}]")

    def chain(
        self, entries: list[tuple[str, int, str, Any]], dialect: str, junction: str
    ) -> list[Any]:
        out: list[Any] = []
        for where, _, name, options in entries:
            key = name.lower()
            if key in _ENDPOINT_TRANSFORMERS:
                continue
            if key not in BUILTIN:
                self.warn(f"{where} {name!r}", _TRANSFORMER_ADVICE.get(key, _UNKNOWN_TRANSFORMER))
                continue
            if options and key == "openrouter":
                options = self.openrouter_options(options, where)
            entry: Any = key if not options else [key, self.options(options, f"{where}[1]")]
            try:
                built = build_transformer(entry)
            except ValueError as error:
                self.warn(f"{where} {name!r}", f"Junction's {key} does not take this ({error})")
                continue
            if not supports(built, Dialect(dialect)):
                self.warn(f"{where} {name!r}", f"Junction's {key} works with OpenAI-dialect only")
                continue
            self.key_paths[f"{junction}[{len(out)}]"] = where
            out.append(entry)
        return out

    def openrouter_options(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        """claude-code-router's openrouter options are not request fields: `providerOrder`
        becomes OpenRouter's `provider.order`; `referer` and `title` were HTTP headers."""
        out = {k: v for k, v in options.items() if k not in ("providerOrder", "referer", "title")}
        order = options.get("providerOrder")
        if order:
            provider = out.get("provider")
            out["provider"] = {**(provider if isinstance(provider, dict) else {}), "order": order}
        dropped = [k for k in ("referer", "title") if options.get(k)]
        if dropped:
            names = " and ".join(dropped)
            self.warn(f"{where}[1]", f"{names}: Junction does not send OpenRouter's app headers")
        return out

    def options(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.reference(value, path)
        if isinstance(value, dict):
            return {k: self.options(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.options(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def model_transformers(self, provider: _Provider) -> None:
        out: dict[str, list[Any]] = {}
        junction = provider.path.replace("Providers", "providers", 1) + ".model_transformers"
        for path, model, spec in provider.model_use:
            if not isinstance(spec, dict):
                self.problem(path, f"must be an object with 'use' (got {_kind(spec)})")
                continue
            entries = list(self.use_entries(spec.get("use") or [], f"{path}.use"))
            if provider.models and model not in provider.models:
                self.warn(path, f"{model!r} is not in {provider.path}.models and no route uses it")
                continue
            chain = self.chain(entries, provider.out["dialect"], f"{junction}.{model}")
            if chain:
                out[model] = chain
        if out:
            provider.out["model_transformers"] = out

    def router(self, data: Mapping[str, Any], providers: list[_Provider]) -> dict[str, Any]:
        raw = data.get("Router")
        fallback = data.get("fallback") or {}
        if not isinstance(raw, dict):
            self.problem(
                "Router", "required" if raw is None else f"must be an object (got {_kind(raw)})"
            )
            return {}
        if not isinstance(fallback, dict):
            self.problem("fallback", f"must be an object (got {_kind(fallback)})")
            fallback = {}
        by_name = {p.out["name"]: p for p in providers}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "longContextThreshold":
                threshold = self.number(value, "Router.longContextThreshold")
                if threshold:  # claude-code-router: `|| 60000`, so 0 means the default
                    out["long_context_threshold"] = threshold
                    self.key_paths["router.long_context_threshold"] = "Router.longContextThreshold"
            elif key not in SCENARIOS:
                self.warn(f"Router.{key}", "not a claude-code-router route Junction knows")
            elif value not in (None, ""):
                target = self.route(value, f"Router.{key}", by_name)
                more = self.fallbacks(fallback.get(key), key, by_name)
                junction = f"router.{SCENARIOS[key]}"
                out[SCENARIOS[key]] = [target, *more] if more else target
                self.key_paths[junction] = f"Router.{key}"
                self.key_paths[f"{junction}[0]"] = f"Router.{key}"
                for index in range(len(more)):
                    self.key_paths[f"{junction}[{index + 1}]"] = f"fallback.{key}[{index}]"
        if "default" not in out:
            self.problem("Router.default", "required (the route for every other request)")
        for key, value in fallback.items():
            if key not in SCENARIOS:
                self.warn(f"fallback.{key}", "not a claude-code-router route Junction knows")
            elif value and SCENARIOS[key] not in out:
                self.warn(f"fallback.{key}", f"Router.{key} is not set, so it was never used")
        self.key_paths["router"] = "Router"
        return out

    def fallbacks(self, raw: Any, key: str, by_name: Mapping[str, _Provider]) -> list[str]:
        path = f"fallback.{key}"
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(path, f"must be a list of 'provider,model' (got {_kind(raw)})")
            return []
        return [self.route(v, f"{path}[{i}]", by_name) for i, v in enumerate(raw)]

    def route(self, value: Any, path: str, by_name: Mapping[str, _Provider]) -> str:
        if not isinstance(value, str):
            self.problem(path, f"must be a 'provider,model' string (got {_kind(value)})")
            return ""
        before = len(self.problems)
        text = self.expand(value, path)
        name, comma, model = (part.strip() for part in text.partition(","))
        if len(self.problems) > before:
            pass  # an unset variable: already reported
        elif not comma or not name or not model:
            self.problem(path, f"must be 'provider,model' (got {value!r})")
        elif name not in by_name:
            known = ", ".join(by_name) or "none"
            self.problem(path, f"unknown provider {name!r} (providers: {known})")
        else:
            provider = by_name[name]
            # claude-code-router sends a routed model whether or not `models` lists it.
            if provider.models and model not in provider.models:
                provider.models.append(model)
        return text

    def number(self, value: Any, path: str) -> int | None:
        if isinstance(value, str) and value.strip():
            value = self.expand(value, path)
            with contextlib.suppress(ValueError):
                value = float(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            if value not in (None, ""):
                self.problem(path, f"must be a positive number (got {value!r})")
            return None
        if value != int(value):
            self.problem(path, f"must be a whole number (got {value!r})")
            return None
        return int(value)

    def timeout(self, value: Any) -> int | None:
        ms = self.number(value, "API_TIMEOUT_MS")
        if ms == 0:
            self.problem("API_TIMEOUT_MS", "must be greater than 0")
            return None
        return ms

    def listen(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        host = self.string(data, "HOST", "HOST")
        if host and host.lower() in _LOOPBACK:
            out["host"] = host
            self.key_paths["listen.host"] = "HOST"
        elif host and data.get("APIKEY"):
            # Without APIKEY claude-code-router itself binds 127.0.0.1, as Junction does.
            self.warn(
                "HOST",
                f"{host} is not used: Junction does not check client keys yet, so it listens "
                "on 127.0.0.1 (pass --host to listen elsewhere)",
            )
        port = self.number(data.get("PORT"), "PORT")
        if port is not None:
            out["port"] = port
            self.key_paths["listen.port"] = "PORT"
        if data.get("APIKEY"):
            self.warn(
                "APIKEY",
                "not enforced yet (Junction does not check client keys); `junction env` and "
                "`junction claude` still send it as ANTHROPIC_AUTH_TOKEN",
            )
        return out

    def log(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        enabled = data.get("LOG")
        if isinstance(enabled, str) and enabled.lower() in ("true", "false"):
            enabled = enabled.lower() == "true"
        if isinstance(enabled, bool):
            out["access_log"] = enabled
            self.key_paths["log.access_log"] = "LOG"
        elif enabled is not None:
            self.problem("LOG", f"must be true or false (got {enabled!r})")
        level = self.string(data, "LOG_LEVEL", "LOG_LEVEL")
        if level:
            if level.lower() in _LOG_LEVELS:
                out["level"] = _LOG_LEVELS[level.lower()]
                self.key_paths["log.level"] = "LOG_LEVEL"
            else:
                choices = ", ".join(k for k in _LOG_LEVELS if k != "warning")
                self.problem("LOG_LEVEL", f"must be one of {choices} (got {level!r})")
        return out


def _endpoint(url: str, anthropic: bool) -> tuple[str, str]:
    """(base_url, dialect) for one of claude-code-router's full endpoint URLs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, "anthropic" if anthropic else "openai"
    path = parts.path.rstrip("/")
    lower = path.lower()
    if lower.endswith("/v1/messages") or (parts.hostname or "").lower() == "api.anthropic.com":
        anthropic = True
    for suffix in ("/v1/chat/completions", "/chat/completions", "/v1/messages", "/v1"):
        if lower.endswith(suffix):
            path = path[: -len(suffix)]
            break
    base = urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
    return base, "anthropic" if anthropic else "openai"


def _is_foreign(name: str) -> bool:
    """A transformer for another API than Chat Completions / Messages, or one Junction does
    not know at all (a user's JavaScript transformer)."""
    key = name.lower()
    if key in _NATIVE_ADVICE:
        return True
    return (
        key not in BUILTIN and key not in _ENDPOINT_TRANSFORMERS and key not in _TRANSFORMER_ADVICE
    )


def _is_set(key: str, value: Any) -> bool:
    """Whether a key does anything: claude-code-router's UI writes unused keys as "", false,
    [] or a disabled StatusLine."""
    if key == "StatusLine":
        return isinstance(value, dict) and bool(value.get("enabled"))
    if key == "plugins" and isinstance(value, list):
        return any(not isinstance(p, dict) or p.get("enabled", True) for p in value)
    return value not in (None, False, "", [], {})


def _escape(text: str) -> str:
    return text.replace("${", "$${")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _describe_json5_error(error: ValueError) -> str:
    match = _JSON5_ERROR.fullmatch(str(error))
    if match is None:
        return f"invalid JSON5 ({error})"
    line, what, column = match.groups()
    return f"invalid JSON5 at line {line}, column {column}: {what[0].lower()}{what[1:]}"


class _FlowList(list[Any]):
    """A list written on one line: models, transformer entries, route lists."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key


def _represent_flow(dumper: yaml.SafeDumper, data: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(_FlowList, _represent_flow)


def _flow_lists(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _flow_lists(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [_flow_lists(v) for v in value]
        return items if key == "providers" else _FlowList(items)
    return value
