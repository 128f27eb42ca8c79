"""Helpers the built-in transformers share.

Request hooks never change the body they are given: with fallbacks, one client body is sent
to several providers, each with its own chain. They copy what they change instead, and the
helpers here copy only along the path of a change (an untouched subtree is shared). Response
and stream objects are fresh from the provider's bytes, so hooks may edit those in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeGuard, TypeVar

from proxy.dialects.transformers.api import JSONObject, TransformContext
from proxy.filters.api import Dialect

T = TypeVar("T")

OPENAI_ONLY = frozenset({Dialect.OPENAI})
BOTH_DIALECTS = frozenset(Dialect)

# The envelope fields a synthesized OpenAI chunk copies from the chunk it is emitted beside.
_CHUNK_ENVELOPE = ("id", "object", "created", "model", "system_fingerprint")


def without_key(value: Any, key: str, *, skip: frozenset[str] = frozenset()) -> Any:
    """`value` with every mapping entry named `key` removed at any depth. Entries named in
    `skip` are left as they are (e.g. tool schemas, where `key` could be a property name).
    Returns `value` itself when nothing was removed."""
    if isinstance(value, dict):
        changed = key in value
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name == key:
                continue
            new = item if name in skip else without_key(item, key, skip=skip)
            changed = changed or new is not item
            out[name] = new
        return out if changed else value
    if isinstance(value, list):
        items = [without_key(item, key, skip=skip) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return items
        return value
    return value


def drop_keys(body: JSONObject, keys: Iterable[str]) -> JSONObject:
    """A shallow copy of `body` without `keys`; `body` itself when it has none of them."""
    present = [key for key in keys if key in body]
    if not present:
        return body
    return {name: item for name, item in body.items() if name not in present}


def map_list(body: JSONObject, name: str, change: Callable[[Any], Any]) -> JSONObject:
    """`body` with `change` applied to each item of the list `body[name]`, copied only when
    some item changed (`change` returns the item itself when it leaves it alone)."""
    items = body.get(name)
    if not isinstance(items, list):
        return body
    new = [change(item) for item in items]
    if all(a is b for a, b in zip(new, items, strict=True)):
        return body
    return {**body, name: new}


def per_request(ctx: TransformContext, owner: object, factory: Callable[[], T]) -> T:
    """The per-request state of `owner` (one transformer instance serves every request).
    Keyed by name and identity, so the same transformer twice in a chain keeps two states."""
    key = f"{getattr(owner, 'name', 'transformer')}@{id(owner):x}"
    state = ctx.state.get(key)
    if state is None:
        state = ctx.state[key] = factory()
    return state


def choices(obj: JSONObject) -> Iterator[JSONObject]:
    """The choice objects of an OpenAI completion or chunk, skipping malformed entries."""
    items = obj.get("choices")
    if isinstance(items, list):
        for choice in items:
            if isinstance(choice, dict):
                yield choice


def chunk_like(template: JSONObject, choice: JSONObject) -> JSONObject:
    """A new OpenAI chunk with `template`'s envelope and one choice."""
    chunk = {name: template[name] for name in _CHUNK_ENVELOPE if name in template}
    chunk["choices"] = [choice]
    if "usage" in template:
        chunk["usage"] = None  # with include_usage every chunk but the last carries null
    return chunk


def choice_index(choice: JSONObject) -> int:
    index = choice.get("index", 0)
    return index if isinstance(index, int) else 0


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"option {option!r} must be a positive integer (got {value!r})")
    return value


def is_empty_chunk(chunk: JSONObject) -> bool:
    """True when an OpenAI chunk says nothing: no delta content, no finish, no usage."""
    if chunk.get("usage") is not None or "error" in chunk:
        return False
    for choice in choices(chunk):
        if choice.get("delta") or choice.get("finish_reason") is not None:
            return False
    return True


def split_finish(chunk: JSONObject, indexes: set[int]) -> tuple[JSONObject | None, JSONObject]:
    """Split an OpenAI chunk in which the choices `indexes` finish into what it carries
    before the finish (None when nothing) and a chunk with only those finishes (and the
    usage, if any), so a transformer can emit something in between."""
    finishes: list[JSONObject] = []
    for choice in choices(chunk):
        index = choice_index(choice)
        if index in indexes:
            finishes.append({"index": index, "delta": {}, "finish_reason": choice["finish_reason"]})
            choice["finish_reason"] = None
    finish = chunk_like(chunk, finishes[0] if finishes else {})
    finish["choices"] = finishes
    if chunk.get("usage") is not None:
        finish["usage"] = chunk["usage"]
        chunk["usage"] = None
    return (None if is_empty_chunk(chunk) else chunk), finish
