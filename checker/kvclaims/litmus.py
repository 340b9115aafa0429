"""`kvclaims litmus`: the litmus suite L1-L7, C1 and the capacity sweep (docs/model.md §8).

Decides, for each case, whether what the checker reconstructs from the MicroRuntime's trace alone
agrees with the number the model predicts: every case is a workload run through the MicroRuntime,
checked with the replay checker, and compared fact by fact with its expected facts. C1 is a
capability classification computed from runs: a primitive whose runs admit a trace the checker
flags R-hard cannot carry hard_protected (unsound); a soft-priority primitive whose runs are
conformant but lose claims under pressure is approximate. Rows are data; rendering is in
kvclaims.report.litmus_text; `litmus_command` is the CLI edge (the only I/O here).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvclaims import spec as spec_mod
from kvclaims.check.replay import check_events
from kvclaims.check.verdict import CONFORMANT, VIOLATION, Report
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.vocabulary import NAMES as N
from kvclaims.runtime.workload import ClaimSpec, Workload, sixty_seventy_eighty
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

AGREE = "pass"
DISAGREE = "FAIL"
RESIDENT_CLAIM = "claim:resident"
RESIDENT_PREFIX = "resident"
ACTIVE = "active"
SWEEP_USABLE = (80, 90, 100, 110, 120, 130, 150)
SWEEP_POLICIES = (P.NATIVE, P.WRITE_NO_ADMIT, P.HARD_EXCLUDE)
RESIDENT_BLOCKS = 60
ACTIVE_BLOCKS = 70
EXPECTED_FILE = "expected.json"

UNSOUND = "unsound"
APPROXIMATE = "approximate"
SOUND = "sound"


@dataclass(frozen=True, slots=True)
class LitmusTrace:
    name: str  # file name under traces/litmus/
    events: tuple[Event, ...]
    verdict: str
    rules: tuple[str, ...]  # rules with a violation, sorted


@dataclass(frozen=True, slots=True)
class LitmusRow:
    case: str
    policy: str
    title: str
    expected: dict[str, Any]
    observed: dict[str, Any]
    trace: str

    @property
    def agrees(self) -> bool:
        return all(self.observed.get(k) == v for k, v in self.expected.items())

    @property
    def verdict(self) -> str:
        return AGREE if self.agrees else DISAGREE


@dataclass(frozen=True, slots=True)
class LitmusResult:
    rows: tuple[LitmusRow, ...]
    traces: tuple[LitmusTrace, ...]

    @property
    def ok(self) -> bool:
        return all(r.agrees for r in self.rows)


# ---- observation: what the checker reconstructs from one trace (docs/model.md §7) ---------------------
def _count(events: Iterable[Event], kind: str) -> int:
    return sum(1 for e in events if e.kind == kind)


def _violated(report: Report) -> tuple[str, ...]:
    return tuple(sorted({f.rule for f in report.findings if f.status == VIOLATION}))


def observe(events: tuple[Event, ...], report: Report) -> dict[str, Any]:
    """Facts reconstructed from the trace and its report alone."""
    facts: dict[str, Any] = {
        "verdict": report.verdict,
        "violated": list(_violated(report)),
        "accepted": _count(events, N.accepted),
        "materialized": _count(events, N.materialized),
        "harmed": _count(events, N.harmed),
        "demoted": _count(events, N.demoted),
        "expired": _count(events, N.expired),
        "reuse_denied": _count(events, N.reuse_denied),
        "victims": report.cached_resident_victims,
        "lost_after_release": sum(c.lost_after_release for c in report.claims),
    }
    req = next((r for r in report.requests if r.request_id == ACTIVE), None)
    if req is not None:
        facts.update(active=req.outcome, blocking=list(req.blocking_claim_ids),
                     shortfall=req.capacity_shortfall_blocks,
                     free=req.free_blocks_before_allocate, feasibility=req.feasibility,
                     reuse_admitted=req.future_reuse_admitted)
    prefix = next((p for p in report.prefixes if p.prefix_id == RESIDENT_PREFIX), None)
    if prefix is not None:
        facts.update(remaining=prefix.remaining_blocks, leading=prefix.leading_blocks_survived)
    claim = next((c for c in report.claims if c.claim_id == RESIDENT_CLAIM), None)
    if claim is not None:
        facts.update(surviving=claim.surviving_blocks,
                     claim_leading=claim.leading_blocks_survived,
                     required=claim.required_blocks, claim_materialized=claim.materialized,
                     final_state=claim.final_state)
    return facts


# ---- cases ------------------------------------------------------------------------------------
def _resident_claim(**kw: Any) -> ClaimSpec:
    return ClaimSpec(RESIDENT_CLAIM, RESIDENT_BLOCKS, **kw)


@dataclass(frozen=True, slots=True)
class _Case:
    case: str
    title: str
    policy: P.Policy
    workload: Workload
    expected: dict[str, Any]
    trace: str


def _cases() -> list[_Case]:
    conf = {"verdict": CONFORMANT}
    leading10 = {"remaining": 10, "leading": 10}
    return [
        _Case("L1", "no accepted claim, native eviction", P.Policy(P.NATIVE),
              sixty_seventy_eighty(run_id="litmus-L1"),
              {**conf, "accepted": 0, "harmed": 0, "victims": 50, **leading10}, "L1.kvt"),
        _Case("L2", "write no-admit", P.Policy(P.WRITE_NO_ADMIT),
              sixty_seventy_eighty(run_id="litmus-L2"),
              {**conf, "active": "served", "reuse_denied": 1, "reuse_admitted": False,
               "victims": 50, **leading10}, "L2.kvt"),
        _Case("L3", "hard claim 60 / active 70 / usable 80", P.Policy(P.HARD_EXCLUDE),
              sixty_seventy_eighty(claim=_resident_claim(), run_id="litmus-L3"),
              {**conf, "active": "refused", "victims": 0, "accepted": 1, "materialized": 1,
               "blocking": [RESIDENT_CLAIM], "shortfall": 50, "free": 20,
               "feasibility": N.infeasible}, "L3.kvt"),
        _Case("L4", "demotion before loss", P.Policy(P.DEMOTE_ON_CONFLICT),
              sixty_seventy_eighty(claim=_resident_claim(), run_id="litmus-L4"),
              {**conf, "demoted": 1, "harmed": 0, "lost_after_release": 50, "victims": 50},
              "L4.kvt"),
        _Case("L5", "expiry before loss", P.Policy(P.EXPIRING),
              sixty_seventy_eighty(claim=_resident_claim(duration_steps=1), run_id="litmus-L5"),
              {**conf, "expired": 1, "harmed": 0, "lost_after_release": 50, "victims": 50},
              "L5.kvt"),
        # Position 0 lost, 1..59 survive: a runtime freeing in allocation order (head first)
        # gives the head up first; soft priority reports the break as harm.
        _Case("L6", "survival is not materialization",
              P.Policy(P.SOFT_PRIORITY, free_order=P.HEAD_FIRST),
              sixty_seventy_eighty(61, claim=_resident_claim(), chunks=(2,), run_id="litmus-L6"),
              {**conf, "surviving": 59, "claim_leading": 0, "required": 60,
               "claim_materialized": False}, "L6.kvt"),
    ]


def _sweep_cases() -> list[_Case]:
    out = []
    for usable in SWEEP_USABLE:
        for name in SWEEP_POLICIES:
            hard = name == P.HARD_EXCLUDE
            wl = sixty_seventy_eighty(usable, claim=_resident_claim() if hard else None,
                                      run_id=f"litmus-sweep-{name}-{usable}")
            fits = RESIDENT_BLOCKS + ACTIVE_BLOCKS <= usable
            if hard and not fits:
                exp: dict[str, Any] = {"verdict": CONFORMANT, "active": "refused", "victims": 0,
                                       "shortfall": RESIDENT_BLOCKS + ACTIVE_BLOCKS - usable}
            else:
                exp = {"verdict": CONFORMANT, "active": "served",
                       "victims": max(0, RESIDENT_BLOCKS + ACTIVE_BLOCKS - usable),
                       "reuse_admitted": name != P.WRITE_NO_ADMIT}
            out.append(_Case(f"sweep {usable}", "capacity sweep", P.Policy(name), wl, exp,
                             f"sweep-{name}-{usable}.kvt"))
    return out


def _check(spec: Spec, events: tuple[Event, ...], name: str) -> Report:
    return check_events(spec, events, name)


def _run_case(spec: Spec, c: _Case) -> tuple[LitmusRow, LitmusTrace]:
    result = run(c.workload, c.policy, base_fields=False)
    report = _check(spec, result.events, c.trace)
    row = LitmusRow(c.case, c.policy.name, c.title, c.expected, observe(result.events, report),
                    c.trace)
    return row, LitmusTrace(c.trace, result.events, report.verdict, _violated(report))


# ---- L7: reconstruction from the written trace alone ------------------------------------------
def _l7(spec: Spec, l3: LitmusTrace) -> LitmusRow:
    """Write L3's events as .kvt, read them back, and reconstruct the outcome from that text."""
    from kvclaims.trace.dsl import read_kvt
    from kvclaims.trace.write import write_kvt

    buf = io.StringIO()
    write_kvt(l3.events, buf, spec=spec)
    events = tuple(read_kvt(io.StringIO(buf.getvalue()), l3.name, spec=spec))
    report = _check(spec, events, l3.name)
    obs = observe(events, report)
    expected = {"verdict": CONFORMANT, "accepted": 1, "materialized": 1, "active": "refused",
                "blocking": [RESIDENT_CLAIM], "feasibility": N.infeasible, "victims": 0}
    return LitmusRow("L7", P.HARD_EXCLUDE, "outcome reconstructed from the trace alone",
                     expected, obs, l3.name)


