"""The resilience: config section: defaults, validation, and its place in the whole config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from proxy.config import load_config
from proxy.config.resilience import BreakerConfig, OutlierConfig, ResilienceConfig
from proxy.errors import ConfigError

MINIMAL = """\
providers:
  - name: p
    dialect: openai
    base_url: https://p.test
    models: [m]
router:
  default: p,m
"""


def test_defaults() -> None:
    assert ResilienceConfig().model_dump() == {
        "breaker": {
            "enabled": True,
            "consecutive_failures": 5,
            "failure_rate": 0.5,
            "adaptive": 0.5,
            "window_calls": 20,
            "window_s": 30.0,
            "min_calls": 10,
            "slow_call_s": 30.0,
            "slow_call_rate": 0.8,
            "open_s": 5.0,
            "max_open_s": 120.0,
            "open_backoff_reset_s": 300.0,
            "half_open_probes": 1,
            "close_after": 2,
        },
        "outlier": {
            "enabled": True,
            "consecutive_5xx": 5,
            "consecutive_local_failures": 5,
            "base_ejection_s": 30.0,
            "max_ejection_s": 300.0,
            "max_ejection_percent": 50.0,
        },
        "retry": {
            "max_attempts": 4,
            "max_retries": 1,
            "base_backoff_s": 0.25,
            "max_backoff_s": 5.0,
            "budget_ratio": 0.2,
            "budget_min_concurrent": 3,
            "cooldown_max_s": 60.0,
            "cooldown_default_s": 1.0,
        },
    }


@pytest.mark.parametrize(
    ("section", "values", "fragment"),
    [
        (BreakerConfig, {"min_calls": 30}, "must not exceed window_calls"),
        (BreakerConfig, {"open_s": 10, "max_open_s": 5}, "below open_s"),
        (BreakerConfig, {"failure_rate": 0}, "greater than 0"),
        (BreakerConfig, {"failure_rate": 1.5}, "less than or equal to 1"),
        (BreakerConfig, {"adaptive": -0.1}, "greater than or equal to 0"),
        (BreakerConfig, {"half_open_probes": 0}, "greater than 0"),
        (BreakerConfig, {"windw_calls": 3}, "Extra inputs are not permitted"),
        (OutlierConfig, {"base_ejection_s": 60, "max_ejection_s": 30}, "below base_ejection_s"),
        (OutlierConfig, {"max_ejection_percent": 101}, "less than or equal to 100"),
        (OutlierConfig, {"consecutive_5xx": 0}, "greater than 0"),
    ],
)
def test_rejects(
    section: type[BreakerConfig | OutlierConfig], values: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        section(**values)


def test_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text(
        MINIMAL
        + "resilience:\n  breaker: {consecutive_failures: 3, half_open_probes: 2}\n"
        + "  outlier: {enabled: false}\n"
    )
    cfg = load_config(path, env={})
    assert cfg.resilience.breaker.consecutive_failures == 3
    assert cfg.resilience.breaker.half_open_probes == 2
    assert cfg.resilience.breaker.open_s == 5.0  # the rest keep their defaults
    assert cfg.resilience.outlier.enabled is False
    path.write_text(MINIMAL)
    assert load_config(path, env={}).resilience == ResilienceConfig()


def test_bad_key_in_the_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text(MINIMAL + "resilience:\n  breaker: {min_calls: 50}\n")
    with pytest.raises(ConfigError, match=r"resilience\.breaker"):
        load_config(path, env={})
