"""The bad-lowering suite (docs/model.md §9): every case in traces/bad-lowering/ must be rejected.

A case is one small TOML file: the mapping (mode, and either the primitive it is lowered onto or
the evidence offered for it, a trace inline) and the expected rejection reason. Semantic cases get
the shortest witness of the primitive's Z3 model, re-checked by the replay checker; evidence cases
offer their trace as anchored evidence claiming conformance, and the relation must reject the
mapping with the expected rule or gate requirement. Data in, data out; `prove_command` prints.
"""

from __future__ import annotations

import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvclaims import spec as spec_mod
from kvclaims.lower import primitives
from kvclaims.lower.anchors import check_trace
from kvclaims.lower.descriptor import (
    Anchor,
    Descriptor,
    DescriptorError,
    Evidence,
    Mapping_,
    load_tables,
)
from kvclaims.lower.relation import REJECTED, Decision, anchor_key, classify

KINDS = ("semantic", "evidence")


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    name: str
    kind: str
    mode: str
    decision: Decision
    ok: bool
    why: str  # when not ok: what went wrong
    expected: tuple[str, ...]
    steps: tuple[str, ...] = ()
    reason: str = ""
    inconclusive: str = ""  # the solver answered unknown (kvclaims.solver): why; then not ok


def load_case(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            case = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise DescriptorError(f"{path}: {err}") from None
    for key in ("name", "kind", "mode", "expected_class"):
        if key not in case:
            raise DescriptorError(f"{path}: missing {key!r}")
    if case["kind"] not in KINDS:
        raise DescriptorError(f"{path}: kind must be one of {KINDS}")
    need = ("primitive", "expected_rule") if case["kind"] == "semantic" else \
        ("trace", "format", "expected", "supports")
    for key in need:
        if key not in case:
            raise DescriptorError(f"{path}: a {case['kind']} case needs {key!r}")
    if case["kind"] == "semantic" and case["primitive"] not in primitives.PRIMITIVES:
        raise DescriptorError(f"{path}: unknown primitive {case['primitive']!r}")
    return case


def _descriptor(case: dict[str, Any], row: Mapping_, evidence: tuple[Evidence, ...]) -> Descriptor:
    return Descriptor(runtime=case.get("runtime", "bad-lowering"), name=case["name"],
                      version="-", modes=(row.mode,), mappings=(row,), evidence=evidence)


def run_case(path: Path, bound: int = primitives.DEFAULT_BOUND) -> CaseResult:
    case = load_case(path)
    spec = spec_mod.load()
    tables = load_tables()
    mode = case["mode"]
    if mode not in spec.modes:
        raise DescriptorError(f"{path}: unknown mode {mode!r}")
    if case["kind"] == "semantic":
        found = primitives.search(case["primitive"], mode, bound)
        if found.result.status == "unknown":
            row = Mapping_(mode, mode, (case["primitive"],))
            decision = classify(spec, tables, _descriptor(case, row, ()), row, {},
                                lambda p, m: found.result)
            return CaseResult(str(path), case["name"], "semantic", mode, decision, False, "",
                              (case["expected_rule"],), (), case.get("reason", ""),
                              inconclusive=found.result.note)
        row = Mapping_(mode, mode, (case["primitive"],))
        d = _descriptor(case, row, ())
        decision = classify(spec, tables, d, row, {}, lambda p, m: found.result)
        w = decision.witness
        expected = (case["expected_rule"],)
        if decision.cls != REJECTED or w is None:
            why = f"accepted as {decision.cls}: no witness ({found.result.status})"
        elif w.rule != case["expected_rule"]:
            why = f"witness violates {w.rule}, expected {case['expected_rule']}"
        elif not w.confirmed:
            why = "the replay checker does not report the witness's rule"
        elif len(w.events) > int(case.get("max_events", 8)):
            why = f"witness has {len(w.events)} events, more than {case.get('max_events', 8)}"
        else:
            why = ""
        return CaseResult(str(path), case["name"], "semantic", mode, decision, not why, why,
                          expected, found.steps, case.get("reason", ""))
    suffix = ".kvt" if case["format"] == "kvt" else ".jsonl"
    with tempfile.TemporaryDirectory(prefix="kvclaims-prove-") as tmp:
        trace = Path(tmp) / (path.stem + suffix)
        trace.write_text(case["trace"], encoding="utf-8")
        # the offerer claims conformance; the checker decides
        anchor = Anchor("trace", str(trace), "conformant", case.get("require") or None)
        check = check_trace(anchor, Path("/"))
    # name the inline trace by its case file in reasons, not by the temporary path
    anchor = Anchor("trace", f"{path.name}:trace", "conformant", case.get("require") or None)
    ev = Evidence(id=path.stem, depth=case.get("depth", "native"), modes=(mode,),
                  supports=tuple(case["supports"]), basis="trace", anchors=(anchor,))
    row = Mapping_(mode, mode, ())
    decision = classify(spec, tables, _descriptor(case, row, (ev,)), row,
                        {anchor_key(anchor): check})
    expected = tuple(case["expected"])
    said = " ".join(c[2] for c in decision.contradictions)
    absent = [x for x in expected if x not in said.replace(",", " ").split()]
    if decision.cls != REJECTED:
        why = f"accepted as {decision.cls}"
    elif absent:
        why = f"rejected, but not for {', '.join(absent)} ({said})"
    else:
        why = ""
    return CaseResult(str(path), case["name"], "evidence", mode, decision, not why, why, expected,
                      reason=case.get("reason", ""))


def case_files(target: str | Path) -> list[Path]:
    p = Path(target)
    if p.is_dir():
        files = sorted(p.glob("*.toml"))
        if not files:
            raise DescriptorError(f"{p}: no bad-lowering cases (*.toml)")
        return files
    if not p.is_file():
        raise DescriptorError(f"{p}: no such file or directory")
    return [p]


def prove(target: str | Path, bound: int = primitives.DEFAULT_BOUND) -> list[CaseResult]:
    return [run_case(f, bound) for f in case_files(target)]
