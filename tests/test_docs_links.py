"""The README and docs/ hold together.

Every relative link (and its #anchor) points at something that exists, the README stays short with
short table cells, and it states the command CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
GENERATED = {REPO / "docs" / "config.md"}  # `qmu config reference`: its cells are the config's descriptions
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in _prose(page):
        if m := re.match(r"#+\s+(.*)", line):
            found.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for line in _prose(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https://, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", [p for p in PAGES if p not in GENERATED], ids=lambda p: str(p.relative_to(REPO)))
def test_table_cells_stay_short(page: Path) -> None:
    long = [
        cell.strip()[:60]
        for line in _prose(page)
        if line.startswith("|")
        for cell in line.strip().strip("|").split(" | ")
        if len(cell.strip()) > 200
    ]
    assert not long, f"{page.name}: table cells over 200 characters: {long}"


def test_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_readme_states_the_command_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run no longer runs `make test`"
    assert "make test " in README.read_text(encoding="utf-8")
