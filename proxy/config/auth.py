"""Config of downstream API keys (``auth:``) and of limits per model and provider
(``rate_limits:``; the ``limits:`` section is the codecs' size and time bounds).

```yaml
auth:
  keys:
    - name: ci-bot
      key: ${CI_BOT_KEY}             # at least 16 characters; never printed
      models: [claude-sonnet-4-5, "mock,*"]   # optional allow-list; empty: every model
      limits: {requests_per_minute: 60, tokens_per_minute: 200000, concurrent: 4,
               spend_per_day_usd: 20, spend_per_month_usd: 300}
  required: true   # default: true when keys are listed
rate_limits:
  per_model: {claude-opus-4-8: {requests_per_minute: 100}}
  per_provider: {anthropic: {concurrent: 50}}
```

An allow-list entry is a model name or a ``provider,model`` pair; ``*`` matches any run of
characters (quote entries holding a comma or starting with ``*``: YAML splits flow lists on
commas and reads ``*`` as an alias). Same style as proxy/config/model.py: unknown keys fail,
sections are frozen, problems carry their key path. docs/limits.md has the whole story.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from proxy.config.problems import FieldProblems, Loc
from proxy.limits.api import LimitSettings, LimitSpec

MIN_KEY_CHARS: Final = 16
MAX_API_KEYS: Final = 1_000  # every request compares against all of them (constant time)
MAX_ALLOWED_MODELS: Final = 256  # allow-list entries per key
MAX_SCOPED_LIMITS: Final = 5_000  # entries in per_model, and in per_provider

_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")
_KEY_SAFE = re.compile(r"[\x21-\x7e]+")

PositiveInt = Annotated[int, Field(gt=0)]
Usd = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    # As proxy/config/model.py: a typo fails loudly, and pydantic never echoes a key.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ScopeLimitsConfig(_Section):
    """The limits of one key, model or provider; a limit left out is off."""

    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None  # input + output, as the provider reports
    concurrent: PositiveInt | None = None
    spend_per_day_usd: Usd | None = None  # calendar day, UTC
    spend_per_month_usd: Usd | None = None  # calendar month, UTC

    def spec(self) -> LimitSpec:
        return LimitSpec(
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            concurrent=self.concurrent,
            spend_per_day_usd=self.spend_per_day_usd,
            spend_per_month_usd=self.spend_per_month_usd,
        )


class ApiKeyConfig(_Section):
    name: str  # shown in the access log and in 429/403 messages; the key itself never is
    key: SecretStr
    models: tuple[str, ...] = Field(default=(), max_length=MAX_ALLOWED_MODELS)
    limits: ScopeLimitsConfig = Field(default_factory=ScopeLimitsConfig)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"must use only letters, digits, '_', '.', '@' and '-' (got {value!r})"
            )
        return value

    @field_validator("key", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        # A trailing newline from a secret file is not part of the key.
        return value.strip() if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        # Messages say what is wrong, never what the key is.
        secret = value.get_secret_value()
        if len(secret) < MIN_KEY_CHARS:
            raise ValueError(f"must be at least {MIN_KEY_CHARS} characters")
        if not _KEY_SAFE.fullmatch(secret):
            raise ValueError("must be printable ASCII without spaces or control characters")
        return value

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems: list[tuple[Loc, str]] = []
        for index, entry in enumerate(value):
            provider, comma, model = entry.partition(",")
            if not entry.strip():
                problems.append(((index,), "must not be empty"))
            elif comma and (not provider.strip() or not model.strip() or "," in model):
                problems.append(((index,), f"must be 'model' or 'provider,model' (got {entry!r})"))
        if problems:
            raise FieldProblems(problems)
        return tuple(entry.strip() for entry in value)


class AuthConfig(_Section):
    keys: tuple[ApiKeyConfig, ...] = Field(default=(), max_length=MAX_API_KEYS)
    # True: a request without a valid key gets 401. False: a request presenting no key or
    # an unknown one is anonymous (only rate_limits apply). Default: true when keys are listed.
    required: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_required(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("required") is None:
            data = {**data, "required": bool(data.get("keys"))}
        return data

    @model_validator(mode="after")
    def _check_keys(self) -> AuthConfig:
        problems: list[tuple[Loc, str]] = []
        names: dict[str, int] = {}
        secrets: dict[str, int] = {}
        for index, entry in enumerate(self.keys):
            if entry.name in names:
                problems.append(
                    (
                        ("keys", index, "name"),
                        f"duplicate key name {entry.name!r} (also keys[{names[entry.name]}])",
                    )
                )
            names.setdefault(entry.name, index)
            secret = entry.key.get_secret_value()
            if secret in secrets:
                problems.append(
                    (
                        ("keys", index, "key"),
                        f"the same key as keys[{secrets[secret]}]: each key must be unique",
                    )
                )
            secrets.setdefault(secret, index)
        if self.required and not self.keys:
            problems.append((("required",), "true needs at least one key in auth.keys"))
        if problems:
            raise FieldProblems(problems)
        return self


class RateLimitsConfig(_Section):
    """Limits shared by every client: per model (the model a request is sent as) and per
    provider (by its name in ``providers``)."""

    per_model: dict[str, ScopeLimitsConfig] = Field(default={}, max_length=MAX_SCOPED_LIMITS)
    per_provider: dict[str, ScopeLimitsConfig] = Field(default={}, max_length=MAX_SCOPED_LIMITS)

    def __hash__(self) -> int:
        # The generated frozen-model hash cannot take the mappings.
        return hash(
            (type(self), frozenset(self.per_model.items()), frozenset(self.per_provider.items()))
        )


def limit_settings(auth: AuthConfig, rate_limits: RateLimitsConfig) -> LimitSettings:
    """The limiter's view of both sections."""
    return LimitSettings(
        keys={entry.name: entry.limits.spec() for entry in auth.keys},
        models={name: limits.spec() for name, limits in rate_limits.per_model.items()},
        providers={name: limits.spec() for name, limits in rate_limits.per_provider.items()},
    )


def provider_problems(
    providers: Iterable[str], auth: AuthConfig, rate_limits: RateLimitsConfig
) -> list[tuple[Loc, str]]:
    """Provider names these sections use that no provider has, at their key paths (from
    the config's root). A typo there would silently limit nothing."""
    known = set(providers)
    shown = ", ".join(sorted(known))
    problems: list[tuple[Loc, str]] = []
    for name in rate_limits.per_provider:
        if name not in known:
            problems.append(
                (("rate_limits", "per_provider", name), f"unknown provider (providers: {shown})")
            )
    for index, entry in enumerate(auth.keys):
        for number, allowed in enumerate(entry.models):
            provider, comma, _ = allowed.partition(",")
            if comma and "*" not in provider and provider.strip() not in known:
                problems.append(
                    (
                        ("auth", "keys", index, "models", number),
                        f"unknown provider {provider.strip()!r} (providers: {shown})",
                    )
                )
    return problems
