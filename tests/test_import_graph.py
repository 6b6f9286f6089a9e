"""The package has no import cycle: every ``import`` in every module of ``horesnet`` (top level or inside a
function, so lazy imports cannot hide a cycle) is an arrow, and the arrows form no loop. Dependencies then point
one way: schemes -> nn -> models -> training/analysis -> command lines."""

from __future__ import annotations

import ast
from pathlib import Path

import horesnet

ROOT = Path(horesnet.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert "horesnet.schemes.tableau" in graph["horesnet.schemes.registry"]
    assert "horesnet.models.budget" in graph["horesnet.models.factory"]
    assert "horesnet.data.registry" in graph["horesnet.cli.schema"], "imports inside functions count"


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


ENTRIES = {"horesnet.fit", "horesnet.info", "horesnet.analyze", "horesnet.compare"}
# The layers, bottom to top; a module may import its own layer and the ones below, never one above.
LAYERS = [
    ("horesnet.errors", "horesnet.spec", "horesnet.plugin_errors", "horesnet.plugins", "horesnet.configs",
     "horesnet.registry", "horesnet.files", "horesnet.runs"),
    ("horesnet.schemes",),
    ("horesnet.nn",),
    ("horesnet.models",),
    ("horesnet.data",),
    ("horesnet.training", "horesnet.analysis"),
    ("horesnet.comparison",),
    ("horesnet.cli",),
]


def _layer(module: str) -> int | None:
    if module in ENTRIES:
        return len(LAYERS)
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def test_every_import_points_down_the_layers():
    """The command lines on top (``horesnet.cli`` and the four thin ``python -m`` entry modules), comparison below
    them, training and analysis below that, and so on down to the schemes: no import runs back up a layer."""
    upward = [f"{m} -> {d}" for m, deps in import_graph().items() for d in deps
              if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m)]
    assert upward == []


def test_every_module_has_a_layer():
    unplaced = [m for m in import_graph() if m != "horesnet" and _layer(m) is None]
    assert unplaced == []
