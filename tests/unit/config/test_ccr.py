"""Importing claude-code-router config.json files (proxy.config.ccr)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import load_config
from proxy.config.ccr import CcrImport, read_ccr_config, render_yaml
from proxy.config.loader import load_config_dict
from proxy.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ccr"
ALL = sorted(path.name for path in FIXTURES.glob("*.json"))

# Every variable any fixture references, so each one imports and validates.
ENV = {
    "DEEPSEEK_API_KEY": "sk-deepseek-0123456789",
    "SILICONFLOW_API_KEY": "sk-silicon-0123456789",
    "OPENROUTER_API_KEY": "sk-or-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-0123456789",
    "MOONSHOT_API_KEY": "sk-moon-0123456789",
    "ARK_API_KEY": "ark-0123456789",
    "DASHSCOPE_API_KEY": "sk-dash-0123456789",
    "CCR_APIKEY": "ccr-secret",
    "LOCAL_LLM_URL": "http://127.0.0.1:8000",
    "LOCAL_SUFFIX": "suffix-0123456789",
    "TEAM": "team-a",
    "BACKGROUND_ROUTE": "anthropic,claude-haiku-4-5",
    "HOME": "/home/me",
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def imported(name: str, env: dict[str, str] | None = None) -> CcrImport:
    return read_ccr_config(fixture(name), ENV if env is None else env)


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        read_ccr_config(text, env or {})
    return info.value.message.splitlines()


def keys(result: CcrImport) -> list[str]:
    """The key each warning names (the text before ': ')."""
    return [item.split(": ", 1)[0] for item in result.warnings]


def provider(name: str, url: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "api_base_url": url, "api_key": "k", "models": ["m"], **more}


def config_text(providers: list[dict[str, Any]], router: dict[str, Any], **top: Any) -> str:
    return orjson.dumps({**top, "Providers": providers, "Router": router}).decode()


# -- the real configs, golden


def test_readme_example() -> None:
    result = imported("readme.json")
    assert result.config == {
        "upstream": {"response_header_timeout_s": 600},
        "providers": [
            {
                "name": "openrouter",
                "dialect": "openai",
                "base_url": "https://openrouter.ai/api",
                "api_key": "sk-xxx",
                "models": [
                    "google/gemini-2.5-pro-preview",
                    "anthropic/claude-sonnet-4",
                    "anthropic/claude-3.5-sonnet",
                    "anthropic/claude-3.7-sonnet:thinking",
                ],
                "transformers": ["openrouter"],
            },
            {
                "name": "deepseek",
                "dialect": "openai",
                "base_url": "https://api.deepseek.com",
                "api_key": "sk-xxx",
                "models": ["deepseek-chat", "deepseek-reasoner"],
                "transformers": ["deepseek"],
                "model_transformers": {"deepseek-chat": ["tooluse"]},
            },
            {
                "name": "ollama",
                "dialect": "openai",
                "base_url": "http://localhost:11434",
                "api_key": "ollama",
                "models": ["qwen2.5-coder:latest"],
            },
            {
                "name": "gemini",
                "dialect": "openai",
                "base_url": "https://generativelanguage.googleapis.com/v1beta/models",
                "api_key": "sk-xxx",
                "models": ["gemini-2.5-flash", "gemini-2.5-pro"],
            },
            {
                "name": "volcengine",
                "dialect": "openai",
                "base_url": "https://ark.cn-beijing.volces.com/api/v3",
                "api_key": "sk-xxx",
                "models": ["deepseek-v3-250324", "deepseek-r1-250528"],
                "transformers": ["deepseek"],
            },
            {
                "name": "modelscope",
                "dialect": "openai",
                "base_url": "https://api-inference.modelscope.cn",
                "models": [
                    "Qwen/Qwen3-Coder-480B-A35B-Instruct",
                    "Qwen/Qwen3-235B-A22B-Thinking-2507",
                ],
                "transformers": [["maxtoken", {"max_tokens": 65536}], "enhancetool"],
                "model_transformers": {"Qwen/Qwen3-235B-A22B-Thinking-2507": ["reasoning"]},
            },
            {
                "name": "dashscope",
                "dialect": "openai",
                "base_url": "https://dashscope.aliyuncs.com/compatible-mode",
                "models": ["qwen3-coder-plus"],
                "transformers": [["maxtoken", {"max_tokens": 65536}], "enhancetool"],
            },
            {
                "name": "aihubmix",
                "dialect": "openai",
                "base_url": "https://aihubmix.com",
                "api_key": "sk-",
                "models": ["Z/glm-4.5", "claude-opus-4-20250514", "gemini-2.5-pro"],
            },
        ],
        "router": {
            "default": "deepseek,deepseek-chat",
            "background": "ollama,qwen2.5-coder:latest",
            "think": "deepseek,deepseek-reasoner",
            "long_context": "openrouter,google/gemini-2.5-pro-preview",
            "long_context_threshold": 60000,
            "web_search": "gemini,gemini-2.5-flash",
        },
        "log": {"access_log": True},
    }
    assert keys(result) == [
        "Providers[3].transformer.use[0] 'gemini'",
        "Providers[4].api_base_url",
        "APIKEY",
        "PROXY_URL",
    ]
    assert "ark.cn-beijing.volces.com/api/v3/v1/chat/completions" in result.warnings[1]
    assert result.api_key == "your-secret-key"
    assert result.api_timeout_ms == 600_000
    assert result.secret_variables == ()


def test_minimal() -> None:
    result = imported("minimal.json")
    assert result.config == {
        "providers": [
            {
                "name": "deepseek",
                "dialect": "openai",
                "base_url": "https://api.deepseek.com",
                "api_key": "${DEEPSEEK_API_KEY}",
                "models": ["deepseek-chat", "deepseek-reasoner"],
                "transformers": ["deepseek"],
            }
        ],
        "router": {"default": "deepseek,deepseek-chat"},
    }
    assert result.warnings == [] and result.warning_message() is None
    assert (result.api_key, result.api_timeout_ms) == (None, None)
    assert result.secret_variables == ("DEEPSEEK_API_KEY",)


def test_json5_comments_trailing_commas_and_variables() -> None:
    result = imported("json5-env.json")
    assert result.config == {
        "listen": {"host": "127.0.0.1", "port": 3457},
        "upstream": {"response_header_timeout_s": 300},
        "providers": [
            {
                "name": "anthropic",
                "dialect": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key": "${ANTHROPIC_API_KEY}",
                "models": ["claude-sonnet-4-5", "claude-haiku-4-5"],
            },
            {
                "name": "openrouter",
                "dialect": "openai",
                "base_url": "https://openrouter.ai/api",
                "api_key": "${OPENROUTER_API_KEY}",
                "models": ["google/gemini-2.5-pro", "moonshotai/kimi-k2"],
                "transformers": ["openrouter"],
                "model_transformers": {
                    "moonshotai/kimi-k2": [
                        ["openrouter", {"provider": {"only": ["moonshotai/fp8"]}}]
                    ]
                },
            },
            {
                "name": "local",
                "dialect": "openai",
                "base_url": "http://127.0.0.1:8000",  # expanded: it must be understood
                "api_key": "sk-local-${LOCAL_SUFFIX}",  # kept: a secret
                "models": ["qwen3-coder"],
                "transformers": [
                    ["sampling", {"temperature": 0.6}],
                    ["customparams", {"user": "${TEAM}"}],
                ],
            },
        ],
        "router": {
            "default": "anthropic,claude-sonnet-4-5",
            "background": "anthropic,claude-haiku-4-5",
            "think": "openrouter,google/gemini-2.5-pro",
            "long_context": "openrouter,google/gemini-2.5-pro",
            "long_context_threshold": 100000,
            "image": "openrouter,google/gemini-2.5-pro",
        },
        "log": {"access_log": False, "level": "warning"},
    }
    assert result.warnings == []
    assert result.secret_variables == (
        "ANTHROPIC_API_KEY",
        "OPENROUTER_API_KEY",
        "LOCAL_SUFFIX",
        "TEAM",
    )
    assert result.expanded_variables == ("LOCAL_LLM_URL", "BACKGROUND_ROUTE")
    cfg = load_config_dict(result.config, env=ENV)
    local = cfg.provider("local")
    assert (
        local.api_key is not None
        and local.api_key.get_secret_value() == "sk-local-suffix-0123456789"
    )
    assert local.transformers[1] == ["customparams", {"user": "team-a"}]
    assert (cfg.listen.port, cfg.log.level, cfg.log.access_log) == (3457, "warning", False)
    assert cfg.upstream.response_header_timeout_s == 300


def test_fallback_lists_follow_the_primary() -> None:
    result = imported("fallback.json")
    router = result.config["router"]
    assert router == {
        "default": [
            "deepseek,deepseek-chat",
            "siliconflow,moonshotai/Kimi-K2-Instruct",
            "openrouter,anthropic/claude-sonnet-4",
        ],
        "background": "siliconflow,deepseek-ai/DeepSeek-V3",  # fallback.background is []
        "think": ["deepseek,deepseek-reasoner", "openrouter,anthropic/claude-sonnet-4"],
        "long_context": ["openrouter,google/gemini-2.5-pro", "openrouter,google/gemini-2.5-flash"],
        "long_context_threshold": 60000,
    }
    openrouter = result.config["providers"][2]
    # claude-code-router sends a routed model even when `models` does not list it.
    assert openrouter["models"] == [
        "anthropic/claude-sonnet-4",
        "google/gemini-2.5-pro",
        "google/gemini-2.5-flash",
    ]
    # providerOrder is OpenRouter's provider.order; referer/title were headers.
    assert openrouter["transformers"] == [
        ["openrouter", {"provider": {"order": ["anthropic", "google-vertex"]}}]
    ]
    assert keys(result) == ["Providers[2].transformer.use[0][1]"]
    cfg = load_config_dict(result.config, env=ENV)
    assert cfg.router.default.targets == tuple(router["default"])
    assert cfg.router.think is not None and cfg.router.think.strategy == "priority"
    assert cfg.router.background == "siliconflow,deepseek-ai/DeepSeek-V3"


def test_unsupported_keys_are_listed_once_each_with_advice() -> None:
    result = imported("unsupported.json")
    assert keys(result) == [
        "Providers[0].transformer.use[0] 'gemini-cli'",
        "Providers[1].tokenizer",
        "Providers[2].api_base_url",
        "Providers[2].transformer.use[1] 'forcereasoning'",
        "HOST",
        "APIKEY",
        "PROXY_URL",
        "NON_INTERACTIVE_MODE",
        "CLAUDE_PATH",
        "CUSTOM_ROUTER_PATH",
        "REWRITE_SYSTEM_PROMPT",
        "forceUseImageAgent",
        "StatusLine",
        "plugins",
        "transformers",
    ]
    message = result.warning_message()
    assert message is not None
    assert message.count("\n") == len(result.warnings)  # one message, one line per key
    assert "router.custom" in message and "Python" in message
    assert "listens on 127.0.0.1" in message
    # HOST 0.0.0.0 is not honoured while client keys are not checked.
    assert "listen" in result.config and "host" not in result.config["listen"]
    assert result.api_key == "${CCR_APIKEY}"
    kimi = result.config["providers"][1]
    assert (kimi["dialect"], kimi["base_url"]) == ("anthropic", "https://api.moonshot.ai/anthropic")
    assert result.config["providers"][2]["transformers"] == ["deepseek"]
    load_config_dict(result.config, env=ENV)


def test_what_the_ui_saves_imports_without_warnings() -> None:
    result = imported("ui-saved.json")
    assert result.warnings == []
    assert result.api_key is None  # APIKEY ""
    assert result.config["router"] == {
        "default": "dashscope,qwen3-coder-plus",
        "long_context_threshold": 60000,
    }
    assert result.config["log"] == {"access_log": False, "level": "debug"}
    assert result.config["upstream"] == {"response_header_timeout_s": 600}


@pytest.mark.parametrize("name", ALL)
def test_every_fixture_validates_and_its_yaml_loads_to_the_same_config(
    name: str, tmp_path: Path
) -> None:
    result = imported(name)
    expected = load_config_dict(result.config, env=ENV)
    text = render_yaml(result, source=f"~/{name}", version="9.9")
    assert text.startswith(f"# Junction config imported from claude-code-router's ~/{name}\n")
    path = tmp_path / "junction.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path, env=ENV) == expected
    header, body = text.split("\n\n", 1)
    for name in result.secret_variables:
        assert ENV[name] not in text
        if "${" + name + "}" in body:
            assert name in header  # the header names what to set


def test_rendered_yaml_keeps_secret_references_and_lists_the_warning() -> None:
    text = render_yaml(imported("unsupported.json"), source="config.json", version="1.0")
    assert "api_key: ${MOONSHOT_API_KEY}" in text
    assert "# Secrets stay ${VAR} references, read when Junction starts: " in text
    assert "read when Junction starts: MOONSHOT_API_KEY, ARK_API_KEY.\n" in text
    assert "#   - CUSTOM_ROUTER_PATH: a JavaScript router" in text
    assert "transformers: [deepseek]" in text


# -- endpoint URLs


@pytest.mark.parametrize(
    ("url", "use", "base_url", "dialect"),
    [
        ("https://api.anthropic.com/v1/messages", [], "https://api.anthropic.com", "anthropic"),
        ("https://api.anthropic.com", [], "https://api.anthropic.com", "anthropic"),
        (
            "https://x.example/anthropic/v1/messages/",
            [],
            "https://x.example/anthropic",
            "anthropic",
        ),
        ("https://x.example/anthropic", ["Anthropic"], "https://x.example/anthropic", "anthropic"),
        (
            "https://openrouter.ai/api/v1/chat/completions",
            [],
            "https://openrouter.ai/api",
            "openai",
        ),
        ("http://localhost:11434/v1/chat/completions", [], "http://localhost:11434", "openai"),
        ("https://api.deepseek.com/chat/completions", [], "https://api.deepseek.com", "openai"),
        ("https://llm.example/v1", [], "https://llm.example", "openai"),
        ("https://llm.example/v1/chat/completions", ["OpenAI"], "https://llm.example", "openai"),
    ],
)
def test_endpoint_url_gives_base_url_and_dialect(
    url: str, use: list[str], base_url: str, dialect: str
) -> None:
    entry = provider("p", url, transformer={"use": use})
    result = read_ccr_config(config_text([entry], {"default": "p,m"}), {})
    assert result.config["providers"][0] == {
        "name": "p",
        "dialect": dialect,
        "base_url": base_url,
        "api_key": "k",
        "models": ["m"],
    }


def test_an_endpoint_junction_cannot_reach_is_a_warning() -> None:
    url = "https://open.bigmodel.cn/api/paas/v4/chat/completions"
    result = read_ccr_config(config_text([provider("glm", url)], {"default": "glm,m"}), {})
    assert result.warnings == [
        "Providers[0].api_base_url: Junction sends requests to "
        "https://open.bigmodel.cn/api/paas/v4/v1/chat/completions, not "
        f"{url} (it has no setting for another endpoint path); check that the provider "
        "answers there"
    ]


# -- transformers


def test_transformer_chains_map_to_junction_names_and_drop_what_cannot_run() -> None:
    entry = provider(
        "p",
        "https://llm.example/v1/chat/completions",
        models=["a", "b"],
        transformer={
            "use": ["vercel", "CleanCache", ["maxtoken", {"max_tokens": 0}], "streamoptions"],
            "a": {"use": ["enhancetool", "my-js-transformer"]},
            "zzz": {"use": ["tooluse"]},
        },
    )
    result = read_ccr_config(config_text([entry], {"default": "p,a"}), {})
    out = result.config["providers"][0]
    assert out["transformers"] == ["cleancache", "streamoptions"]
    assert out["model_transformers"] == {"a": ["enhancetool"]}
    assert keys(result) == [
        "Providers[0].transformer.use[0] 'vercel'",
        "Providers[0].transformer.use[2] 'maxtoken'",
        "Providers[0].transformer.a.use[1] 'my-js-transformer'",
        "Providers[0].transformer.zzz",
    ]
    # Junction's transformers[1] came from use[3]: errors point at what the user wrote.
    assert result.source_path("providers[0].transformers[1]") == "Providers[0].transformer.use[3]"
    assert result.source_path("providers[0].model_transformers.a[0]") == (
        "Providers[0].transformer.a.use[0]"
    )


def test_openai_only_transformer_on_an_anthropic_provider_is_dropped() -> None:
    entry = provider("a", "https://api.anthropic.com/v1/messages", transformer={"use": ["tooluse"]})
    result = read_ccr_config(config_text([entry], {"default": "a,m"}), {})
    assert "transformers" not in result.config["providers"][0]
    assert result.warnings == [
        "Providers[0].transformer.use[0] 'tooluse': Junction's tooluse works with "
        "OpenAI-dialect only"
    ]


# -- variables


def test_references_in_secrets_are_kept_and_others_expanded() -> None:
    entry = provider(
        "p",
        "${BASE}/v1/chat/completions",
        api_key="pre-$KEY_A-${KEY_B}-$lower-${",
        models=["$MODEL"],
    )
    env = {"BASE": "https://h.example", "MODEL": "m1", "KEY_A": "never-used"}
    result = read_ccr_config(config_text([entry], {"default": "p,${MODEL}"}), env)
    out = result.config["providers"][0]
    # `$lower` is not a reference for claude-code-router; a lone `${` is escaped for the loader.
    assert out["api_key"] == "pre-${KEY_A}-${KEY_B}-$lower-$${"
    assert (out["base_url"], out["models"]) == ("https://h.example", ["m1"])
    assert result.config["router"]["default"] == "p,m1"
    assert result.secret_variables == ("KEY_A", "KEY_B")
    assert result.expanded_variables == ("BASE", "MODEL")
    cfg = load_config_dict(result.config, env={"KEY_A": "a", "KEY_B": "b"})
    key = cfg.providers[0].api_key
    assert key is not None and key.get_secret_value() == "pre-a-b-$lower-${"


def test_an_expanded_value_is_not_expanded_again() -> None:
    entry = provider("p", "https://h.example/v1/chat/completions", models=["$MODEL"])
    result = read_ccr_config(config_text([entry], {"default": "p,x"}), {"MODEL": "odd${NAME}"})
    assert result.config["providers"][0]["models"] == ["odd$${NAME}", "x"]
    cfg = load_config_dict(result.config, env={})
    assert cfg.providers[0].models == ("odd${NAME}", "x")


def test_unset_variable_outside_a_secret_is_an_error_at_its_key() -> None:
    entry = provider("p", "$BASE_URL/v1/chat/completions")
    assert problems(config_text([entry], {"default": "p,m", "think": "${THINK}"})) == [
        "Providers[0].api_base_url: environment variable BASE_URL is not set",
        "Router.think: environment variable THINK is not set",
    ]


def test_a_reference_junction_cannot_keep_is_an_error() -> None:
    entry = provider("p", "https://h.example", api_key="$$KEY")
    assert problems(config_text([entry], {"default": "p,m"})) == [
        "Providers[0].api_key: '$KEY' cannot be kept as a reference"
    ]


# -- other keys


@pytest.mark.parametrize(
    ("top", "section"),
    [
        ({"LOG_LEVEL": "trace"}, {"log": {"level": "debug"}}),
        ({"LOG_LEVEL": "fatal", "LOG": "false"}, {"log": {"access_log": False, "level": "error"}}),
        ({"API_TIMEOUT_MS": 1500}, {"upstream": {"response_header_timeout_s": 1.5}}),
        ({"PORT": "8080", "HOST": "localhost"}, {"listen": {"host": "localhost", "port": 8080}}),
        ({"HOST": "0.0.0.0"}, {}),  # claude-code-router binds 127.0.0.1 without APIKEY too
        ({"OPENAI_API_KEY": "x", "NON_INTERACTIVE_MODE": False}, {}),
    ],
)
def test_top_level_keys(top: dict[str, Any], section: dict[str, Any]) -> None:
    text = config_text([provider("p", "https://h.example/v1")], {"default": "p,m"}, **top)
    result = read_ccr_config(text, {})
    extra = {k: v for k, v in result.config.items() if k not in ("providers", "router")}
    assert extra == section
    assert result.warnings == []


# -- errors


def test_json5_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        read_ccr_config('{\n  "Router": {}\n  "Providers": []\n}', {}, source="c.json")
    assert info.value.message == 'c.json: invalid JSON5 at line 3, column 3: unexpected """'
    with pytest.raises(ConfigError, match=r"^c\.json: the top level must be an object"):
        read_ccr_config("[1, 2]", {}, source="c.json")


