"""The lowering relation and the five-step classification (docs/model.md §9; papers P2.4). Pure.

    Lower(d, a, E, m)  <=>  ∀ o ∈ O[m] ∃ e ∈ d.native ∪ d.adapters[≤ a] ∪ E :
                            supports(e, o) ∧ anchored(e) ∧ depth_allowed(a, o)

Fail-closed: evidence that is missing, unanchored (no checkable anchor, or an anchor that drifted or
was not re-checked), ambiguous, or of a non-raising basis (issue text, unverified) never raises a
class. Choices, written once here:

- depth_allowed(a, o) is evaluated at the depth the evidence item is used at (its own depth, which
  is ≤ a), from spec/lowering.toml; policy-depth evidence counts only with controlled pressure.
- supports(e, o): o is among the obligations e declares and, when e has trace anchors, one of them
  positively witnesses o for the mode's claims (replay status `pass`) and none violates o or misses
  the gate it names.
- A trace anchor that violates an obligation its item declares (or misses a gate requirement) is a
  contradiction: the mapping is rejected with that reason (step 3), whatever verdict was recorded.
- Order of decision: native_sound; else sound_with_adapter at the smallest depth that works; else
  rejected on a contradiction or a primitive witness (a run of the primitive violating O[m]); else
  approximate if related primitives or evidence exist; else unknown.
- A class (or depth) claimed by the descriptor above the decided one is an error (over-claim).

No I/O: anchor checks and primitive results are computed by the caller and passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kvclaims.lower.descriptor import Anchor, Descriptor, Evidence, LoweringTables, Mapping_
from kvclaims.spec import Spec

NATIVE_SOUND = "native_sound"
SOUND_WITH_ADAPTER = "sound_with_adapter"
APPROXIMATE = "approximate"
REJECTED = "rejected"
UNKNOWN = "unknown"
CLASSES = (NATIVE_SOUND, SOUND_WITH_ADAPTER, APPROXIMATE, REJECTED, UNKNOWN)
# Strength, for over-claim detection: a descriptor may claim less than is decided, never more.
_STRENGTH = {NATIVE_SOUND: 4, SOUND_WITH_ADAPTER: 3, APPROXIMATE: 2, UNKNOWN: 1, REJECTED: 0}

# anchor check statuses
VERIFIED = "verified"
DRIFT = "drift"
UNCHECKED = "unchecked"


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    """The result of checking one anchor. For traces: what the replay positively witnessed for
    each mode's claims (`passed[mode]`), what it violated, and the gate's missing requirements."""

    status: str  # verified | drift | unchecked
    detail: str = ""
    passed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    violated: frozenset[str] = frozenset()
    gate_missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SemanticResult:
    """Checking mode m against a primitive's Z3 model (kvclaims.lower.primitives)."""

    primitive: str
    mode: str
    status: str  # witness | proved | bounded | not_modelled | unknown (the solver gave up)
    rules_checked: tuple[str, ...] = ()
    rule: str | None = None  # the rule the witness violates
    depth: int = 0  # witness length in steps, or the bound / induction depth
    events: tuple[Any, ...] = ()  # the witness as kvclaims Events
    confirmed: bool | None = None  # the replay checker reported the same rule
    seconds: float = 0.0
    note: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    runtime: str
    name: str
    version: str
    label: str
    mode: str
    cls: str
    depth: str | None  # sound_with_adapter: the adapter depth; native_sound: "native"
    class_name: str  # the abstract wording (native conformance, adapter-observational, ...)
    reason: str
    deciding: tuple[tuple[str, str], ...] = ()  # (obligation, evidence id) pairs
    missing: tuple[str, ...] = ()  # obligations with no admissible evidence at any depth
    contradictions: tuple[tuple[str, str, str], ...] = ()  # (evidence id, anchor, what broke)
    semantic: tuple[SemanticResult, ...] = ()
    witness: SemanticResult | None = None
    primitives: tuple[str, ...] = ()
    evidence_ids: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()  # (evidence id, why it cannot count)
    errors: tuple[str, ...] = ()
    claimed: str | None = None
    note: str = ""


AnchorKey = Callable[[Anchor], str]


def anchor_key(a: Anchor) -> str:
    return f"{a.kind}:{a.ref}:{a.require or ''}"


