"""The package is layered as declared (checker/kvclaims/layers.py; docs/architecture.md).

Measured from the import statements of every file under checker/kvclaims, with ast: imports at
the top, inside functions and under `if TYPE_CHECKING:` all count (a type-only import is still a
dependency a reader must follow). `from kvclaims.x import y` is an import of the module
kvclaims.x.y when that is a module, else of kvclaims.x. Fails on:

- an import of a part that the importing part's row does not allow;
- a part missing from the table, a table that names an unknown part, or a row that allows a
  part of a higher layer or makes the table cyclic;
- an import cycle between parts, or between the files of one part.

The files inside check/ are not held here: the issue-21 rules rewrite (one definition per rule)
removes the cycle among the replay and its rule plug-ins and adds its own test for check/'s files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from kvclaims import layers
from kvclaims.layers import BY_NAME, LAYERS, PARTS, part_of

from conftest import ROOT

PKG = ROOT / "checker" / "kvclaims"
INSIDE_HELD_ELSEWHERE = {"check"}  # see the module docstring


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(path: Path, me: str, known: Iterable[str]) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import statement in `path`."""
    known = set(known)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            for a in node.names:
                sub = f"{base_name}.{a.name}"
                found.append((sub if sub in known else base_name, node.lineno))
    out = []
    for name, line in found:
        while name and name not in known:  # an attribute of a module: the module
            name = name.rpartition(".")[0]
        if name and name != me:
            out.append((name, line))
    return out


def edges(root: Path) -> list[tuple[str, str, int]]:
    """(importer, imported, line) between modules of the package at `root`."""
    mods = modules(root)
    return [(m, t, line) for m, p in mods.items() for t, line in imports_of(p, m, mods)]


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    nodes = set(graph) | {w for ws in graph.values() for w in ws}
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def against_layers(found: Iterable[tuple[str, str, int]]) -> list[str]:
    bad = []
    for m, t, line in found:
        a, b = part_of(m), part_of(t)
        if a is None or b is None or a == b:
            continue
        if a not in BY_NAME:
            bad.append(f"{m}: part {a!r} is not in kvclaims/layers.py")
        elif b not in BY_NAME[a].may_import:
            bad.append(f"{m}:{line} imports {t}: {a} may import only "
                       f"{', '.join(sorted(BY_NAME[a].may_import)) or 'nothing of kvclaims'}")
    return sorted(set(bad))


def part_graph(found: Iterable[tuple[str, str, int]]) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for m, t, _ in found:
        a, b = part_of(m), part_of(t)
        if a is not None and b is not None and a != b:
            g.setdefault(a, set()).add(b)
    return g


def file_graph(found: Iterable[tuple[str, str, int]], part: str) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for m, t, _ in found:
        if part_of(m) == part == part_of(t):
            g.setdefault(m, set()).add(t)
    return g


FOUND = edges(PKG)


# ---- the package ---------------------------------------------------------------------------
def test_every_part_is_in_the_table_and_the_table_is_a_layering() -> None:
    parts = {part_of(m) for m in modules(PKG)} - {None}
    assert parts == set(BY_NAME), "parts and kvclaims/layers.py differ"
    assert len(BY_NAME) == len(PARTS)
    rank = {name: i for i, name in enumerate(LAYERS)}
    for p in PARTS:
        assert p.layer in rank, p
        assert p.may_import <= set(BY_NAME), p
        for q in p.may_import:
            assert rank[BY_NAME[q].layer] <= rank[p.layer], f"{p.name} may import {q}, above it"
    assert cycles({p.name: set(p.may_import) for p in PARTS}) == []


def test_no_import_against_the_layering() -> None:
    assert against_layers(FOUND) == []


def test_no_cycle_between_parts() -> None:
    assert cycles(part_graph(FOUND)) == []


@pytest.mark.parametrize("part", sorted(set(BY_NAME) - INSIDE_HELD_ELSEWHERE))
def test_no_cycle_between_the_files_of_a_part(part: str) -> None:
    assert cycles(file_graph(FOUND, part)) == []


def test_the_pipeline_stages_are_ordered() -> None:
    # The stages of docs/architecture.md, bottom-up: nothing lower imports anything higher.
    stages = ["spec", "trace", "check", "run", "report", "explain", "cli"]
    rank = {name: i for i, name in enumerate(LAYERS)}
    layer_of = [rank[BY_NAME[s].layer] for s in stages]
    assert layer_of == sorted(layer_of)
    for i, low in enumerate(stages):
        for high in stages[i + 1:]:
            assert high not in BY_NAME[low].may_import, (low, high)


# ---- the measurement itself ----------------------------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "kvclaims"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return root


def test_imports_inside_functions_and_type_checking_blocks_count(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "trace/model.py": "",
        "trace/reader.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from kvclaims.check.replay import Replay\n"
            "def f():\n    from kvclaims.runtime import micro\n    return micro\n"
            "from . import model\n"),
        "check/replay.py": "from ..trace.model import Event\n",
        "runtime/micro.py": "import kvclaims.trace.model\n",
    })
    found = edges(root)
    assert ("kvclaims.trace.reader", "kvclaims.check.replay", 3) in found
    assert ("kvclaims.trace.reader", "kvclaims.runtime.micro", 5) in found
    assert ("kvclaims.trace.reader", "kvclaims.trace.model", 7) in found
    assert ("kvclaims.check.replay", "kvclaims.trace.model", 1) in found
    bad = against_layers(found)
    assert any("trace.reader:3 imports kvclaims.check.replay" in b for b in bad)
    assert any("trace.reader:5 imports kvclaims.runtime.micro" in b for b in bad)
    assert not any("check.replay" in b.split(":")[0] for b in bad)  # check -> trace is allowed


def test_cycles_are_found_between_parts_and_between_files(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "report/text.py": "from kvclaims.explain import strips\n",
        "explain/strips.py": "def f():\n    import kvclaims.report.text\n",
        "check/a.py": "from kvclaims.check import b\n",
        "check/b.py": "from kvclaims.check.c import x\n",
        "check/c.py": "from kvclaims.check.a import y\n",
    })
    found = edges(root)
    assert cycles(part_graph(found)) == [["explain", "report"]]
    assert cycles(file_graph(found, "check")) == [
        ["kvclaims.check.a", "kvclaims.check.b", "kvclaims.check.c"]]
    assert cycles(file_graph(found, "report")) == []


def test_the_table_module_imports_nothing() -> None:
    assert imports_of(Path(layers.__file__), "kvclaims.layers", modules(PKG)) == []


def test_docs_architecture_states_the_table() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "part":
            may = set() if cells[2] == "nothing of kvclaims" else set(cells[2].split(", "))
            rows[cells[0].strip("`")] = (cells[1], may, cells[3])
    assert rows == {p.name: (p.layer, set(p.may_import), p.does) for p in PARTS}
    assert "checker/kvclaims/layers.py" in doc
    assert ", ".join(f"**{name}**" for name in LAYERS) in " ".join(doc.split())  # in order
