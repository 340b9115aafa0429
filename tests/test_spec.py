"""One source of truth: spec/ drives the code and the docs (ARCHITECTURE.md rules of the house).

- docs/spec.md is exactly what `kvclaims spec` renders from the tables (regenerate it with
  `.venv/bin/kvclaims spec > docs/spec.md`);
- every string literal in checker/ that looks like an event name, rule id or gate requirement
  exists in the tables;
- every table entry is used: each rule is decided by the replay, each gate requirement is
  decided by the gate code, each event is dispatched by a lifecycle table or its scope.
"""

from __future__ import annotations

import ast
import re

from kvclaims.docs import render_spec

from conftest import ROOT

SRC = ROOT / "checker" / "kvclaims"
EVENTISH = re.compile(
    r"^(resident_claim_\w+|resident_block_\w+|active_request_\w+|active_live_bounded|"
    r"allocation_victim_\w+|future_reuse_(admitted|denied)|offload_(lookup|store|load|worker|job|"
    r"request)_\w+|scheduler_\w+_(failed|refused)|generic_kv_\w+|generic_request_\w+|"
    r"request_initialized)$")
RULEISH = re.compile(r"^R-[a-z-]+$")


def _literals() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.setdefault(node.value, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def test_docs_spec_is_current(spec) -> None:
    doc = ROOT / "docs" / "spec.md"
    assert doc.read_text() == render_spec(spec), \
        "docs/spec.md is stale: run `.venv/bin/kvclaims spec > docs/spec.md`"


def test_code_names_only_ids_the_tables_have(spec) -> None:
    known_events = set(spec.events)
    requirements = {r for reqs in spec.gates.values() for r in reqs}
    for lit, where in _literals().items():
        if EVENTISH.match(lit) and lit not in requirements:
            assert lit in known_events, f"{lit!r} at {where} is not in spec/events.toml"
        if RULEISH.match(lit):
            assert lit in spec.rules, f"{lit!r} at {where} is not in spec/rules.toml"
    gate_src = (SRC / "check" / "gate.py").read_text()
    for req in requirements:
        assert f'"{req}"' in gate_src, f"gate requirement {req} is never decided"


def test_every_rule_is_decided_by_the_replay(spec) -> None:
    from kvclaims.check.replay import RuleIds

    ids = RuleIds(spec)
    assert set(vars(ids).values()) == set(spec.rules)


def test_every_event_is_dispatched(spec) -> None:
    from kvclaims.check.replay import EventNames

    names = EventNames(spec)
    named = {v for v in vars(names).values() if isinstance(v, str)}
    lifecycle = set(spec.claim.transitions) | set(spec.offload.transitions)
    generic_scopes = {"connector", "scheduler", "generic", "stream"}
    for name, e in spec.events.items():
        assert name in named or name in lifecycle or e.scope in generic_scopes, name


def test_spec_tables_are_consistent(spec) -> None:
    # Every mode alias names a mode, every bundle names rules, every lifecycle state is declared.
    for alias, mode in spec.mode_aliases.items():
        assert mode in spec.modes
    for m in spec.modes.values():
        assert set(m.rules) <= set(spec.rules)
        if m.gate:
            assert m.gate in spec.gates
    for t in spec.claim.transitions.values():
        assert t.sources <= set(spec.claim.states)
        assert t.target == "same" or t.target in spec.claim.states
    assert spec.responsible | spec.released <= set(spec.claim.states)


def test_spec_files_have_one_reader() -> None:
    # spec.py reads the model tables and the grammar; lower/descriptor.py reads the runtime
    # descriptors (spec/descriptors/, their schema and lowering.toml), which it validates itself.
    allowed = {SRC / "spec.py", SRC / "lower" / "descriptor.py"}
    for path in SRC.rglob("*.py"):
        if path not in allowed:
            assert "spec_root(" not in path.read_text(), path
