"""The bad-lowering suite (docs/model.md §9): every case in traces/bad-lowering/ must be rejected.

A case is one small TOML file: the mapping (mode, and either the primitive it is lowered onto or
the evidence offered for it, a trace inline) and the expected rejection reason. Semantic cases get
the shortest witness of the primitive's Z3 model, re-checked by the replay checker; hint cases
(kvclaims.lower.kvhints) the shortest witness of a KV hint lowering that differs from
spec/kvhints.toml as the case says (another mode for the hint, other events for an outcome or for
an accepted Demote, cuts reported after the loss), re-checked the same way; evidence cases
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
from kvclaims.lower import kvhints, primitives
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

KINDS = ("semantic", "evidence", "hint")


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
    need = {"semantic": ("primitive", "expected_rule"), "hint": ("hint", "expected_rule")}.get(
        case["kind"], ("trace", "format", "expected", "supports"))
    for key in need:
        if key not in case:
            raise DescriptorError(f"{path}: a {case['kind']} case needs {key!r}")
    if case["kind"] == "semantic" and case["primitive"] not in primitives.PRIMITIVES:
        raise DescriptorError(f"{path}: unknown primitive {case['primitive']!r}")
    return case


def hint_lowering(path: Path, case: dict[str, Any], mode: str) -> kvhints.Lowering:
    """The lowering a hint case offers: spec/kvhints.toml for its `hint` kind, lowered onto the
    case's mode, changed as its `[lowering]` table says (`outcome` with `answer` / `later` event
    lists, `demote_on_accept`, `late_cuts`)."""
    from kvclaims.lower.descriptor import load_hint_table

    table = load_hint_table()
    kind = case["hint"]
    if kind not in table.kinds or table.kinds[kind].mode is None:
        raise DescriptorError(f"{path}: hint: {kind!r} is not a hint kind lowered onto a mode "
                              f"({', '.join(k for k, v in table.kinds.items() if v.mode)})")
    low = kvhints.spec_lowering(kind, mode, case.get("answers", "rfc"), table)
    ch = case.get("lowering", {})
    unknown = set(ch) - {"outcome", "answer", "later", "demote_on_accept", "late_cuts"}
    if unknown:
        raise DescriptorError(f"{path}: lowering: unknown key(s) {sorted(unknown)}")
    outcome = ch.get("outcome")
    if outcome is not None and outcome not in table.outcomes:
        raise DescriptorError(f"{path}: lowering.outcome: unknown outcome {outcome!r}")
    spec = spec_mod.load()
    for key in ("answer", "later", "demote_on_accept"):
        for e in ch.get(key, ()):
            if e not in spec.claim.transitions:
                raise DescriptorError(f"{path}: lowering.{key}: {e!r} is not a claim transition")
    lists = {k: tuple(ch[k]) if k in ch else None for k in ("answer", "later",
                                                             "demote_on_accept")}
    return kvhints.override(low, outcome=outcome, answer=lists["answer"], later=lists["later"],
                            on_accept=lists["demote_on_accept"], late_cuts=ch.get("late_cuts"))


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
    if case["kind"] in ("semantic", "hint"):
        if case["kind"] == "hint":
            found = kvhints.search(hint_lowering(path, case, mode), bound)
            case = {**case, "primitive": found.result.primitive}
        else:
            found = primitives.search(case["primitive"], mode, bound)
        if found.result.status == "unknown":
            row = Mapping_(mode, mode, (case["primitive"],))
            decision = classify(spec, tables, _descriptor(case, row, ()), row, {},
                                lambda p, m: found.result)
            return CaseResult(str(path), case["name"], case["kind"], mode, decision, False, "",
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
        return CaseResult(str(path), case["name"], case["kind"], mode, decision, not why, why,
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


def case_lines(r: CaseResult) -> list[str]:
    """How `kvclaims prove` prints one decided case (and docs/lowering.md quotes it)."""
    from kvclaims.lower.primitives import witness_kvt

    out = [f"{'REJECTED' if r.ok else 'FAILED  '} {r.name} [{r.kind}, {r.mode}]  ({r.file})"]
    if r.reason:
        out.append(f"    why it is wrong: {r.reason}")
    out.append(f"    decided: {r.decision.cls}: {r.decision.reason}")
    if r.kind == "evidence":
        out += [f"    - {what}" for _, _, what in r.decision.contradictions]
    w = r.decision.witness
    if w is not None:
        out.append(f"    witness ({w.depth} steps: {', '.join(r.steps)}; {len(w.events)} events; "
                   f"replay {'confirms' if w.confirmed else 'DISAGREES'} {w.rule}):")
        out += [f"      {line}" for line in witness_kvt(w.events).splitlines()]
    if not r.ok:
        out.append(f"    FAILED: {r.why}")
    return out
