"""Imports among the web server's modules, and among the page's scripts, run one way.

A circle (hub <-> fanout, depth.js <-> cloud.js) makes a module's meaning depend on which
side is loaded first; these tests read the real import statements, lazy ones included.
"""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.helpers import ROOT

JS_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']\./([\w.-]+\.js)["']""",
                       re.MULTILINE)


def python_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (anywhere in its body)."""
    name = package.name
    graph: dict[str, set[str]] = {}
    for path in sorted(package.glob("*.py")):
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target.startswith(f"{name}."):
                    deps.add(target.split(".")[1])
    return graph


def js_graph(folder: Path) -> dict[str, set[str]]:
    """Script -> the scripts of the folder it imports, statically or with import()."""
    return {path.name: set(JS_IMPORT.findall(path.read_text()))
            for path in sorted(folder.glob("*.js"))}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        return list(exc.args[1])
    return None


def test_web_python_modules_import_one_way() -> None:
    graph = python_graph(ROOT / "web")
    assert graph["fanout"] == {"channel"}, graph["fanout"]
    assert "channel" in graph["hub"] and "fanout" in graph["hub"]
    assert cycle(graph) is None, cycle(graph)


def test_page_scripts_import_one_way() -> None:
    graph = js_graph(ROOT / "web" / "static")
    assert graph["cloud.js"] >= {"hue.js"} and "depth.js" not in graph["cloud.js"]
    assert graph["depth.js"] >= {"hue.js", "cloud.js"}  # cloud.js lazily, for the 3D view
    assert graph["hue.js"] == set()
    assert cycle(graph) is None, cycle(graph)


def test_the_checker_sees_a_circle() -> None:
    assert cycle({"a": {"b"}, "b": {"a"}}) is not None
    assert set(JS_IMPORT.findall('import {x} from "./a.js";\nconst m = await import("./b.js");'
                                 )) == {"a.js", "b.js"}
