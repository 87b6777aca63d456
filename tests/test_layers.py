"""The shape of the code (DESIGN.md section 8): imports point down, never in a cycle.

Read from the source with ``ast`` (imports inside functions count too), so a change that adds
an upward arrow or a cycle fails here, whatever tool a reviewer draws the graph with.
"""
from __future__ import annotations

import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lindivc")

# Layers, lowest first. A module may import its own layer or lower ones, never a higher one.
# (The gc and server packages and the cli are each one layer; their modules import each other.)
LAYERS: list[set[str]] = [
    {"errors", "atomic", "progress", "testdata"},
    {"lindijson", "objects", "httpread", "auth", "index", "reflines", "mergestate", "valuemerge"},
    {"layout", "packs", "documents", "history"},
    {"packstream", "config", "lindi_io", "locations", "localranges", "worktree", "infofiles", "zonerefs", "gitsync",
     "zones"},
    {"catalog", "server", "rangeserver"},
    {"repo", "remotes"},
    {"diff", "log", "importer", "consolidate", "filemerge", "merge", "publish", "borrow", "fetch", "fsck", "gc", "upload",
     "completion"},
    {"push", "pinning"},
    {"cli"},
]


def _modules() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, PKG)[:-3].replace(os.sep, ".")
                out["" if rel == "__init__" else rel.removesuffix(".__init__")] = path
    return out


def _imports(mod: str, path: str, known: dict[str, str]) -> list[tuple[str, ast.AST]]:
    """(imported lindivc module, node) for every import of ``mod``."""
    pkg = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".") if pkg else []
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("lindivc"):
                name = node.module.removeprefix("lindivc").lstrip(".")
            else:
                continue
            for a in node.names:
                sub = f"{name}.{a.name}" if name else a.name
                found.append((sub if sub in known else name, node))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lindivc."):
                    found.append((a.name.removeprefix("lindivc."), node))
    return [(t, n) for t, n in found if t in known and t != mod and not mod.startswith(t + ".")]


def _top(mod: str) -> str:
    return mod.split(".")[0]


def _layer(mod: str) -> int:
    for i, names in enumerate(LAYERS):
        if _top(mod) in names:
            return i
    raise AssertionError(f"lindivc/{mod.replace('.', '/')}.py is in no layer of tests/test_layers.py: add it")


def test_every_import_points_down_or_sideways():
    known = _modules()
    wrong = []
    for mod, path in known.items():
        if not mod:
            continue
        for target, node in _imports(mod, path, known):
            if target and _top(target) != _top(mod) and _layer(target) > _layer(mod):
                wrong.append(f"{mod} (layer {_layer(mod)}) imports {target} (layer {_layer(target)}), line {node.lineno}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    known = _modules()
    graph = {m: {t for t, _ in _imports(m, p, known)} for m, p in known.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_import_inside_try_except():
    bad = []
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Try):
                for stmt in node.body:
                    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                        bad.append(f"{path}:{stmt.lineno}")
    assert not bad, "imports inside try/except: " + ", ".join(bad)
