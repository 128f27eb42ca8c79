from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cache.store import configured_cache, fingerprint_of
from proxy.errors import ConfigError
from tests.unit.config.helpers import MINIMAL, load_text


def test_cache_section_loads_and_unknown_routes_fail(tmp_path: Path) -> None:
    assert load_text(tmp_path, MINIMAL).cache is None
    cfg = load_text(tmp_path, MINIMAL + "cache: {policy: all, routes: {default: {ttl_s: 9}}}\n")
    assert cfg.cache is not None and cfg.cache.policy == "all"
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, MINIMAL + "cache: {routes: {nope: {policy: all}}}\n")
    assert "cache.routes.nope" in str(info.value) and "no such route" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, MINIMAL + "cache: {min_ttl_s: 10, max_ttl_s: 5}\n")
    assert "min_ttl_s must not exceed max_ttl_s" in str(info.value)
    with pytest.raises(ConfigError):
        load_text(tmp_path, MINIMAL + "cache: {polcy: all}\n")


def test_fingerprint_follows_routing_not_secrets(tmp_path: Path) -> None:
    base = load_text(tmp_path, MINIMAL + "cache: {}\n")
    other_key = load_text(
        tmp_path, MINIMAL + "cache: {}\n", env={"ANTHROPIC_API_KEY": "sk-other-1234"}
    )
    moved = load_text(
        tmp_path,
        MINIMAL.replace(
            "default: anthropic,claude-sonnet-4-5", "default: anthropic,claude-haiku-4-5"
        )
        + "cache: {}\n",
    )
    assert fingerprint_of(base) == fingerprint_of(other_key)
    assert fingerprint_of(base) != fingerprint_of(moved)


def test_a_reload_keeps_l1_and_stats(tmp_path: Path) -> None:
    first = configured_cache(load_text(tmp_path, MINIMAL + "cache: {max_entries: 5}\n"), None)
    assert first is not None
    again = configured_cache(load_text(tmp_path, MINIMAL + "cache: {max_entries: 3}\n"), first)
    assert again is first and first.l1.max_entries == 3
    assert configured_cache(load_text(tmp_path, MINIMAL), first) is None
