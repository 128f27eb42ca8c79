from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from proxy.config import load_config, mask_secret, render_config
from tests.unit.config.helpers import MINIMAL, SECRET, load_text, write


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (None, None),
        ("", "****"),
        ("short", "****"),
        ("exactly12chr", "****"),  # 12 characters: too short to show any of it
        ("thirteen-char", "****char"),
        (SECRET, "****cdef"),
    ],
)
def test_mask_secret(secret: str | None, shown: str | None) -> None:
    assert mask_secret(None if secret is None else SecretStr(secret)) == shown


def test_render_masks_keys_and_round_trips(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL + "listen: {port: 4000}\n")
    text = render_config(cfg)
    assert SECRET not in text
    data = yaml.safe_load(text)
    assert data["providers"][0]["api_key"] == "****cdef"
    assert data["listen"] == {"host": "127.0.0.1", "port": 4000, "tls": None}
    # Every router key is shown with its default; a route keeps the form it was written in.
    assert data["router"] == {
        "default": "anthropic,claude-sonnet-4-5",
        "background": None,
        "think": None,
        "long_context": None,
        "web_search": None,
        "image": None,
        "title": None,
        "compact": None,
        "subagent": None,
        "subagent_readonly": None,
        "claude_code": {"title": True, "compact": True, "subagent": True, "haiku_tier": True},
        "long_context_threshold": 60000,
        "background_pattern": None,
        "subagent_tag": True,
        "aliases": {},
        "custom": None,
        "custom_budget_ms": 5.0,
    }
    assert list(data) == [
        "listen",
        "admin",
        "server",
        "limits",
        "upstream",
        "providers",
        "router",
        "filters",
        "log",
        "auth",
        "rate_limits",
        "resilience",
        "redis",
        "cache",
        "metrics",
        "tracing",
    ]
    # With the mask replaced by the real key, the rendering loads back to the same config.
    data["providers"][0]["api_key"] = SECRET
    again = load_config(write(tmp_path, yaml.safe_dump(data), "again.yaml"), env={})
    assert again == cfg


def test_render_short_key_shows_nothing_of_it(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL, env={"ANTHROPIC_API_KEY": "sk-12345678"})
    text = render_config(cfg)
    assert "'****'" in text
    assert "5678" not in text
