"""``cleanschema``: strip JSON Schema keywords that strict providers reject from tool schemas.

Claude Code's tool schemas (draft 2020-12) use ``$schema``, ``additionalProperties``,
``default``, ``format``, ``propertyNames``, ``exclusiveMinimum``, ``anyOf``, ``const`` and
``enum`` (protocol.md §1.1, §6.2 item 8). Gemini's OpenAI-compatible endpoint, Groq and some
local servers answer 400 to several of these. By default this removes, recursively through
every subschema (``properties``, ``items``, ``anyOf``/``oneOf``/``allOf``, ``$defs``, ...):

* ``$schema``, ``additionalProperties``, ``default``, ``propertyNames``;
* ``format``, unless its value is ``enum`` or ``date-time`` (the formats Gemini accepts);
* ``exclusiveMinimum``/``exclusiveMaximum``: a boolean one (draft-4 style) is dropped; a
  numeric one becomes ``minimum``/``maximum`` when that is absent (the bound moved by one for
  integer schemas, kept as is otherwise, so exclusivity is lost only for non-integers).

``anyOf``, ``const``, ``enum``, ``required`` and descriptions stay. Options: ``remove`` (a list
that replaces the default keyword list) and ``keep_formats``. Keywords are removed only where
they are keywords: a property *named* ``format`` in ``properties`` stays.

Schemas live at ``tools[].function.parameters`` (OpenAI) and ``tools[].input_schema``
(Anthropic).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxy.dialects.transformers.api import BaseTransformer, JSONObject, TransformContext
from proxy.dialects.transformers.common import BOTH_DIALECTS, is_number, map_list
from proxy.filters.api import Dialect

DEFAULT_REMOVED = (
    "$schema",
    "additionalProperties",
    "default",
    "propertyNames",
    "format",
    "exclusiveMinimum",
    "exclusiveMaximum",
)
DEFAULT_KEPT_FORMATS = ("enum", "date-time")

# Keywords whose value is a mapping of name -> subschema, a subschema, or a list of them.
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_ONE = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "contains",
        "if",
        "then",
        "else",
        "not",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems", "items"})
_BOUNDS = {"exclusiveMinimum": ("minimum", 1), "exclusiveMaximum": ("maximum", -1)}


class CleanSchemaTransformer(BaseTransformer):
    name = "cleanschema"
    dialects = BOTH_DIALECTS

    def __init__(
        self,
        *,
        remove: Sequence[str] = DEFAULT_REMOVED,
        keep_formats: Sequence[str] = DEFAULT_KEPT_FORMATS,
    ) -> None:
        for option, value in (("remove", remove), ("keep_formats", keep_formats)):
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"option {option!r} must be a list of strings")
        self.remove = frozenset(remove)
        self.keep_formats = frozenset(keep_formats)

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        if ctx.dialect is Dialect.OPENAI:
            return map_list(body, "tools", self._openai_tool)
        return map_list(body, "tools", self._anthropic_tool)

    def clean(self, schema: Any) -> Any:
        """`schema` without the removed keywords; the same object when nothing changed."""
        if not isinstance(schema, dict):
            return schema
        out: dict[str, Any] = {}
        changed = False
        for key, value in schema.items():
            if key in self.remove and not (
                key == "format" and isinstance(value, str) and value in self.keep_formats
            ):
                changed = True
                bound = _BOUNDS.get(key)
                if bound and is_number(value) and bound[0] not in schema:
                    integer = schema.get("type") == "integer" and isinstance(value, int)
                    out[bound[0]] = value + bound[1] if integer else value
                continue
            new = self._clean_child(key, value)
            changed = changed or new is not value
            out[key] = new
        return out if changed else schema

    def _clean_child(self, key: str, value: Any) -> Any:
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            items = {name: self.clean(sub) for name, sub in value.items()}
            unchanged = all(items[name] is sub for name, sub in value.items())
            return value if unchanged else items
        if key in _SCHEMA_LISTS and isinstance(value, list):
            listed = [self.clean(sub) for sub in value]
            unchanged = all(a is b for a, b in zip(listed, value, strict=True))
            return value if unchanged else listed
        if key in _SCHEMA_ONE and isinstance(value, dict):
            return self.clean(value)
        return value

    def _openai_tool(self, tool: Any) -> Any:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or "parameters" not in function:
            return tool
        cleaned = self.clean(function["parameters"])
        if cleaned is function["parameters"]:
            return tool
        return {**tool, "function": {**function, "parameters": cleaned}}

    def _anthropic_tool(self, tool: Any) -> Any:
        if not isinstance(tool, dict) or "input_schema" not in tool:
            return tool
        cleaned = self.clean(tool["input_schema"])
        return tool if cleaned is tool["input_schema"] else {**tool, "input_schema": cleaned}
