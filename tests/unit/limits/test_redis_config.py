"""The redis: section and the limiter it selects: defaults, problems at their key paths, the
password masked wherever the URL is shown, reloads that keep or replace the Redis limiter."""

from __future__ import annotations

from pathlib import Path

from proxy.config import render_config
from proxy.config.redis import masked_url
from proxy.limits.local import LocalLimiter
from proxy.limits.redis import RedisLimiter, RedisSettings, limiter_for
from proxy.routing.runtime import RuntimeConfig
from tests.unit.config.helpers import ENV, MINIMAL, load_text, problems_of

PASSWORD = "s3cr3t-redis-pass"
REDIS = MINIMAL + "redis:\n  url: redis://:${REDIS_PASSWORD}@10.0.0.5:6380/2\n"


def test_defaults_and_the_settings_they_give(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, REDIS, env={**ENV, "REDIS_PASSWORD": PASSWORD})
    assert cfg.redis is not None
    assert cfg.redis.settings() == RedisSettings(
        url=f"redis://:{PASSWORD}@10.0.0.5:6380/2",
        shown_url="redis://:****@10.0.0.5:6380/2",
        timeout_s=0.05,
        fail_closed=False,
        key_prefix="junction:",
        breaker_failures=3,
        breaker_open_s=5.0,
        lease_ttl_s=30.0,
        max_connections=32,
    )
    assert load_text(tmp_path, MINIMAL).redis is None


def test_the_password_never_shows(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, REDIS, env={**ENV, "REDIS_PASSWORD": PASSWORD})
    shown = render_config(cfg)
    assert PASSWORD not in shown and "redis://:****@10.0.0.5:6380/2" in shown
    assert masked_url("redis://app:pw@h:1/0") == "redis://app:****@h:1/0"
    assert masked_url("unix:///run/redis.sock?db=1&password=pw") == (
        "unix:///run/redis.sock?db=1&password=****"
    )
    assert masked_url("rediss://h:6380") == "rediss://h:6380"
    bad = REDIS.replace("10.0.0.5:6380/2", "10.0.0.5:99999/2")
    lines = problems_of(tmp_path, bad, env={**ENV, "REDIS_PASSWORD": PASSWORD})
    assert lines == ["redis.url: not a valid URL"]
    assert all(PASSWORD not in line for line in lines)


def test_problems_name_their_key(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "redis:\n  url: http://h:6379\n  timeout_ms: 0\n  key_prefix: 'a b'\n"
        + "  breaker: {consecutive_failures: 0, open_seconds: 1}\n"
    )
    lines = problems_of(tmp_path, text)
    assert any(x.startswith("redis.url: ") and "redis://" in x for x in lines), lines
    assert any(x.startswith("redis.timeout_ms: ") for x in lines), lines
    assert any(x.startswith("redis.key_prefix: ") for x in lines), lines
    assert any(x.startswith("redis.breaker.consecutive_failures: ") for x in lines), lines
    assert any(x.startswith("redis.breaker.open_seconds: ") for x in lines), lines
    assert problems_of(tmp_path, MINIMAL + "redis:\n  url: redis:///0\n") == [
        "redis.url: must name a host (redis://host:6379/0)"
    ]
    assert problems_of(tmp_path, MINIMAL + "redis:\n  url: redis://h/x\n") == [
        "redis.url: the path must be a database number (redis://host:6379/0)"
    ]
    assert load_text(tmp_path, MINIMAL + "redis:\n  url: unix:///run/redis.sock\n").redis


def test_the_runtime_wraps_the_local_limiter_and_reloads_keep_what_they_can(
    tmp_path: Path,
) -> None:
    env = {**ENV, "REDIS_PASSWORD": PASSWORD}
    limited = "rate_limits:\n  per_model: {claude-sonnet-4-5: {requests_per_minute: 5}}\n"
    local_rt = RuntimeConfig.from_config(load_text(tmp_path, MINIMAL + limited))
    local = local_rt.limiter
    assert isinstance(local, LocalLimiter)
    shared_rt = RuntimeConfig.from_config(
        load_text(tmp_path, REDIS + limited, env=env), previous=local_rt
    )
    shared = shared_rt.limiter
    assert isinstance(shared, RedisLimiter) and shared.fallback is local and shared.active
    again = RuntimeConfig.from_config(
        load_text(tmp_path, REDIS + limited, env=env), previous=shared_rt
    )
    assert again.limiter is shared  # same Redis settings: the same limiter
    other = REDIS.replace("/2", "/3") + limited
    moved = RuntimeConfig.from_config(load_text(tmp_path, other, env=env), previous=again).limiter
    assert isinstance(moved, RedisLimiter) and moved is not shared and moved.fallback is local
    back = RuntimeConfig.from_config(load_text(tmp_path, MINIMAL + limited), previous=again).limiter
    assert back is local
    assert isinstance(limiter_for(None, None), LocalLimiter)
