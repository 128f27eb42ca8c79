"""Config of the Redis store that shares rate, concurrency and spend limits (``redis:``).

```yaml
redis:
  url: redis://:${REDIS_PASSWORD}@10.0.0.5:6379/0   # or rediss://..., unix:///run/redis.sock
  timeout_ms: 50          # the longest any request waits on Redis
  fail_closed: false      # true: 503 while Redis is down, instead of local limits
  key_prefix: "junction:"
  lease_ttl_s: 30         # a crashed worker's concurrency slots come back after this long
  breaker: {consecutive_failures: 3, open_s: 5}
```

Without the section limits are per worker process (proxy/limits/local.py). The URL may hold a
password; it is masked wherever the URL is shown (check-config, logs, /stats). Same style as
proxy/config/model.py: unknown keys fail, sections are frozen, problems carry their key path.
docs/limits.md, "Shared limits with Redis", has the whole story.
"""

from __future__ import annotations

import re
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from proxy.limits.redis_store import RedisSettings

MAX_KEY_PREFIX_CHARS: Final = 64
_SCHEMES: Final = ("redis", "rediss", "unix")
_KEY_PREFIX = re.compile(r"^[\x21-\x7e]*$")


class _Section(BaseModel):
    # As proxy/config/model.py: a typo fails loudly, and pydantic never echoes a value.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class RedisBreakerConfig(_Section):
    """After this many failures (errors or timeouts) in a row, Redis is left alone for
    ``open_s``; then one request probes it."""

    consecutive_failures: Annotated[int, Field(ge=1, le=1000)] = 3
    open_s: Annotated[float, Field(gt=0, le=3600)] = 5.0


class RedisConfig(_Section):
    url: str
    timeout_ms: Annotated[float, Field(gt=0, le=10_000)] = 50.0
    fail_closed: bool = False
    key_prefix: str = "junction:"
    lease_ttl_s: Annotated[float, Field(ge=1, le=86_400)] = 30.0
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = 32  # per worker
    breaker: RedisBreakerConfig = Field(default_factory=RedisBreakerConfig)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # Messages never show the URL: it may hold a password.
        value = value.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("not a valid URL") from None
        if parts.scheme not in _SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError("a unix:// URL must name the socket's path")
        elif not parts.hostname:
            raise ValueError("must name a host (redis://host:6379/0)")
        elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise ValueError("the path must be a database number (redis://host:6379/0)")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if len(value) > MAX_KEY_PREFIX_CHARS or not _KEY_PREFIX.match(value):
            raise ValueError(
                f"must be at most {MAX_KEY_PREFIX_CHARS} printable characters without spaces"
            )
        return value

    @field_serializer("url")
    def _masked(self, value: str) -> str:
        return masked_url(value)

    def settings(self) -> RedisSettings:
        return RedisSettings(
            url=self.url,
            shown_url=masked_url(self.url),
            timeout_s=self.timeout_ms / 1000,
            fail_closed=self.fail_closed,
            key_prefix=self.key_prefix,
            breaker_failures=self.breaker.consecutive_failures,
            breaker_open_s=self.breaker.open_s,
            lease_ttl_s=self.lease_ttl_s,
            max_connections=self.max_connections,
        )


def masked_url(url: str) -> str:
    """``url`` with its password (and a ``password=`` query value) replaced by ``****``."""
    shown = url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL at all: show nothing of it
        return "****"
    if password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        shown = shown.replace(parts.netloc, f"{userinfo.partition(':')[0]}:****@{host}", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1****", shown)
