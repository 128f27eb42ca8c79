"""The auth: and rate_limits: sections: defaults, problems at their key paths, masking."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from proxy.config import render_config
from proxy.config.auth import limit_settings
from proxy.errors import ConfigError
from proxy.limits.api import LimitSpec
from proxy.routing.runtime import RuntimeConfig
from tests.unit.config.helpers import MINIMAL, SECRET, load_text, problems_of

KEY_A = "jx-ci-bot-0123456789"
KEY_B = "jx-laptop-abcdefghij"
ENV = {"ANTHROPIC_API_KEY": SECRET, "KEY_A": KEY_A, "KEY_B": KEY_B}

KEYS = (
    MINIMAL
    + """\
auth:
  keys:
    - name: ci-bot
      key: ${KEY_A}
      models: [claude-sonnet-4-5, "anthropic,claude-*"]
      limits: {requests_per_minute: 60, tokens_per_minute: 200000, concurrent: 4,
               spend_per_day_usd: 20, spend_per_month_usd: 300}
    - name: laptop
      key: ${KEY_B}
rate_limits:
  per_model: {claude-opus-4-8: {requests_per_minute: 100}}
  per_provider: {anthropic: {concurrent: 50}}
"""
)


def test_defaults_no_keys_and_nothing_limited(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL)
    assert cfg.auth.keys == () and cfg.auth.required is False
    assert limit_settings(cfg.auth, cfg.rate_limits).empty


def test_keys_are_required_by_default_and_limits_reach_the_limiter(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, KEYS, env=ENV)
    assert cfg.auth.required is True
    assert cfg.auth.keys[0].models == ("claude-sonnet-4-5", "anthropic,claude-*")
    settings = limit_settings(cfg.auth, cfg.rate_limits)
    assert settings.keys == {
        "ci-bot": LimitSpec(60, 200000, 4, 20.0, 300.0),
        "laptop": LimitSpec(),
    }
    assert settings.models == {"claude-opus-4-8": LimitSpec(requests_per_minute=100)}
    assert settings.providers == {"anthropic": LimitSpec(concurrent=50)}
    optional = load_text(tmp_path, KEYS.replace("auth:\n", "auth:\n  required: false\n"), env=ENV)
    assert optional.auth.required is False


def test_check_config_never_shows_a_client_key(tmp_path: Path) -> None:
    text = render_config(load_text(tmp_path, KEYS, env=ENV))
    assert KEY_A not in text and KEY_B not in text
    assert KEY_A[-4:] not in text and KEY_B[-4:] not in text
    shown = yaml.safe_load(text)
    assert [k["key"] for k in shown["auth"]["keys"]] == ["****", "****"]
    assert shown["rate_limits"]["per_provider"] == {
        "anthropic": {
            "requests_per_minute": None,
            "tokens_per_minute": None,
            "concurrent": 50,
            "spend_per_day_usd": None,
            "spend_per_month_usd": None,
        }
    }


def test_duplicate_names_and_keys_are_reported_at_their_paths(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
auth:
  keys:
    - {name: a, key: "${KEY_A}"}
    - {name: b, key: "${KEY_B}"}
    - {name: a, key: "${KEY_A}"}
"""
    )
    lines = problems_of(tmp_path, text, env=ENV)
    assert lines == [
        "auth.keys[2].name: duplicate key name 'a' (also keys[0])",
        "auth.keys[2].key: the same key as keys[0]: each key must be unique",
    ]
    assert not any(KEY_A in line for line in lines)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            'auth: {keys: [{name: a, key: "short-key"}]}',
            "auth.keys[0].key: must be at least 16 characters",
        ),
        (
            'auth: {keys: [{name: a, key: "has a space in it ok"}]}',
            "auth.keys[0].key: must be printable ASCII without spaces or control characters",
        ),
        (
            'auth: {keys: [{name: "a b", key: "0123456789abcdef"}]}',
            "auth.keys[0].name: must use only letters, digits, '_', '.', '@' and '-' (got 'a b')",
        ),
        ("auth: {required: true}", "auth.required: true needs at least one key in auth.keys"),
        (
            'auth: {keys: [{name: a, key: "0123456789abcdef", models: [",x"]}]}',
            "auth.keys[0].models[0]: must be 'model' or 'provider,model' (got ',x')",
        ),
        (
            "rate_limits: {per_model: {m: {requests_per_minute: 0}}}",
            "rate_limits.per_model.m.requests_per_minute: must be greater than 0 (got 0)",
        ),
        (
            "rate_limits: {per_provider: {anthropic: {concurent: 1}}}",
            "rate_limits.per_provider.anthropic.concurent: unknown key",
        ),
        (
            "rate_limits: {per_modle: {}}",
            "rate_limits.per_modle: unknown key (did you mean 'per_model'?)",
        ),
    ],
)
def test_problems(tmp_path: Path, snippet: str, expected: str) -> None:
    lines = problems_of(tmp_path, MINIMAL + snippet + "\n")
    assert lines == [expected]
    assert "short-key" not in "\n".join(lines)


def test_unknown_providers_in_limits_fail_the_load_of_the_runtime(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
auth: {keys: [{name: a, key: "0123456789abcdef", models: ["anthropc,*", "*,x"]}]}
rate_limits: {per_provider: {openai: {concurrent: 1}}}
"""
    )
    with pytest.raises(ConfigError) as info:
        RuntimeConfig.from_config(load_text(tmp_path, text))
    assert info.value.message.splitlines() == [
        "rate_limits.per_provider.openai: unknown provider (providers: anthropic)",
        "auth.keys[0].models[0]: unknown provider 'anthropc' (providers: anthropic)",
    ]


def test_the_limiter_survives_a_reload(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, KEYS, env=ENV)
    old = RuntimeConfig.from_config(cfg)
    new = RuntimeConfig.from_config(cfg, previous=old)
    assert new.limiter is old.limiter and new.limiter.active
    assert RuntimeConfig.from_config(cfg).limiter is not old.limiter
