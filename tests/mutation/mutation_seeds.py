"""Conformant seed traces for the mutation suite, and the one decision path mutants go through.

Seeds (issue 15 item 3): the reference corpus's JSON Lines files, traces/litmus, traces/vllm,
traces/kvrm, traces/rules/ok-*, traces/partial, and MicroRuntime runs of every correct policy
(kvclaims.fuzz.strategies.CORRECT_POLICIES) on fixed workloads. Claim-bearing seeds are also
re-declared in every mode of spec/modes.toml (the acceptance's protection_mode rewritten). A seed
is kept only if the public decision path (kvclaims.run.check_path, engine auto) finds it
conformant, so every mutant starts from a trace the checker passes.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kvclaims.check.verdict import CONFORMANT, Report
from kvclaims.fuzz.strategies import CORRECT_POLICIES
from kvclaims.run import Options, check_path
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import (
    RECOMPUTE,
    SLIDING_WINDOW,
    ClaimSpec,
    PrefixSpec,
    RequestSpec,
    Workload,
)
from kvclaims.trace.model import Event, Skew
from kvclaims.trace.partial_input import read_partial
from kvclaims.trace.write import write_jsonl
from mutation_view import (
    CLAIM_ID,
    MODE,
    PREFIX_ID,
    REQUEST_ID,
    SPEC,
    VICTIM_REASON,
    E,
    View,
)

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"
ARTIFACTS = ROOT.parent / "shared" / "corpus" / "resident-kv-artifacts" / "artifacts"


@dataclass(frozen=True, slots=True)
class Seed:
    name: str
    events: tuple[Event, ...]
    skews: tuple[Skew, ...] = ()


# ---- the decision path ------------------------------------------------------------------------
class Decider:
    """Writes a trace as JSON Lines and decides it with kvclaims.run.check_path (engine auto:
    the replay for totally ordered traces, the Z3 engine for batches and skews)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kvclaims-mutation-")
        self._n = 0

    def decide(self, events: tuple[Event, ...], skews: tuple[Skew, ...] = ()) -> Report:
        self._n += 1
        path = Path(self._dir.name) / f"t{self._n % 64}.jsonl"
        out = io.StringIO()
        write_jsonl(events, out)
        path.write_text(out.getvalue(), encoding="utf-8")
        return check_path(str(path), SPEC, Options(engine="auto", skews=skews,
                                                    solver_timeout_ms=20_000))

    def close(self) -> None:
        self._dir.cleanup()


# ---- where seeds come from ---------------------------------------------------------------------
def _read(path: Path) -> Seed:
    trace = read_partial(str(path), str(path), SPEC)
    return Seed(path.relative_to(path.parents[1]).as_posix(), tuple(trace.events),
                tuple(trace.skews))


def corpus() -> list[Seed]:
    out = []
    for p in sorted(ARTIFACTS.rglob("*.jsonl")):
        s = _read(p)
        out.append(Seed("corpus:" + p.relative_to(ARTIFACTS).as_posix(), s.events, s.skews))
    return out


def _expected_conformant(folder: str) -> list[Path]:
    d = TRACES / folder
    data = json.loads((d / "expected.json").read_text())
    return [d / name for name, exp in sorted(data.items())
            if exp.get("verdict") == CONFORMANT and (d / name).exists()]


def project_traces() -> list[Seed]:
    paths = [*_expected_conformant("litmus"), *_expected_conformant("vllm/0.34.0"),
             *_expected_conformant("kvrm"), *sorted((TRACES / "rules").glob("ok-*.kvt")),
             *sorted((TRACES / "partial").glob("*.kvt")),
             *sorted((TRACES / "partial").glob("*.jsonl"))]
    return [_read(p) for p in paths if p.suffix in (".kvt", ".jsonl")]


def workloads() -> list[tuple[str, Workload]]:
    """Fixed workloads for the MicroRuntime: pressure on one claim (with and without a TTL, a
    restore failure of each outcome), two claims of which one is best effort, no pressure,
    chunked and windowed requests; then a few drawn from a fixed random seed."""
    fixed: list[tuple[str, Workload]] = [
        ("press", Workload(8, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 3)),),
                           (RequestSpec("r0", (6,)), RequestSpec("r1", (1,), reuses="p0")))),
        ("ttl", Workload(8, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 3, duration_steps=1)),),
                         (RequestSpec("r0", (6,)), RequestSpec("r1", (1,), reuses="p0")))),
        ("whole", Workload(6, (PrefixSpec("p0", 5, ClaimSpec("claim:p0", 5)),),
                           (RequestSpec("r0", (4,)),))),
        ("two", Workload(10, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 2)),
                              PrefixSpec("p1", 3, ClaimSpec("claim:p1", 3, protected=False))),
                         (RequestSpec("r0", (7,)), RequestSpec("r1", (2,), reuses="p1")))),
        ("calm", Workload(12, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 4)),),
                          (RequestSpec("r0", (3,)), RequestSpec("r1", (1,), reuses="p0")))),
        ("chunks", Workload(9, (PrefixSpec("p0", 5, ClaimSpec("claim:p0", 4)),),
                            (RequestSpec("r0", (2, 2, 2)),))),
        ("window", Workload(9, (PrefixSpec("p0", 5, ClaimSpec("claim:p0", 2)),),
                            (RequestSpec("r0", (3, 3, 3), SLIDING_WINDOW, 5),
                             RequestSpec("r1", (2, 2), RECOMPUTE)))),
    ]
    for outcome in sorted(SPEC.offload_outcome_events):
        fixed.append((f"restore-{outcome}", Workload(
            8, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 3, restore_fails=True,
                                              failure_outcome=outcome)),),
            (RequestSpec("r0", (6,)), RequestSpec("r1", (1,), reuses="p0")))))
    rng = random.Random(15)
    for k in range(6):
        usable = rng.randint(4, 12)
        blocks = rng.randint(1, usable - 1)
        claim = ClaimSpec("claim:p0", rng.randint(1, blocks),
                          duration_steps=rng.choice((None, 1, 2)))
        need = rng.randint(usable - blocks, usable)
        reqs = [RequestSpec("r0", (need,))]
        if rng.random() < 0.5:
            reqs.append(RequestSpec("r1", (1,), reuses="p0"))
        fixed.append((f"drawn{k}", Workload(usable, (PrefixSpec("p0", blocks, claim),),
                                            tuple(reqs))))
    return fixed