# ---- C1: capability classification from runs --------------------------------------------------
def classify(spec: Spec, policy: P.Policy,
             workloads: Iterable[Workload]) -> tuple[str, LitmusTrace | None]:
    """Classify a primitive for a mode from MicroRuntime runs (docs/model.md §9 order of decision):
    `unsound` if some run's trace violates the mode's bundle (the first such trace is the
    witness); `approximate` if every run conforms but some accepted claim is lost under pressure;
    `sound` if every run conforms and no claim is ever lost."""
    lossy: LitmusTrace | None = None
    for i, wl in enumerate(workloads):
        result = run(wl, policy, base_fields=False)
        report = _check(spec, result.events, wl.run_id)
        trace = LitmusTrace(wl.run_id, result.events, report.verdict, _violated(report))
        if report.verdict == VIOLATION:
            return UNSOUND, trace
        if lossy is None and any(c.victims for c in report.claims):
            lossy = trace
    return (APPROXIMATE, lossy) if lossy is not None else (SOUND, None)


def _c1_probes(tag: str) -> list[Workload]:
    return [sixty_seventy_eighty(u, claim=_resident_claim(), run_id=f"litmus-C1-{tag}-{u}")
            for u in SWEEP_USABLE]


def _c1(spec: Spec) -> list[tuple[LitmusRow, LitmusTrace | None]]:
    rows = []
    hard = _mode_spelling(spec, "hard_exclude")
    lowered = P.Policy(P.SOFT_PRIORITY, declared_mode=hard)
    cls, witness = classify(spec, lowered, _c1_probes("hard-on-soft"))
    name = "C1-hard-on-soft.kvt"
    obs: dict[str, Any] = {"class": cls}
    if witness is not None:
        obs.update(verdict=witness.verdict, violated=list(witness.rules))
        witness = LitmusTrace(name, witness.events, witness.verdict, witness.rules)
    rules = spec.rules
    rows.append((LitmusRow("C1", "hard_protected->soft_priority",
                           "hard_protected lowered onto soft priority",
                           {"class": UNSOUND, "verdict": VIOLATION,
                            "violated": [rules["R-hard"].id]}, obs, name), witness))
    cls, lossy = classify(spec, P.Policy(P.SOFT_PRIORITY), _c1_probes("soft"))
    name = "C1-soft.kvt"
    obs = {"class": cls}
    if lossy is not None:
        obs.update(verdict=lossy.verdict)
        lossy = LitmusTrace(name, lossy.events, lossy.verdict, lossy.rules)
    rows.append((LitmusRow("C1", P.SOFT_PRIORITY, "soft priority as its own mode",
                           {"class": APPROXIMATE, "verdict": CONFORMANT}, obs, name), lossy))
    return rows


