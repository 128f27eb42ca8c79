"""Building transformer chains from config entries, and running them in order.

A config entry (`TransformerSpec`) is a name, ``"deepseek"``, or a name with options,
``["maxtoken", {"max_tokens": 8192}]``. A name is a built-in (see `BUILTIN`; not
case-sensitive) or the import path of a user class, ``"package.module:ClassName"`` or
``"package.module.ClassName"``. Either is instantiated once, when the config is loaded, as
``cls(**options)`` (no options: ``cls()``), so options are the constructor's keyword
arguments and a misspelt one is reported by name. User classes follow the `Transformer`
protocol (subclassing `BaseTransformer` is easiest); an instance serves every request.

Order rule: requests pass the transformers in configured order, responses (and each stream
object) in reverse order, so the transformer closest to the provider sees the raw response
first. For a provider, the chain is the provider's `transformers` followed by the entries of
`model_transformers` for the model being sent.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from proxy.dialects.transformers.api import JSONObject, TransformContext, Transformer
from proxy.dialects.transformers.params import (
    CleanCacheTransformer,
    CustomParamsTransformer,
    MaxCompletionTokensTransformer,
    MaxTokenTransformer,
    SamplingTransformer,
    StreamOptionsTransformer,
)
from proxy.dialects.transformers.providers import (
    DeepSeekTransformer,
    GroqTransformer,
    OpenRouterTransformer,
    ReasoningTransformer,
)
from proxy.dialects.transformers.schema import CleanSchemaTransformer
from proxy.dialects.transformers.structured import (
    AnthropicCompatTransformer,
    StructuredOutputTransformer,
)
from proxy.dialects.transformers.tools import EnhanceToolTransformer, ToolUseTransformer
from proxy.errors import ConfigError
from proxy.filters.api import Dialect

TransformerSpec = str | list[Any]

BUILTIN: Mapping[str, type[Any]] = MappingProxyType(
    {
        "anthropiccompat": AnthropicCompatTransformer,
        "cleancache": CleanCacheTransformer,
        "cleanschema": CleanSchemaTransformer,
        "customparams": CustomParamsTransformer,
        "deepseek": DeepSeekTransformer,
        "enhancetool": EnhanceToolTransformer,
        "groq": GroqTransformer,
        "maxcompletiontokens": MaxCompletionTokensTransformer,
        "maxtoken": MaxTokenTransformer,
        "openrouter": OpenRouterTransformer,
        "reasoning": ReasoningTransformer,
        "sampling": SamplingTransformer,
        "streamoptions": StreamOptionsTransformer,
        "structuredoutput": StructuredOutputTransformer,
        "tooluse": ToolUseTransformer,
    }
)
_HOOKS = ("transform_request", "transform_response", "transform_stream", "stream_end")


class TransformerConfigError(ConfigError):
    """Bad transformer entries. `problems` holds (entry index, message) pairs; the message
    has one ``where[index]: message`` line per problem."""

    def __init__(self, where: str, problems: Sequence[tuple[int, str]]) -> None:
        self.where = where
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{where}[{index}]: {msg}" for index, msg in self.problems))


def build_chain(specs: Sequence[object], *, where: str) -> tuple[Transformer, ...]:
    """One transformer per entry. Raises TransformerConfigError naming every bad entry."""
    if isinstance(specs, str | bytes) or not isinstance(specs, Sequence):
        raise ConfigError(f"{where}: must be a list of transformer entries")
    built: list[Transformer] = []
    problems: list[tuple[int, str]] = []
    for index, spec in enumerate(specs):
        try:
            built.append(build_transformer(spec))
        except ValueError as error:
            problems.append((index, str(error)))
    if problems:
        raise TransformerConfigError(where, problems)
    return tuple(built)


def build_transformer(spec: object) -> Transformer:
    """The transformer one entry describes. Raises ValueError saying what is wrong."""
    name, options = _parse_spec(spec)
    factory = BUILTIN.get(name.lower()) or _import(name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as error:
        raise ValueError(f"bad options for {name!r}: {error}") from None
    except ValueError:
        pass  # no signature to check (a builtin or C type): the call below will tell
    try:
        transformer = factory(**options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: {error}") from None
    missing = [hook for hook in _HOOKS if not callable(getattr(transformer, hook, None))]
    if missing:
        raise ValueError(
            f"{name!r} is not a transformer (no {', '.join(missing)}; subclass BaseTransformer)"
        )
    if not isinstance(getattr(transformer, "name", None), str):
        raise ValueError(f"{name!r} has no 'name' string attribute")
    result: Transformer = transformer
    return result


def supports(transformer: Transformer, dialect: Dialect) -> bool:
    """Whether `transformer` understands a provider of `dialect` (user classes without a
    ``dialects`` attribute are trusted with both)."""
    dialects = getattr(transformer, "dialects", None)
    return dialects is None or dialect in dialects


def _parse_spec(spec: object) -> tuple[str, dict[str, Any]]:
    options: Any
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, list | tuple) and len(spec) in (1, 2) and isinstance(spec[0], str):
        name = spec[0]
        options = spec[1] if len(spec) == 2 else {}
        if options is None:
            options = {}
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise ValueError(f"options for {name!r} must be a mapping of names to values")
        options = dict(options)
    else:
        raise ValueError("must be a transformer name or [name, {options}]")
    name = name.strip()
    if not name:
        raise ValueError("transformer name must not be empty")
    return name, options


def _import(name: str) -> Any:
    module_name, colon, attribute = name.partition(":")
    if not colon:
        module_name, dot, attribute = name.rpartition(".")
        if not dot:
            known = ", ".join(sorted(BUILTIN))
            raise ValueError(f"unknown transformer {name!r} (known: {known}; or module:Class)")
    if not module_name or not attribute:
        raise ValueError(f"bad import path {name!r} (expected package.module:ClassName)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {name!r} ({type(error).__name__}: {error})") from None
    except Exception as error:  # the user's module raised while importing
        raise ValueError(f"importing {name!r} failed ({type(error).__name__}: {error})") from None
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise ValueError(f"cannot import {name!r} (no class {attribute!r} in {module_name})")
    return factory


class TransformerChain:
    """Transformers applied in the order rule: requests first to last, responses last to
    first. Stream objects flow through each transformer in turn; whatever a transformer
    releases at the end of the stream still passes the ones after it."""

    __slots__ = ("_response_order", "transformers")

    def __init__(self, transformers: Sequence[Transformer]) -> None:
        self.transformers = tuple(transformers)
        self._response_order = self.transformers[::-1]

    def __bool__(self) -> bool:
        return bool(self.transformers)

    def __len__(self) -> int:
        return len(self.transformers)

    def request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        for transformer in self.transformers:
            body = transformer.transform_request(body, ctx)
        return body

    def response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        for transformer in self._response_order:
            body = transformer.transform_response(body, ctx)
        return body

    def stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        return self._pass(self._response_order, [obj], ctx)

    def end(self, ctx: TransformContext) -> list[JSONObject]:
        out: list[JSONObject] = []
        order = self._response_order
        for position, transformer in enumerate(order):
            released = transformer.stream_end(ctx)
            if released:
                out.extend(self._pass(order[position + 1 :], released, ctx))
        return out

    @staticmethod
    def _pass(
        transformers: Sequence[Transformer], objs: list[JSONObject], ctx: TransformContext
    ) -> list[JSONObject]:
        for transformer in transformers:
            if not objs:
                break
            if len(objs) == 1:
                objs = transformer.transform_stream(objs[0], ctx)
            else:
                objs = [out for obj in objs for out in transformer.transform_stream(obj, ctx)]
        return objs


EMPTY_CHAIN = TransformerChain(())


@dataclass(frozen=True, slots=True)
class ProviderTransformers:
    """A provider's chains, built once per loaded config: `chain(model)` is the provider
    chain plus that model's own entries."""

    base: TransformerChain
    by_model: Mapping[str, TransformerChain]

    def chain(self, model: str) -> TransformerChain:
        return self.by_model.get(model, self.base)


def provider_transformers(
    transformers: Sequence[object],
    model_transformers: Mapping[str, Sequence[object]],
    *,
    where: str,
) -> ProviderTransformers:
    """Build a provider's chains; `where` is the provider's config path (``providers[0]``)."""
    base = build_chain(transformers, where=f"{where}.transformers")
    by_model = {
        model: TransformerChain(
            base + build_chain(specs, where=f"{where}.model_transformers.{model}")
        )
        for model, specs in model_transformers.items()
    }
    return ProviderTransformers(TransformerChain(base) if base else EMPTY_CHAIN, by_model)
