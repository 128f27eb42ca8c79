"""docs/deploy.md names real files, and the README points to it."""

from __future__ import annotations

import re

from .support import REPO

DOC = REPO / "docs" / "deploy.md"
PATH = re.compile(r"`((?:deploy|helm|benchmarks|tests)/[A-Za-z0-9_./-]+)`")


def test_every_file_the_guide_names_exists() -> None:
    named = set(PATH.findall(DOC.read_text(encoding="utf-8")))
    assert len(named) > 10
    missing = sorted(p for p in named if not (REPO / p.rstrip("/")).exists())
    assert missing == []


def test_every_link_of_the_guide_resolves() -> None:
    text = DOC.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    assert [link for link in links if not (DOC.parent / link).exists()] == []


def test_readme_points_to_the_guide() -> None:
    assert "(docs/deploy.md)" in (REPO / "README.md").read_text(encoding="utf-8")
