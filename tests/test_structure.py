"""Structure facts of the code base that lint cannot state: module size, and where a variant is decided.

Import layering and circles are `lint-imports`' job (`make lint`, contracts in pyproject.toml).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qmu_core.config import SAMPLERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qmu_core", "tasks", "flows", "qmu_prefect", "qmu_cli")
MAX_LINES = 500

# Modules allowed past MAX_LINES, each with the reason it is one module.
LARGE: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_modules_stay_small() -> None:
    """No module over MAX_LINES lines unless `LARGE` says why."""
    big = {_rel(p): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    unexplained = {path: n for path, n in big.items() if path not in LARGE}
    assert not unexplained, f"modules over {MAX_LINES} lines with no reason in LARGE: {unexplained}"
    stale = set(LARGE) - set(big)
    assert not stale, f"LARGE lists modules that are no longer large: {stale} (remove them)"


SAMPLER_CLASSES = {variant.config.__name__ for variant in SAMPLERS.values() if variant.config is not None}


def _kind_decisions(tree: ast.AST) -> list[int]:
    """Lines that branch on a sampler kind.

    isinstance on a sampler class, a class pattern of one, or ``<x>.kind == "<a sampler kind>"``.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} if len(node.args) > 1 else set()
            if names & SAMPLER_CLASSES:
                found.append(node.lineno)
        elif isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Name) and node.cls.id in SAMPLER_CLASSES:
            found.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            on_kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
            names = any(isinstance(s, ast.Constant) and s.value in SAMPLERS for s in sides)
            if on_kind and names:
                found.append(node.lineno)
    return found


def test_sampler_kind_is_decided_only_by_the_catalogue() -> None:
    """`qmu_core.hardware.samplers.resolve` looks the kind up in `SAMPLERS`; nothing branches on it."""
    decisions = {f"{_rel(p)}:{line}" for p in _modules() for line in _kind_decisions(ast.parse(p.read_text(), str(p)))}
    assert not decisions, f"code that branches on a sampler kind outside the catalogue: {sorted(decisions)}"


def test_the_kind_check_finds_a_branch() -> None:
    """The check above is not blind: it flags each form of branching it looks for."""
    source = (
        "if isinstance(c, QsimSampler): pass\n"
        "match c:\n    case EmulatorSampler(): pass\n"
        "if c.kind == 'google_engine': pass\n"
        "if c.noise == 'processor': pass\n"
    )
    assert sorted(_kind_decisions(ast.parse(source))) == [1, 3, 4]


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_every_sampler_kind_names_a_builder(kind: str) -> None:
    """Every kind's entry names a builder that exists (import only; building is tested in test_samplers)."""
    assert callable(SAMPLERS[kind].load())


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a module graph: its strongly connected components of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    """No module imports itself through others (lazy imports inside functions count too)."""
    import grimp

    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = set(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    circles = _cycles(edges)
    assert not circles, f"import circles: {circles}"


def test_the_circle_check_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
