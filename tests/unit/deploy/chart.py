"""The chart's values as Helm combines them: values.yaml, then each -f file over it (maps
merge key by key, anything else is replaced; a null removes the key)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .support import CHART, load_yaml

SIDECAR_VALUES = CHART / "examples" / "sidecar-values.yaml"


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def chart_values(*files: Path) -> dict[str, Any]:
    values = load_yaml(CHART / "values.yaml")
    for path in files:
        values = merge_values(values, load_yaml(path))
    assert isinstance(values, dict)
    return values
