from __future__ import annotations

import pytest

from proxy.config.expand import expand_tree


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${A}", "a"),
        ("x-${A}-${B}-y", "x-a-b-y"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${A:-fallback}", "a"),
        ("${UNSET:-}", ""),
        ("${UNSET:-a:b}c", "a:bc"),
        ("$${A}", "${A}"),
        ("$$${A}", "$${A}"),  # "$" then the escape: escapes are not references
        ("$A and $", "$A and $"),  # only the braced form is a reference
        ("${EMPTY}", ""),  # set but empty is still set
    ],
)
def test_expand_string(text: str, expected: str) -> None:
    out, problems = expand_tree({"k": text}, {"A": "a", "B": "b", "EMPTY": ""})
    assert problems == []
    assert out == {"k": expected}


def test_walks_lists_and_maps_and_leaves_other_values_alone() -> None:
    inner = {"b": "${X}"}
    data = {"a": [inner, 3, None, True], "c": {"d": 1.5}, "${X}": "keys stay"}
    out, problems = expand_tree(data, {"X": "x"})
    assert problems == []
    assert out == {"a": [{"b": "x"}, 3, None, True], "c": {"d": 1.5}, "${X}": "keys stay"}
    assert inner == {"b": "${X}"}  # the input is not modified


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${MISSING}", "environment variable MISSING is not set"),
        ("${1BAD}", "bad reference '${1BAD}' (expected ${NAME} or ${NAME:-default})"),
        ("${}", "bad reference '${}'"),
        ("${A-x}", "bad reference '${A-x}'"),
        ("abc ${OPEN", "unterminated '${' (write '$${' for a literal)"),
    ],
)
def test_problems_name_the_key_path(text: str, message: str) -> None:
    _, problems = expand_tree({"providers": [{"x": 1}, {"api_key": text}]}, {"A": "a"})
    assert len(problems) == 1
    path, got = problems[0]
    assert path == "providers[1].api_key"
    assert got.startswith(message)