def _admissible(e: Evidence, tables: LoweringTables,
                checks: Mapping[str, AnchorCheck], strict: bool) -> str | None:
    """None if e is anchored and may raise a class; else why not (fail-closed)."""
    if e.basis not in tables.raising_bases:
        return f"basis {e.basis} never raises a class"
    if e.ambiguous:
        return "ambiguous: not bound to one claim/cache identity"
    checkable = [a for a in e.anchors if a.kind in ("source", "doc", "trace", "proof")]
    if not checkable:
        return "unanchored: no source, doc, trace or proof anchor"
    for a in checkable:
        c = checks.get(anchor_key(a))
        if a.kind in ("trace", "proof"):
            if c is None or c.status != VERIFIED:
                return f"{a.kind} anchor {a.ref} not re-checked" if c is None else \
                    f"{a.kind} anchor {a.ref}: {c.detail or c.status}"
        elif c is not None and c.status == DRIFT:
            return f"anchor drift: {a.ref}: {c.detail}"
        elif a.kind == "source" and strict and (c is None or c.status != VERIFIED):
            return f"source anchor {a.ref} not verified"
    if e.depth == "policy" and not e.pressure_controlled:
        return "policy evidence without controlled pressure"
    return None


def _supports(e: Evidence, o: str, mode: str, spec: Spec,
              checks: Mapping[str, AnchorCheck]) -> bool:
    if o not in e.supports:
        return False
    if o not in spec.rules:
        return True  # lowering-level obligation: declared experiment evidence only
    # trace anchors and proof anchors (re-run Z3 proofs) witness positively
    traces = [checks.get(anchor_key(a)) for a in e.anchors if a.kind in ("trace", "proof")]
    if not traces:
        return True  # code/doc/experiment evidence: the curated declaration, anchored
    # at least one trace positively witnesses o; none violates it or misses its gate
    if any(c is None or o in c.violated or c.gate_missing for c in traces):
        return False
    return any(o in c.passed.get(mode, frozenset()) for c in traces if c is not None)


def _contradictions(e: Evidence, bundle: tuple[str, ...],
                    checks: Mapping[str, AnchorCheck]) -> list[tuple[str, str, str]]:
    out = []
    for a in e.anchors:
        if a.kind not in ("trace", "proof"):
            continue
        c = checks.get(anchor_key(a))
        if c is None:
            continue
        broken = sorted(set(e.supports) & set(bundle) & c.violated)
        if broken:
            out.append((e.id, a.ref, "violates " + ", ".join(broken)))
        if c.gate_missing:
            out.append((e.id, a.ref, f"gate {a.require} missing " + ", ".join(c.gate_missing)))
    return out


def lower(spec: Spec, tables: LoweringTables, bundle: tuple[str, ...], mode: str, depth: str,
          evidence: Iterable[Evidence], checks: Mapping[str, AnchorCheck],
          strict: bool = False) -> tuple[bool, dict[str, str], list[str]]:
    """Lower(d, a, E, m) over the candidate evidence (already scoped to the row): whether it
    holds, the deciding item per obligation, and the obligations left without one."""
    usable = [e for e in evidence
              if tables.rank(e.depth) <= tables.rank(depth)
              and _admissible(e, tables, checks, strict) is None]
    deciding: dict[str, str] = {}
    missing = []
    for o in bundle:
        allowed = tables.allowed.get(o, frozenset())
        found = next((e for e in sorted(usable, key=lambda x: (tables.rank(x.depth), x.id))
                      if e.depth in allowed and _supports(e, o, mode, spec, checks)), None)
        if found is None:
            missing.append(o)
        else:
            deciding[o] = found.id
    return not missing, deciding, missing


def row_evidence(d: Descriptor, row: Mapping_, extra: Iterable[Evidence] = ()) -> list[Evidence]:
    """d.native ∪ d.adapters ∪ E, scoped to the row: items for the row's mode (and, when an item
    names rows, only those)."""
    out = []
    for e in (*d.evidence, *extra):
        if row.mode in e.modes and (not e.rows or row.label in e.rows):
            out.append(e)
    return out


