"""The router and provider schema for routing: route forms, scenarios, aliases, custom
router, deployments, model_info — and the runtime built from them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from proxy.config import load_config, render_config
from proxy.config.model import RouteConfig
from proxy.routing.catalog import lookup
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.types import Requirements, Strategy
from proxy.upstream.api import Origin
from tests.unit.config.helpers import load_text, problems_of, write

PROVIDERS = """\
providers:
  - name: openrouter
    dialect: openai
    base_url: https://openrouter.ai/api
    api_key: sk-or-0123456789abcdef
    models: [anthropic/claude-sonnet-4.5, google/gemini-2.5-pro, google/gemini-2.5-flash]
  - name: ollama
    dialect: openai
    base_url: http://127.0.0.1:11434
  - name: anthropic
    dialect: anthropic
    base_url: https://api.anthropic.com
    api_key: sk-ant-0123456789abcdef
    models: [claude-sonnet-4-5, claude-haiku-4-5]
"""

ROUTER = """\
router:
  default: openrouter,anthropic/claude-sonnet-4.5
  background: [ollama,qwen2.5-coder, openrouter,google/gemini-2.5-flash]
  think:
    {targets: [anthropic,claude-sonnet-4-5, openrouter,google/gemini-2.5-pro], strategy: latency}
  long_context: openrouter,google/gemini-2.5-pro
  long_context_threshold: 90000
  web_search: [openrouter,google/gemini-2.5-flash]
  image: openrouter,google/gemini-2.5-pro
  background_pattern: '^claude-3-5-haiku'
  subagent_tag: false
  aliases:
    claude-sonnet-4-5: openrouter,anthropic/claude-sonnet-4.5
    sonnet:
      targets: [anthropic,claude-sonnet-4-5, openrouter,anthropic/claude-sonnet-4.5]
      strategy: cost
      affinity: true
      quality_floor: 0.8
      cost_weight: 2
      latency_weight: 0.5
      quality_weight: 1
  custom_budget_ms: 12.5