def test_wrong_types_name_each_key() -> None:
    text = config_text(
        [
            {"name": "p", "api_base_url": 5, "models": "m", "transformer": {"use": "deepseek"}},
            "not-a-provider",
            {"api_key": ["k"]},
        ],
        {"default": "p", "think": 3, "longContextThreshold": "lots"},
        API_TIMEOUT_MS=-1,
        LOG_LEVEL="loud",
        fallback={"default": "p,m"},
    )
    assert problems(text) == [
        "Providers[0].api_base_url: must be a string (got a number)",
        "Providers[0].models: must be a list of model names (got a string)",
        "Providers[0].transformer.use: must be a list of transformer names or [name, {options}]",
        "Providers[1]: must be an object (got a string)",
        "Providers[2].name: required",
        "Providers[2].api_base_url: required",
        "Providers[2].api_key: must be a string (got a list)",
        "API_TIMEOUT_MS: must be a positive number (got -1)",
        "Router.default: must be 'provider,model' (got 'p')",
        "fallback.default: must be a list of 'provider,model' (got a string)",
        "Router.think: must be a 'provider,model' string (got a number)",
        "Router.longContextThreshold: must be a positive number (got 'lots')",
        "LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace (got 'loud')",
    ]


def test_unknown_provider_in_router_or_fallback() -> None:
    text = config_text(
        [provider("deepseek", "https://api.deepseek.com/chat/completions")],
        {"default": "DeepSeek,m", "background": "ollama,q"},
        fallback={"background": ["deepseek,m", "gone,x"]},
    )
    assert problems(text) == [
        "Router.default: unknown provider 'DeepSeek' (providers: deepseek)",
        "Router.background: unknown provider 'ollama' (providers: deepseek)",
        "fallback.background[1]: unknown provider 'gone' (providers: deepseek)",
    ]