def policy_label(p: P.Policy) -> str:
    args = [f"defer={p.defer_attempts}" if p.defer_attempts else "",
            f"reserve={p.reserve_blocks}" if p.reserve_blocks is not None else "",
            p.free_order if p.free_order != P.TAIL_FIRST else ""]
    return ",".join([p.name, *(a for a in args if a)])


def micro() -> list[Seed]:
    out = []
    for wname, wl in workloads():
        for pol in CORRECT_POLICIES:
            events = tuple(run(wl, pol).events)
            out.append(Seed(f"micro:{policy_label(pol)}/{wname}", events))
    return out


BATCH_KEY = SPEC.order.batch_fields[-1]  # the runtime's batch number (kv_batch_seq)
BATCHED_WORKLOADS = ("press", "two", "calm")


def batched(seed: Seed) -> Seed | None:
    """The seed with each run of allocations of free blocks to one request, and each run of one
    prefix's block materializations, delivered as one numbered batch of unknown inner order (as
    vLLM's KV event batches are): every admissible order is the same pool, so it stays
    conformant; decided by the Z3 engine."""
    runs: list[list[int]] = []
    key = None
    for i, e in enumerate(seed.events):
        k = ((e.kind, e.fields.get(REQUEST_ID)) if e.kind == E.victim and
             e.fields.get(VICTIM_REASON) == SPEC.values["uncached_victim_reason"] else
             (e.kind, e.fields.get(PREFIX_ID)) if e.kind == E.block_materialized else None)
        if k is not None and k == key:
            runs[-1].append(i)
        elif k is not None:
            runs.append([i])
        key = k
    runs = [r for r in runs if len(r) >= 2]
    if len(runs) < 2:
        return None
    events = list(seed.events)
    for n, run_ in enumerate(runs, start=1):
        for i in run_:
            events[i] = Event(events[i].kind, {**events[i].fields, BATCH_KEY: n},
                              events[i].line, events[i].column)
    return Seed(seed.name + "+batched", tuple(events), seed.skews)


def redeclared(seed: Seed, mode: str) -> Seed | None:
    """The seed with every claim declared in `mode` (its protection_mode rewritten on every
    event naming the claim); None when it has no claim or already is in that mode."""
    v = View(seed.events)
    if not v.claims or all(c.mode == mode for c in v.claims.values()):
        return None
    ids = set(v.claims)
    events = tuple(Event(e.kind, {**e.fields, MODE: mode}, e.line, e.column)
                   if e.fields.get(CLAIM_ID) in ids and (MODE in e.fields or e.kind == E.accepted)
                   else e
                   for e in seed.events)
    return Seed(f"{seed.name}@{mode}", events, seed.skews)


@dataclass(frozen=True, slots=True)
class SeedSet:
    kept: tuple[Seed, ...]
    rejected: tuple[tuple[str, str], ...]  # (seed name, its verdict): not conformant


def conformant_seeds(decider: Decider, *, with_corpus: bool = True,
                     redeclare: bool = True) -> SeedSet:
    base = [*(corpus() if with_corpus else []), *project_traces(), *micro()]
    kept: list[Seed] = []
    rejected: list[tuple[str, str]] = []
    base += [b for s in base if s.name.startswith("micro:")
             and s.name.split("/")[-1] in BATCHED_WORKLOADS
             for b in [batched(s)] if b is not None]
    for s in base:
        verdict = decider.decide(s.events, s.skews).verdict
        if verdict != CONFORMANT:
            rejected.append((s.name, verdict))
            continue
        kept.append(s)
        if not redeclare or s.name.startswith("corpus:") or s.name.endswith("+batched"):
            continue
        for mode in SPEC.modes:
            r = redeclared(s, mode)
            if r is None:
                continue
            verdict = decider.decide(r.events, r.skews).verdict
            if verdict == CONFORMANT:
                kept.append(r)
            else:
                rejected.append((r.name, verdict))
    return SeedSet(tuple(kept), tuple(rejected))