"""


def router(text: str) -> str:
    return PROVIDERS + "router:\n" + "".join(f"  {line}\n" for line in text.splitlines())


# -- route forms ---------------------------------------------------------------------------------


def test_three_forms_normalise_to_one_model(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, PROVIDERS + ROUTER, env={})
    r = cfg.router
    assert r.default.targets == ("openrouter,anthropic/claude-sonnet-4.5",)
    assert r.default.strategy == "priority" and not r.default.affinity
    # YAML flow lists split "provider,model" at the comma; neighbours are joined back.
    assert r.background is not None
    assert r.background.targets == ("ollama,qwen2.5-coder", "openrouter,google/gemini-2.5-flash")
    assert r.think is not None and r.think.strategy == "latency"
    assert r.think.refs[1] == ("openrouter", "google/gemini-2.5-pro")
    assert r.long_context_threshold == 90000 and r.background_pattern == "^claude-3-5-haiku"
    assert r.subagent_tag is False and r.custom is None and r.custom_budget_ms == 12.5
    sonnet = r.aliases["sonnet"]
    assert (sonnet.strategy, sonnet.affinity, sonnet.quality_floor) == ("cost", True, 0.8)
    assert (sonnet.cost_weight, sonnet.latency_weight, sonnet.quality_weight) == (2, 0.5, 1)
    assert list(r.scenario_routes()) == [
        "default",
        "background",
        "think",
        "long_context",
        "web_search",
        "image",
    ]


def test_defaults_of_the_new_router_keys(tmp_path: Path) -> None:
    r = load_text(tmp_path, router("default: ollama,m"), env={}).router
    assert (r.background, r.think, r.long_context, r.web_search, r.image) == (None,) * 5
    assert r.long_context_threshold == 60000 and r.background_pattern is None
    assert r.subagent_tag is True and r.aliases == {} and r.custom is None
    assert r.custom_budget_ms == 5.0
    assert list(r.scenario_routes()) == ["default"]


def test_a_string_route_still_compares_as_the_string(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, PROVIDERS + ROUTER, env={})
    assert cfg.router.default == "openrouter,anthropic/claude-sonnet-4.5"
    assert cfg.router.default != "ollama,m"
    assert cfg.router.long_context == "openrouter,google/gemini-2.5-pro"
    assert cfg.router.web_search != "openrouter,google/gemini-2.5-flash"  # a list is not
    assert hash(cfg.router.default) == hash("openrouter,anthropic/claude-sonnet-4.5")
    assert cfg.router.default_route == ("openrouter", "anthropic/claude-sonnet-4.5")
    assert RouteConfig.model_validate("a,b") == RouteConfig.model_validate("a,b")
    assert RouteConfig.model_validate("a,b") != RouteConfig.model_validate({"targets": ["a,b"]})


def test_render_keeps_each_form_and_round_trips(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, PROVIDERS + ROUTER, env={})
    data = yaml.safe_load(render_config(cfg))
    r = data["router"]
    assert r["default"] == "openrouter,anthropic/claude-sonnet-4.5"
    assert r["background"] == ["ollama,qwen2.5-coder", "openrouter,google/gemini-2.5-flash"]
    assert r["think"] == {
        "targets": ["anthropic,claude-sonnet-4-5", "openrouter,google/gemini-2.5-pro"],
        "strategy": "latency",
        "affinity": False,
        "quality_floor": None,
        "cost_weight": 1.0,
        "latency_weight": 0.0,
        "quality_weight": 0.0,
    }
    for provider, key in zip(data["providers"], ["sk-or", None, "sk-ant"], strict=True):
        provider["api_key"] = key and f"{key}-0123456789abcdef"
    again = load_config(write(tmp_path, yaml.safe_dump(data), "again.yaml"), env={})
    assert again == cfg and hash(again) == hash(cfg)


def test_env_overrides_a_route_as_text_or_json(tmp_path: Path) -> None:
    env = {
        "JUNCTION_ROUTER__DEFAULT": "ollama,llama3",
        "JUNCTION_ROUTER__THINK": '{"targets": ["ollama,qwq"], "strategy": "weighted"}',
        "JUNCTION_ROUTER__BACKGROUND": "ollama,tiny",
    }
    cfg = load_text(tmp_path, PROVIDERS + ROUTER, env=env)
    assert cfg.router.default == "ollama,llama3"
    assert cfg.router.think is not None and cfg.router.think.strategy == "weighted"
    assert cfg.router.background == "ollama,tiny"
    env = {"JUNCTION_ROUTER__DEFAULT": '{"targets": ["ollama,a", "ollama,b"]}'}
    assert load_text(tmp_path, PROVIDERS + ROUTER, env=env).router.default.targets == (
        "ollama,a",
        "ollama,b",
    )
    bad = {"JUNCTION_ROUTER__DEFAULT": "{nope"}
    assert problems_of(tmp_path, PROVIDERS + ROUTER, env=bad) == [
        "router.default: must be 'provider,model' or valid JSON"
    ]


# -- route problems ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "default: ollama,m\nthink: {targets: [ollama,a, x,b]}",
            [
                "router.think.targets[1]: unknown provider 'x' "
                "(providers: openrouter, ollama, anthropic)"
            ],
        ),
        (
            "default: ollama,m\nbackground: ['ollama,a', 'anthropic,gpt-4o']",
            [
                "router.background[1]: provider 'anthropic' has no model 'gpt-4o' "
                "(models: claude-sonnet-4-5, claude-haiku-4-5)"
            ],
        ),
        (
            "default: nope,m\naliases: {fast: [ollama,a, y,b]}",
            [
                "router.default: unknown provider 'nope' "
                "(providers: openrouter, ollama, anthropic)",
                "router.aliases.fast[1]: unknown provider 'y' "
                "(providers: openrouter, ollama, anthropic)",
            ],
        ),
        (
            "default: ollama,m\nimage: {targets: ['ollama,a', 'oops']}",
            ["router.image.targets[1]: must be 'provider,model' (got 'oops')"],
        ),
        (
            "default: ollama,m\nweb_search: ['ollama,a', 'odd']",
            ["router.web_search[1]: must be 'provider,model' (got 'odd')"],
        ),
        ("default: ollama,m\nweb_search: []", ["router.web_search: must not be empty"]),
        ("default: ollama,m\nthink: {targets: []}", ["router.think.targets: must not be empty"]),
        ("default: ollama,m\nthink: {strategy: cost}", ["router.think.targets: required"]),
        (
            "default: {targets: [ollama,m], strategy: fastest}",
            [
                "router.default.strategy: must be one of priority, weighted, "
                "least_outstanding, latency, cost (got 'fastest')"
            ],
        ),
        (
            "default: {targets: [ollama,m], quality_floor: 1.5, cost_weight: -1}",
            [
                "router.default.quality_floor: must be at most 1 (got 1.5)",
                "router.default.cost_weight: must be at least 0 (got -1)",
            ],
        ),
        (
            "default: {targets: [ollama,m], affinty: true}",
            ["router.default.affinty: unknown key (did you mean 'affinity'?)"],
        ),
        (
            "default: ollama,m\nbackground_pattern: '(unclosed'",
            [
                "router.background_pattern: invalid regular expression "
                "(missing ), unterminated subpattern at position 0)"
            ],
        ),
        (
            "default: ollama,m\nlong_context_threshold: 0\ncustom_budget_ms: 0",
            [
                "router.long_context_threshold: must be greater than 0 (got 0)",
                "router.custom_budget_ms: must be greater than 0 (got 0)",
            ],
        ),
        (
            "default: ollama,m\naliases: {'ollama,m': 'ollama,m'}",
            ["router.aliases.ollama,m: an alias must not contain ',' (that is provider,model)"],
        ),
        (
            "default: ollama,m\nthinking: ollama,m",
            ["router.thinking: unknown key (did you mean 'think'?)"],
        ),
        (  # claude-code-router's spelling
            "default: ollama,m\nlongContext: ollama,m",
            ["router.longContext: unknown key (did you mean 'long_context'?)"],
        ),
    ],
)
def test_route_problems_name_the_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems_of(tmp_path, router(text), env={}) == expected


@pytest.mark.parametrize(
    ("custom", "problem"),
    [
        ("json", "must be an import path 'package.module:function' (got 'json')"),
        ("json:", "must be an import path 'package.module:function' (got 'json:')"),
        ("a b:c", "must be an import path 'package.module:function' (got 'a b:c')"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz:f' (ModuleNotFoundError: "),
        ("json:nope", "cannot import 'json:nope' (no 'nope' in json)"),
        ("math:pi", "'math:pi' is not callable (got a float)"),
    ],
)
def test_custom_router_is_imported_and_must_be_callable(
    tmp_path: Path, custom: str, problem: str
) -> None:
    problems = problems_of(tmp_path, router(f"default: ollama,m\ncustom: '{custom}'"), env={})
    assert len(problems) == 1
    assert problems[0].startswith(f"router.custom: {problem}")


@pytest.mark.parametrize("custom", ["json:dumps", "os.path.join", "os.path:join"])
def test_custom_router_accepted(tmp_path: Path, custom: str) -> None:
    cfg = load_text(tmp_path, router(f"default: ollama,m\ncustom: {custom}"), env={})
    assert cfg.router.custom == custom


# -- deployments and model_info ----------------------------------------------------------------

DEPLOYED = """\
providers:
  - name: azure
    dialect: openai
    api_key: sk-shared-0123456789
    models: [gpt-4o]
    deployments:
      - base_url: https://eu.example.com/openai
        api_key: sk-eu-0123456789abcd
        weight: 2
        region: eu
      - {base_url: 'https://us.example.com:8443', region: us}
      - {name: backup, base_url: 'http://10.0.0.1:8000'}
    model_info:
      gpt-4o: {context_window: 64000, input_price: 2.0}
