"""Shared config snippets for the config tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from proxy.config import JunctionConfig, load_config
from proxy.errors import ConfigError

MINIMAL = """\
providers:
  - name: anthropic
    dialect: anthropic
    base_url: https://api.anthropic.com
    api_key: ${ANTHROPIC_API_KEY}
    models: [claude-sonnet-4-5, claude-haiku-4-5]
router:
  default: anthropic,claude-sonnet-4-5
"""

SECRET = "sk-ant-test-0123456789abcdef"
ENV = {"ANTHROPIC_API_KEY": SECRET}


def write(tmp_path: Path, text: str, name: str = "junction.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(
    tmp_path: Path,
    text: str,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> JunctionConfig:
    return load_config(write(tmp_path, text), env=ENV if env is None else env, overrides=overrides)


def problems_of(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The ConfigError's lines, one per problem."""
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    return info.value.message.splitlines()
