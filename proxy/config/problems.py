"""Turn validation failures into one plain line per problem: ``path.to[2].key: message``.

Pydantic's own rendering is a multi-line dump with URLs; operators need the key path and what
is wrong with it. Validators that see several problems at once (duplicate provider names,
cross-field router checks) raise `FieldProblems`, which carries paths relative to the model
that raised it, so the formatter can place each problem at its real key.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

Loc = tuple[int | str, ...]

_MAX_SHOWN_INPUT = 60
# The value of a key with one of these words in its name is never echoed back in a message.
_SECRET_WORDS = ("key", "secret", "token", "password")


class FieldProblems(ValueError):
    """Raised from validators: several problems, each at a path relative to the validated
    object."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in self.problems))


def format_loc(loc: Iterable[int | str]) -> str:
    """('providers', 0, 'api_key') -> 'providers[0].api_key'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "config"


def validation_problems(error: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """(key path, message) per problem, in pydantic's order, duplicates removed."""
    lines: list[tuple[str, str]] = []
    for err in error.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        nested = ctx.get("error")
        if isinstance(nested, FieldProblems):
            lines.extend((format_loc(loc + sub), msg) for sub, msg in nested.problems)
            continue
        lines.append((format_loc(loc), _describe(err, loc, root)))
    return list(dict.fromkeys(lines))


def _describe(err: Any, loc: Loc, root: type[BaseModel]) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    got = _got(err.get("input"), loc)
    if kind == "extra_forbidden":
        return "unknown key" + _suggestion(loc, root)
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(choices)}{got}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        word = {
            "greater_than": ("greater than", "gt"),
            "greater_than_equal": ("at least", "ge"),
            "less_than": ("less than", "lt"),
            "less_than_equal": ("at most", "le"),
        }[kind]
        bound = ctx.get(word[1])
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "greater than 0", not "greater than 0.0"
        return f"must be {word[0]} {bound}{got}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be an integer{got}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number{got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false{got}"
    if kind == "string_type":
        return f"must be a string{got}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping{got}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list{got}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _got(value: Any, loc: Loc) -> str:
    last = loc[-1] if loc else ""
    if isinstance(last, str) and any(word in last.lower() for word in _SECRET_WORDS):
        return ""
    if isinstance(value, dict | list | tuple):
        return f" (got a {'mapping' if isinstance(value, dict) else 'list'})"
    shown = repr(value)
    if len(shown) > _MAX_SHOWN_INPUT:
        shown = shown[: _MAX_SHOWN_INPUT - 3] + "..."
    return f" (got {shown})"


def _suggestion(loc: Loc, root: type[BaseModel]) -> str:
    """' (did you mean 'port'?)' when the unknown key is a near miss of a real one."""
    model = _model_at(root, loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] = root
    for part in loc:
        if isinstance(part, int):
            continue  # list index: the element model is found from the field's annotation
        field = model.model_fields.get(part)
        if field is None:
            return None
        found = _model_in(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return None
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