def test_missing_sections() -> None:
    assert problems("{}") == [
        "Providers: at least one provider is required",
        "Router: required",
    ]
    text = config_text([provider("p", "https://h.example")], {"background": "p,m"})
    assert problems(text) == ["Router.default: required (the route for every other request)"]


def test_validation_errors_are_translated_to_config_json_keys() -> None:
    text = config_text(
        [
            provider("my provider", "https://h.example/v1/chat/completions"),
            provider("p", "ftp://h.example/v1/chat/completions"),
        ],
        {"default": "p,m"},
        fallback={"default": ["my provider,m"]},
        PORT=70000,
    )
    result = read_ccr_config(text, {})
    with pytest.raises(ConfigError) as info:
        load_config_dict(result.config, env={})
    assert result.translate(info.value).message.splitlines() == [
        "PORT: must be at most 65535 (got 70000)",
        "Providers[0].name: must use only letters, digits, '_', '.' and '-' (got 'my provider')",
        "Providers[1].api_base_url: must start with http:// or https:// (got 'ftp://h.example')",
    ]
    assert result.source_path("router.default[1]") == "fallback.default[0]"
    assert result.source_path("router.default") == "Router.default"
    assert result.source_path("providers[1].dialect") == "Providers[1].api_base_url"
    assert result.source_path("server.workers") == "server.workers"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "c.json: invalid JSON5 (Empty strings are not legal JSON5)"),
        ("{PORT: Infinity}", "PORT: must be a positive number (got inf)"),
        ("{API_TIMEOUT_MS: NaN}", "API_TIMEOUT_MS: must be a positive number (got nan)"),
        ("{API_TIMEOUT_MS: 0}", "API_TIMEOUT_MS: must be greater than 0"),
        ("{Router: {longContextThreshold: 1.5}}", "Router.longContextThreshold: must be a whole"),
    ],
)
def test_odd_values(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_ccr_config(text, {}, source="c.json")
    assert any(line.startswith(message) for line in info.value.message.splitlines())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["name", "use", "default", "x"]), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = ["Providers", "Router", "fallback", "PORT", "HOST", "APIKEY", "LOG", "LOG_LEVEL"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*_KEYS, "API_TIMEOUT_MS", "plugins"]), _JSON, max_size=6))
def test_any_shape_is_imported_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        result = read_ccr_config(json.dumps(data), {})
    except ConfigError:
        return
    assert isinstance(result.config["providers"], list)
