"""The files of check/ form layers with no import cycle (issue 21 item 3; docs/checking.md, "Layers").

Read from the import statements with `ast` (every `import`/`from ... import` anywhere in a file,
including those under `if TYPE_CHECKING:` and inside functions: a type-only import is still a
dependency a reader must follow). Each module of kvclaims.check may import only modules of a
strictly lower layer of LAYERS, and every module must be placed in a layer, so a new file states
its place. The test fails on an edge against the order and names any cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "checker" / "kvclaims" / "check"
PACKAGE = "kvclaims.check"

# Lowest first. `rules.*` is every rule definition module (check/rules/<rule>.py).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("predicate", "verdict", "symbolic", "rules", "rules.ops"),  # data and operators: no rule
    ("state", "selection", "rules.*"),  # replay records; --select/--ignore over a verdict; the rule definitions (against rules.ops only)
    ("rules.steps",),  # the definitions composed per step of a claim, for both engines
    # what the replay's plug-ins may see of the replay (a Protocol); the definitions compiled
    # for Python values (the replay's evaluator)
    ("context", "rules.concrete"),
    ("progress", "offload", "attribution", "kvrm", "gate"),  # the replay's plug-ins
    ("commute",),  # which batches' events commute (their written order decides them)
    ("replay",),  # the streaming engine
    ("z3model",),  # the symbolic engine
    ("partial",),  # partly ordered traces: the Z3 engine and, for ordered parts, the replay
)


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(CHECK.rglob("*.py")):
        rel = p.relative_to(CHECK).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _layer(mod: str) -> int:
    for i, layer in enumerate(LAYERS):
        if mod in layer:
            return i
    for i, layer in enumerate(LAYERS):
        for entry in layer:
            if entry.endswith(".*") and mod.startswith(entry[:-1]):
                return i
    raise AssertionError(f"check/{mod.replace('.', '/')}.py is in no layer of LAYERS: "
                         "place it in tests/check/test_check_layers.py and docs/checking.md")


def _imports(path: Path) -> set[str]:
    """Modules of kvclaims.check that the file imports (relative names, '' for the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            if n == PACKAGE or n.startswith(PACKAGE + "."):
                rel = n[len(PACKAGE) + 1:]
                # `from kvclaims.check.x import Name` names module x; keep the longest module.
                while rel and rel not in MODULES:
                    rel = rel.rpartition(".")[0]
                if rel:
                    found.add(rel)
    return found


def _graph() -> dict[str, set[str]]:
    g = {}
    for mod, path in MODULES.items():
        deps = _imports(path) - {mod}
        # A package's __init__ is not a dependency of its own submodules.
        g[mod] = {d for d in deps if not (mod.startswith(d + ".") and d != "")}
    return g


def test_every_module_has_a_layer() -> None:
    for mod in MODULES:
        if mod:
            _layer(mod)


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if m))
def test_imports_point_down(mod: str) -> None:
    g = _graph()
    for dep in sorted(g[mod]):
        if not dep:
            continue
        assert _layer(dep) < _layer(mod), (
            f"check/{mod} (layer {_layer(mod)}) imports check/{dep} (layer {_layer(dep)}): "
            "an import may only point to a lower layer of LAYERS")


def test_no_cycle() -> None:
    g = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle in check/: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_the_reader_sees_type_only_imports(tmp_path: Path) -> None:
    # The detector itself: an import under `if TYPE_CHECKING:` counts as an edge.
    p = tmp_path / "x.py"
    p.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                 "    from kvclaims.check.replay import Replay\n"
                 "def f():\n    from kvclaims.check import z3model\n", encoding="utf-8")
    assert _imports(p) == {"replay", "z3model"}