router:
  default: azure,gpt-4o
"""


def test_deployments_are_named_by_position_and_inherit_the_key(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, DEPLOYED, env={})
    p = cfg.provider("azure")
    assert p.base_url is None
    assert [d.name for d in p.deployments] == ["d0", "d1", "backup"]
    assert [d.weight for d in p.deployments] == [2.0, 1.0, 1.0]
    assert [d.region for d in p.deployments] == ["eu", "us", None]
    assert p.deployments[1].api_key is None  # as written ...
    keys = [d.api_key.get_secret_value() for d in p.endpoints() if d.api_key]
    assert keys == ["sk-eu-0123456789abcd", "sk-shared-0123456789", "sk-shared-0123456789"]
    # The single-endpoint helpers describe the first deployment.
    assert (p.host, p.port, p.path_prefix) == ("eu.example.com", 443, "/openai")
    assert p.origin == Origin("https", "eu.example.com", 443)


def test_deployments_render_masked_and_round_trip(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, DEPLOYED, env={})
    text = render_config(cfg)
    assert "sk-eu-0123456789abcd" not in text and "sk-shared" not in text
    data = yaml.safe_load(text)
    shown = data["providers"][0]
    assert [d["api_key"] for d in shown["deployments"]] == ["****abcd", None, None]
    assert shown["model_info"] == {"gpt-4o": {"context_window": 64000, "input_price": 2.0}}
    shown["api_key"] = "sk-shared-0123456789"
    shown["deployments"][0]["api_key"] = "sk-eu-0123456789abcd"
    again = load_config(write(tmp_path, yaml.safe_dump(data), "again.yaml"), env={})
    assert again == cfg


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "    api_key: sk-shared",
                "    base_url: https://x.example.com\n    api_key: sk-shared",
            ),
            ["providers[0].deployments: not with base_url: give each deployment its base_url"],
        ),
        (
            ("{name: backup,", "{name: d1,"),
            [
                "providers[0].deployments[2].name: duplicate deployment name 'd1' "
                "(also deployments[1])"
            ],
        ),
        (
            ("weight: 2\n", "weight: 0\n"),
            ["providers[0].deployments[0].weight: must be greater than 0 (got 0)"],
        ),
        (
            ("'https://us.example.com:8443'", "'us.example.com'"),
            [
                "providers[0].deployments[1].base_url: must start with http:// or https:// "
                "(got 'us.example.com')"
            ],
        ),
        (
            ("api_key: sk-eu-0123456789abcd", "api_key: 'sk eu'"),
            [
                "providers[0].deployments[0].api_key: must be printable ASCII without spaces "
                "or control characters"
            ],
        ),
        (
            ("{name: backup,", "{name: 'my backup',"),
            [
                "providers[0].deployments[2].name: must use only letters, digits, '_', '.' and "
                "'-' (got 'my backup')"
            ],
        ),
        (
            ("region: us}", "regoin: us}"),
            ["providers[0].deployments[1].regoin: unknown key (did you mean 'region'?)"],
        ),
        (
            ("gpt-4o: {context_window", "gpt-5: {context_window"),
            [
                "providers[0].model_info.gpt-5: provider 'azure' has no model 'gpt-5' "
                "(models: gpt-4o)"
            ],
        ),
        (
            ("input_price: 2.0}", "input_price: -1, quality: 2, speed: 1}"),
            [
                "providers[0].model_info.gpt-4o.input_price: must be at least 0 (got -1)",
                "providers[0].model_info.gpt-4o.quality: must be at most 1 (got 2)",
                "providers[0].model_info.gpt-4o.speed: unknown key",
            ],
        ),
    ],
)
def test_deployment_and_model_info_problems(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    assert change[0] in DEPLOYED
    assert problems_of(tmp_path, DEPLOYED.replace(*change), env={}) == expected


def test_model_info_is_what_was_written() -> None:
    from proxy.config.model import ModelInfoConfig

    written = ModelInfoConfig.model_validate({"tools": True, "context_window": None})
    assert written.overrides() == {"tools": True, "context_window": None}
    assert written != ModelInfoConfig.model_validate({})  # same values, but these are set
    assert written == ModelInfoConfig.model_validate({"context_window": None, "tools": True})
    assert hash(written) == hash(
        ModelInfoConfig.model_validate({"tools": True, "context_window": None})
    )


def test_a_provider_needs_base_url_or_deployments(tmp_path: Path) -> None:
    text = "providers: [{name: p, dialect: openai}]\nrouter: {default: 'p,m'}\n"
    assert problems_of(tmp_path, text, env={}) == [
        "providers[0].base_url: required (or list deployments)"
    ]


# -- the runtime built from it -----------------------------------------------------------------


def test_runtime_routes_aliases_and_deployments(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, PROVIDERS + ROUTER, env={})
    rt = RuntimeConfig.from_config(cfg, rng=random.Random(1))
    assert list(rt.routes) == list(cfg.router.scenario_routes())
    think = rt.routes["think"]
    assert think.name == "think" and think.strategy is Strategy.LATENCY
    assert [t.ref for t in think.targets] == [
        "anthropic,claude-sonnet-4-5",
        "openrouter,google/gemini-2.5-pro",
    ]
    sonnet = rt.aliases["sonnet"]
    assert sonnet.name == "alias:sonnet" and sonnet.strategy is Strategy.COST
    assert (sonnet.affinity, sonnet.quality_floor, sonnet.cost_weight) == (True, 0.8, 2.0)
    assert (sonnet.latency_weight, sonnet.quality_weight) == (0.5, 1.0)
    assert rt.default.ref == "openrouter,anthropic/claude-sonnet-4.5"
    # A plain base_url is one deployment named "default", the key injected per dialect.
    (only,) = rt.providers["anthropic"].deployments
    assert only.name == "default" and only.weight == 1.0
    assert only.auth_header == (b"x-api-key", b"sk-ant-0123456789abcdef")
    assert rt.providers["openrouter"].path_prefix == b"/api"
    assert rt.providers["ollama"].auth_header is None
    selection = rt.selector.select(think, Requirements(1_000, 1_000))
    assert [c.key for c in selection.ordered] == [
        "anthropic/default/claude-sonnet-4-5",
        "openrouter/default/google/gemini-2.5-pro",
    ]
    assert selection.ordered[1].info == lookup("gemini-2.5-pro")
    # target_for keeps working as before.
    assert rt.target_for("ollama,x").ref == "ollama,x"
    assert rt.target_for("claude-haiku-4-5").ref == "anthropic,claude-haiku-4-5"
    assert rt.target_for(None) is rt.default


def test_runtime_deployments_model_info_and_explicit_routes(tmp_path: Path) -> None:
    rt = RuntimeConfig.from_config(load_text(tmp_path, DEPLOYED, env={}))
    azure = rt.providers["azure"]
    eu, us, backup = azure.deployments
    assert (eu.name, eu.weight, eu.region, eu.path_prefix) == ("d0", 2.0, "eu", b"/openai")
    assert eu.auth_header == (b"authorization", b"Bearer sk-eu-0123456789abcd")
    assert us.auth_header == (b"authorization", b"Bearer sk-shared-0123456789")
    assert us.origin == Origin("https", "us.example.com", 8443)
    assert backup.origin == Origin("http", "10.0.0.1", 8000)
    assert "sk-eu" not in repr(eu)
    # The provider's first deployment for callers that do not select.
    assert (azure.origin, azure.path_prefix, azure.auth_header) == (
        eu.origin,
        b"/openai",
        eu.auth_header,
    )
    # model_info overrides field by field over the catalog.
    info = azure.model_info["gpt-4o"]
    assert (info.context_window, info.input_price) == (64_000, 2.0)
    assert (info.output_price, info.max_output) == (10.0, 16_384)
    explicit = rt.explicit_route("AZURE", "gpt-4o")
    assert explicit is not None and explicit.name == "explicit"
    assert [c.key for c in rt.selector.candidates(explicit)] == [
        "azure/d0/gpt-4o",
        "azure/d1/gpt-4o",
        "azure/backup/gpt-4o",
    ]
    assert rt.explicit_route("nope", "gpt-4o") is None
    long = rt.selector.select(rt.routes["default"], Requirements(60_000, 8_000))
    assert long.ordered == () and len(long.rejected) == 3


def test_runtime_reload_keeps_live_stats(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, DEPLOYED, env={})
    old = RuntimeConfig.from_config(cfg)
    first = old.selector.select(old.routes["default"], Requirements(10, 10)).ordered[0]
    old.selector.on_start(first)
    new = RuntimeConfig.from_config(cfg, previous=old)
    again = new.selector.candidates(new.routes["default"])[0]
    assert again.key == first.key and again is not first
    assert new.selector.stats(again).outstanding == 1
    fresh = RuntimeConfig.from_config(cfg)
    assert fresh.selector.stats(fresh.selector.candidates(fresh.routes["default"])[0]).requests == 0
