"""The dependency direction, checked on the source: no import cycle between apps (imports inside
functions count too), and the managers reach compute only through its models, hooks, locking
and drivers — never its services or tasks (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"tests", "bench", "scripts", "static", "templates", "docs", ".venv", ".cache", "artifacts"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP or rel.parts[0].startswith(".") or "migrations" in rel.parts or len(rel.parts) < 2:
            continue
        name = ".".join(rel.with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (anywhere in the file)."""
    mods = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != name:
                    graph[name].add(t)
    return graph


def cross_app_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components spanning more than one app (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    nodes = set(graph) | {m for targets in graph.values() for m in targets}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len({m.split(".")[0] for m in comp}) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle_crosses_apps() -> None:
    assert cross_app_cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a two-app loop is reported."""
    graph = {"a.x": {"b.y"}, "b.y": {"a.z"}, "a.z": {"a.x"}, "c.q": {"a.x"}}
    assert cross_app_cycles(graph) == [["a.x", "a.z", "b.y"]]


@pytest.mark.parametrize("app", ["storage", "network", "images", "tenants", "monitoring"])
def test_managers_never_import_compute_services_or_tasks(app: str) -> None:
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in import_graph().items()
        if m.split(".")[0] == app
        for t in targets
        if t.startswith(("compute.services", "compute.tasks", "compute.api", "compute.views", "compute.admin"))
    )
    assert bad == []


def test_the_shared_types_are_a_leaf() -> None:
    """``specs`` (the agent boundary's plain values) imports no other project module and no Django."""
    graph = import_graph()
    assert {t for m, ts in graph.items() if m.split(".")[0] == "specs" for t in ts} == set()
    source = (ROOT / "specs" / "__init__.py").read_text(encoding="utf-8")
    assert "django" not in source
