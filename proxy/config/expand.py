"""`${VAR}` references in config strings, resolved against an injected environment mapping.

Rules: `${NAME}` is the variable's value (an error naming the key path when it is not set),
`${NAME:-default}` falls back to `default` when the variable is unset or empty (as in the
shell), and `$${` stands for a literal `${`. Only string values are expanded, never keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from proxy.config.problems import Loc, format_loc

# Alternatives in priority order: the escape, a complete reference, an unterminated one.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


Problem = tuple[str, str]  # (key path, message)


def expand_tree(data: Any, env: Mapping[str, str]) -> tuple[Any, list[Problem]]:
    """A copy of `data` with every string expanded, and one problem per failed reference (a
    failed reference is left as written)."""
    problems: list[Problem] = []
    return _walk(data, env, (), problems), problems


def _walk(node: Any, env: Mapping[str, str], loc: Loc, problems: list[Problem]) -> Any:
    if isinstance(node, str):
        return expand_string(node, env, loc, problems)
    if isinstance(node, dict):
        return {key: _walk(value, env, (*loc, key), problems) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, env, (*loc, i), problems) for i, value in enumerate(node)]
    return node


def expand_string(text: str, env: Mapping[str, str], loc: Loc, problems: list[Problem]) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        inner = match.group(1)
        if inner is None:
            problems.append((format_loc(loc), "unterminated '${' (write '$${' for a literal)"))
            return token
        ref = _REFERENCE.fullmatch(inner)
        if ref is None:
            problems.append(
                (
                    format_loc(loc),
                    f"bad reference {token!r} (expected ${{NAME}} or ${{NAME:-default}})",
                )
            )
            return token
        name, default = ref.group(1), ref.group(2)
        value = env.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            problems.append((format_loc(loc), f"environment variable {name} is not set"))
            return token
        return value

    return _TOKEN.sub(replace, text)