def classify(spec: Spec, tables: LoweringTables, d: Descriptor, row: Mapping_,
             checks: Mapping[str, AnchorCheck],
             semantic: Callable[[str, str], SemanticResult] | None = None,
             extra: Iterable[Evidence] = (), strict: bool = False) -> Decision:
    """The five-step classification of one runtime/mode row (docs/model.md §9 order of decision)."""
    mode = row.mode
    bundle = tables.bundle(spec, mode)
    evidence = row_evidence(d, row, extra)
    excluded = tuple((e.id, why) for e in evidence
                     if (why := _admissible(e, tables, checks, strict)) is not None)
    base: dict[str, Any] = {
        "runtime": d.runtime, "name": d.name, "version": d.version, "label": row.label, "mode": mode,
        "primitives": row.primitives, "evidence_ids": tuple(e.id for e in evidence),
        "excluded": excluded, "claimed": row.claimed_class, "note": row.note}

    def done(cls: str, depth: str | None, reason: str, **kw: Any) -> Decision:
        errors = list(kw.pop("errors", ()))
        if row.claimed_class is not None and _STRENGTH[row.claimed_class] > _STRENGTH[cls]:
            errors.append(f"over-claim: the descriptor claims {row.claimed_class}, the evidence "
                          f"supports {cls}")
        elif (row.claimed_class == SOUND_WITH_ADAPTER == cls and row.claimed_depth is not None
              and depth is not None and tables.rank(row.claimed_depth) < tables.rank(depth)):
            errors.append(f"over-claim: the descriptor claims depth {row.claimed_depth}, the "
                          f"evidence needs {depth}")
        name = {NATIVE_SOUND: tables.depth_names["native"],
                SOUND_WITH_ADAPTER: tables.depth_names.get(depth or "", "adapter"),
                APPROXIMATE: "approximation substrate", REJECTED: "rejected mapping",
                UNKNOWN: "unknown evidence"}[cls]
        return Decision(cls=cls, depth=depth, class_name=name, reason=reason,
                        errors=tuple(errors), **base, **kw)

    # the primitives' models are checked for every row, so sound rows carry their proofs too
    results = tuple(semantic(p, mode) for p in row.primitives) if semantic else ()
    # a primitive the solver could not decide (kvclaims.solver) leaves the row unknown: no
    # witness below the bound is not "none found"
    undecided = [r for r in results if r.status == "unknown"]
    if undecided:
        return done(UNKNOWN, None, "inconclusive: " + "; ".join(
            f"{r.primitive}: {r.note}" for r in undecided), semantic=results)
    # 1. native conformance
    ok, deciding, _ = lower(spec, tables, bundle, mode, "native", evidence, checks, strict)
    if ok:
        return done(NATIVE_SOUND, "native", "every obligation of the bundle has native, anchored "
                    "evidence", deciding=tuple(deciding.items()), semantic=results)
    # 2. sound with an adapter, at the smallest depth that works
    for depth in tables.depths[1:]:
        ok, deciding, _ = lower(spec, tables, bundle, mode, depth, evidence, checks, strict)
        if ok:
            return done(SOUND_WITH_ADAPTER, depth, f"every obligation is discharged at depth "
                        f"{depth} or below", deciding=tuple(deciding.items()), semantic=results)
    _, deciding, missing = lower(spec, tables, bundle, mode, tables.depths[-1], evidence, checks,
                                 strict)
    partial = {"deciding": tuple(deciding.items()), "missing": tuple(missing)}
    # 3. rejected: offered evidence contradicts the mode, or a primitive admits a violating run
    contra = [c for e in evidence for c in _contradictions(e, bundle, checks)]
    witness = next((r for r in sorted(results, key=lambda r: r.depth)
                    if r.status == "witness" and r.confirmed is not False), None)
    errors = [f"witness for {r.primitive} not confirmed by the replay checker"
              for r in results if r.status == "witness" and r.confirmed is False]
    if witness is not None:
        return done(REJECTED, None, f"{witness.primitive} admits a {witness.depth}-step run "
                    f"violating {witness.rule}", witness=witness, semantic=results,
                    contradictions=tuple(contra), errors=errors, **partial)
    if contra:
        return done(REJECTED, None, "offered evidence contradicts the mode: "
                    + "; ".join(f"{c[0]} ({c[1]}) {c[2]}" for c in contra),
                    contradictions=tuple(contra), semantic=results, errors=errors, **partial)
    # 4. approximation substrate: related primitives (modelled, or anchored in admissible
    # evidence) exist, but obligations lack evidence
    admissible = [e for e in evidence if _admissible(e, tables, checks, strict) is None]
    if row.primitives or deciding or admissible:
        return done(APPROXIMATE, None, "related primitives exist but obligations lack admissible "
                    "evidence: " + ", ".join(missing), semantic=results, errors=errors, **partial)
    # 5. unknown evidence
    return done(UNKNOWN, None, "no admissible evidence and no related primitive",
                semantic=results, errors=errors, **partial)