def _mode_spelling(spec: Spec, spelling: str) -> str:
    if spec.canonical_mode(spelling) is None:
        raise KeyError(f"spec/modes.toml lacks mode spelling {spelling}")
    return spelling


# ---- the suite --------------------------------------------------------------------------------
def run_litmus(spec: Spec | None = None) -> LitmusResult:
    """Run every litmus case; pure (no files)."""
    spec = spec or spec_mod.load()
    rows: list[LitmusRow] = []
    traces: list[LitmusTrace] = []
    for c in _cases():
        row, trace = _run_case(spec, c)
        rows.append(row)
        traces.append(trace)
    l3 = next(t for t in traces if t.name == "L3.kvt")
    rows.append(_l7(spec, l3))
    for row, trace in _c1(spec):
        rows.append(row)
        if trace is not None:
            traces.append(trace)
    for c in _sweep_cases():
        row, trace = _run_case(spec, c)
        rows.append(row)
        traces.append(trace)
    return LitmusResult(tuple(rows), tuple(traces))


def render_traces(result: LitmusResult, spec: Spec | None = None) -> dict[str, str]:
    """File name -> file text for traces/litmus/: each .kvt plus the expected-verdicts file."""
    from kvclaims.trace.write import write_kvt

    spec = spec or spec_mod.load()
    files: dict[str, str] = {}
    expected: dict[str, Any] = {}
    for t in result.traces:
        buf = io.StringIO()
        write_kvt(t.events, buf, spec=spec)
        files[t.name] = buf.getvalue()
        expected[t.name] = {"verdict": t.verdict, "violated": list(t.rules)}
    files[EXPECTED_FILE] = json.dumps(expected, indent=2, sort_keys=True) + "\n"
    return files


def write_traces(out_dir: str | Path, result: LitmusResult | None = None) -> list[Path]:
    """Write the litmus traces and expected verdicts into `out_dir` (created if missing)."""
    result = result or run_litmus()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(render_traces(result).items()):
        path = out / name
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        written.append(path)
    return written


def litmus_command(out_dir: str | None, fmt: str,
                   write: Callable[[str], Any] | None = None) -> int:
    """`kvclaims litmus [--out DIR] [--format text|json]`: 0 if every case agrees, else 1."""
    from kvclaims.report.litmus_text import render_json, render_text

    if fmt not in ("text", "json"):
        raise ValueError(f"unknown format {fmt!r}: text or json")
    result = run_litmus()
    if out_dir is not None:
        write_traces(out_dir, result)
    text = render_json(result) if fmt == "json" else render_text(result)
    (write or sys.stdout.write)(text)
    return 0 if result.ok else 1
