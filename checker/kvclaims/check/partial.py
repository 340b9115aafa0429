"""Partly ordered traces: which orders are admissible, and whether every, no, or some conforms.

Decides, for a trace with unordered batches and skewed merged sources (docs/partial.md), the
three-valued answer of docs/model.md §6 over all admissible linearizations, with the Z3 encoding of
:mod:`kvclaims.check.z3model`:

- *conformant*: no admissible order violates a rule (and none is unknown);
- *violation*: every admissible order violates a rule;
- *inconclusive*: some orders conform and others violate (an R-stream finding names the
  unordered part that decides it), or an unknown finding is possible, or the solver gave up.

Order semantics: the written order holds except inside a batch (maximal run of consecutive events
with the same batch key), whose events may come in any order while the batch keeps its place, and
between events of two sources declared skewed by δ, which may interleave when their times differ by
at most δ. Each maximal stretch of the trace that such freedom spans is a *segment*; its events get
solver position variables; everywhere else the position is the written one. R-stream (gaps) is
decided on the written stream: inside a segment the order fields are taken sorted, which is the
numbering a witness linearization is written with.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import z3

from kvclaims.check.commute import batch_leaders, conflicting
from kvclaims.check.progress import DeferBound
from kvclaims.check.replay import Replay
from kvclaims.check.state import RuleIds
from kvclaims.check.verdict import (
    CONFORMANT,
    INCONCLUSIVE,
    INPUT_ERROR,
    UNKNOWN,
    VIOLATION,
    Finding,
    InputProblem,
    Report,
    levels_agree,
)
from kvclaims.check.z3model import Encoding, Slot, SymFinding
from kvclaims.solver import SolverUnknown, ask
from kvclaims.solver import timeout_ms as solver_timeout_ms
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

SEQUENCE_FIELD = "event_sequence"  # the replay's total-order field (docs/checking.md)
DEFAULT_TIMEOUT_MS = 60_000
_QUOTE_CHARS = 400


@dataclass(frozen=True)
class Segment:
    """Events first..last (file indices, inclusive) whose order the solver chooses."""

    first: int
    last: int
    free: frozenset[tuple[int, int]]  # pairs (x < y) that may come in either order


@dataclass(frozen=True)
class Layout:
    slots: tuple[Slot, ...]
    segments: tuple[Segment, ...]
    constraints: tuple[Any, ...]
    positions: dict[int, Any]  # event index -> its Z3 position variable (segment events only)


def _time(ev: Event, fields: Sequence[str]) -> int | None:
    for name in fields:
        v = ev.fields.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def free_pairs(events: Sequence[Event], batches: Iterable[tuple[int, int]],
               skews: Iterable[Any], source_field: str, time_fields: Sequence[str],
               ) -> set[tuple[int, int]]:
    """Pairs of event indices (x < y) whose relative order is unknown."""
    free: set[tuple[int, int]] = set()
    for start, end in batches:
        for x in range(start, end):
            for y in range(x + 1, end):
                free.add((x, y))
    for sk in skews:
        a_src, b_src, delta = sk.source_a, sk.source_b, sk.delta_ns
        timed_b: list[tuple[int, int]] = []
        a_events: list[tuple[int, int]] = []
        for i, ev in enumerate(events):
            src = ev.fields.get(source_field)
            t = _time(ev, time_fields)
            if t is None:
                continue
            if src == b_src:
                timed_b.append((t, i))
            if src == a_src:
                a_events.append((t, i))
        timed_b.sort()
        times = [t for t, _ in timed_b]
        for t, i in a_events:
            lo = bisect.bisect_left(times, t - delta)
            hi = bisect.bisect_right(times, t + delta)
            for _, j in timed_b[lo:hi]:
                if i != j:
                    free.add((min(i, j), max(i, j)))
    return free


def _segments(n: int, free: set[tuple[int, int]]) -> list[tuple[int, int]]:
    reach: dict[int, int] = {}  # the farthest partner of each first event: no sort of pairs
    for x, y in free:
        if reach.get(x, -1) < y:
            reach[x] = y
    out: list[tuple[int, int]] = []
    for x in sorted(reach):
        y = reach[x]
        if out and x <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], y))
        else:
            out.append((x, y))
    return out


def _stream_breaks(events: Sequence[Event], segs: list[tuple[int, int]],
                   time_fields: Sequence[str]) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """R-stream on the written stream (segments sorted): slot -> message; and the order-field
    values each slot of a segment gets in a witness."""
    values: list[tuple[Any, Any]] = [(ev.fields.get(SEQUENCE_FIELD), _time(ev, time_fields))
                                     for ev in events]
    renumber: dict[int, dict[str, Any]] = {}
    mixed: dict[int, str] = {}
    for a, b in segs:
        for name in (SEQUENCE_FIELD, *time_fields):
            have = [events[i].fields.get(name) for i in range(a, b + 1)]
            present = [v for v in have if v is not None]
            if not present:
                continue
            if len(present) != len(have):
                mixed[a] = (f"order field {name} is missing on some events of the unordered "
                            f"part at events {a}..{b}: its stream cannot be checked")
                continue
            for k, v in enumerate(sorted(present)):
                renumber.setdefault(a + k, {})[name] = v
        for k in range(a, b + 1):
            r = renumber.get(k, {})
            renumbered_time = next((r[t] for t in time_fields if t in r), values[k][1])
            values[k] = (r.get(SEQUENCE_FIELD, values[k][0]), renumbered_time)
    breaks: dict[int, str] = dict(mixed)
    last_seq: int | None = None
    last_ts: float = float("-inf")
    for k, (seq, ts) in enumerate(values):
        if seq is not None:
            if last_seq is not None and seq != last_seq + 1:
                breaks.setdefault(k, f"sequence jumps from {last_seq} to {seq}: "
                                     f"{seq - last_seq - 1} events missing" if seq > last_seq
                                  else f"sequence goes back from {last_seq} to {seq}")
            if last_seq is None or seq > last_seq:
                last_seq = seq
        elif ts is not None:
            if ts < last_ts:
                breaks.setdefault(k, f"timestamp decreases from {last_ts} to {ts}: order unknown")
            last_ts = ts
    return breaks, renumber


def layout(events: Sequence[Event], free: set[tuple[int, int]], ctx: z3.Context,
           time_fields: Sequence[str],
           solver_spans: Iterable[tuple[int, int]] = (),
           leaders: frozenset[int] = frozenset()) -> Layout:
    """`solver_spans`: stretches whose events get solver positions although their order is
    known (decide(fold=False)); they add no free pair and leave R-stream on the written stream.

    `leaders` (check/commute.py, Independence.leaders): events of a conflicting batch that are
    independent of every other event of it. Each comes before every other event of its batch
    (among themselves in the written order), so only the rest is placed by the solver; the batch
    stays one unordered part (R-stream reads its sorted order fields). An event that can take one
    position only is placed there with no solver variable (its slot folds)."""
    n = len(events)
    lead_spans = set()
    for a, b in _segments(n, free):
        if any(a <= i <= b for i in leaders):
            lead_spans.add((a, b))
    reduced = {p for p in free if p[0] not in leaders and p[1] not in leaders}
    segs = _segments(n, free)
    free = reduced
    breaks, _ = _stream_breaks(events, segs, time_fields)
    seg_of: dict[int, tuple[int, int]] = {}
    for a, b in _segments(n, free | set(solver_spans) | lead_spans):
        for i in range(a, b + 1):
            seg_of[i] = (a, b)
    positions: dict[int, Any] = {}
    constraints: list[Any] = []
    slots: list[Slot] = []
    segments: list[Segment] = []
    k = 0
    while k < n:
        if k not in seg_of:
            slots.append(Slot(k, ((k, True),), breaks.get(k)))
            k += 1
            continue
        a, b = seg_of[k]
        members = range(a, b + 1)
        seg_free = frozenset(p for p in free if a <= p[0] and p[1] <= b)
        before = {i: 0 for i in members}
        after = {i: 0 for i in members}
        fixed: list[tuple[int, int]] = []
        for x in members:
            for y in range(x + 1, b + 1):
                if (x, y) not in seg_free:
                    # a leader comes before every other event of its batch
                    e, l_ = (y, x) if y in leaders and x not in leaders else (x, y)
                    fixed.append((e, l_))
                    after[e] += 1
                    before[l_] += 1
        # One-hot placement: at[i, s] <=> event i is at position s. Each event has one position,
        # each position one event, and a fixed pair keeps its order. Positions an event cannot
        # take (too many events must precede or follow it) get no variable.
        # A leader takes one position only (its rank among the leaders): placed, no variable.
        pinned = {i: a + before[i] for i in members
                  if i in leaders and a + before[i] == b - after[i]}
        taken = set(pinned.values())
        at: dict[tuple[int, int], Any] = {}
        for i in members:
            if i in pinned:
                positions[i] = z3.IntVal(pinned[i], ctx)
                continue
            for s in range(a + before[i], b - after[i] + 1):
                if s not in taken:
                    at[i, s] = z3.Bool(f"at_{i}_{s}", ctx)
            constraints.append(z3.PbEq([(at[i, s], 1) for s in range(a, b + 1) if (i, s) in at],
                                       1))
            positions[i] = z3.Sum(*[z3.If(at[i, s], z3.IntVal(s, ctx), z3.IntVal(0, ctx))
                                    for s in range(a, b + 1) if (i, s) in at])
        for s in members:
            if s not in taken:
                constraints.append(z3.PbEq([(at[i, s], 1) for i in members if (i, s) in at], 1))
        for x, y in fixed:
            if x in pinned and y in pinned:
                if pinned[x] > pinned[y]:
                    constraints.append(z3.BoolVal(False, ctx))
                continue
            if x in pinned and pinned[x] < a + before[y]:
                continue  # x is placed before every position y can take
            for s in range(a, b + 1):
                if (y, s) in at or pinned.get(y) == s:
                    earlier = ([z3.BoolVal(pinned[x] < s, ctx)] if x in pinned else
                               [at[x, j] for j in range(a, s) if (x, j) in at])
                    guard = at[y, s] if (y, s) in at else z3.BoolVal(True, ctx)
                    constraints.append(z3.Implies(guard, z3.Or(*earlier) if earlier
                                                  else z3.BoolVal(False, ctx)))
        segments.append(Segment(a, b, seg_free))
        by_slot = {s: i for i, s in pinned.items()}
        for s in members:
            if s in by_slot:
                slots.append(Slot(s, ((by_slot[s], True),), breaks.get(s)))
                continue
            cands = tuple((i, at[i, s]) for i in members if (i, s) in at)
            slots.append(Slot(s, cands, breaks.get(s)))
        k = b + 1
    return Layout(tuple(slots), tuple(segments), tuple(constraints), positions)


def order_matters(segments: Sequence[Segment], conds: Iterable[Any], defs: Iterable[Any],
                  ) -> tuple[Segment, ...]:
    """The unordered parts whose order some finding's condition reads (docs/partial.md, "Which
    parts the report details").

    A condition is a formula over the placement variables `at_i_s` of the layout and the fresh
    state variables the encoding defines (`fresh == value`, Encoding.defs); the variables it reads
    are closed over those definitions. A part none of whose placement variables is read has the
    same truth value for every condition in every one of its orders: every admissible order of it
    gives the same findings, so neither the verdict nor a finding depends on it. The answer
    over-approximates (a part read by a condition may still commute), never the converse.
    """
    defined = {d.arg(0).get_id(): d.arg(1) for d in defs}
    read: set[int] = set()
    seen: set[int] = set()
    stack = [c for c in conds if z3.is_expr(c)]
    while stack:
        e = stack.pop()
        key = e.get_id()
        if key in seen:
            continue
        seen.add(key)
        if z3.is_const(e) and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            name = e.decl().name()
            if name.startswith("at_"):
                read.add(int(name.split("_")[1]))
            elif key in defined:
                stack.append(defined[key])
            continue
        stack.extend(e.children())
    marks = sorted(read)
    return tuple(s for s in segments
                 if bisect.bisect_right(marks, s.last) > bisect.bisect_left(marks, s.first))


# ---- deciding --------------------------------------------------------------------------------
def _quote(ev: Event) -> str | None:
    q = ev.text
    if isinstance(q, (bytes, bytearray)):
        q = bytes(q[:_QUOTE_CHARS]).decode("utf-8", "replace")
    return q.rstrip("\r\n")[:_QUOTE_CHARS] if q is not None else None


def _findings(events: Sequence[Event], found: Iterable[SymFinding],
              ) -> list[Finding]:
    """Findings as the replay reports them: the first per (rule, claim, status), by position."""
    seen: set[tuple[str, str | None, str]] = set()
    out: list[Finding] = []
    for sf in sorted(found, key=lambda x: x.order):
        key = (sf.rule, sf.claim_id, sf.status)
        if key in seen:
            continue
        seen.add(key)
        ev = events[sf.event]
        out.append(Finding(status=sf.status, rule=sf.rule, message=sf.message, line=ev.line,
                           column=ev.column, event_index=sf.slot, event=ev.kind,
                           claim_id=sf.claim_id, request_id=ev.fields.get("request_id"),
                           state_before=sf.state_before, quote=_quote(ev)))
    out.sort(key=lambda x: (x.event_index, x.rule))
    return out


def _verdict_of(findings: Sequence[Finding]) -> str:
    statuses = {f.status for f in findings}
    if VIOLATION in statuses:
        return VIOLATION
    if UNKNOWN in statuses:
        return INCONCLUSIVE
    return CONFORMANT


def witness_events(events: Sequence[Event], order: Sequence[int], spec: Spec,
                   batch_fields: Sequence[str], renumber: dict[int, dict[str, Any]]
                   ) -> list[Event]:
    """A linearization as a totally ordered trace: batch keys dropped, and each unordered part's
    order fields renumbered (sorted values in the new order) so that it re-checks as written."""
    out = []
    for k, i in enumerate(order):
        ev = events[i]
        fields = {name: v for name, v in ev.fields.items() if name not in batch_fields}
        for name, v in renumber.get(k, {}).items():
            if name in fields:
                fields[name] = v
        out.append(Event(ev.kind, fields, ev.line, ev.column, ev.text))
    return out


def _tables(spec: Spec, events: Sequence[Event], file: str,
            defer_bounds: Sequence[DeferBound] = ()) -> Report:
    rp = Replay(spec, file, max_claims=1 << 62, defer_bounds=tuple(defer_bounds))
    rp.feed_all(events)
    return rp.finish()


def _assemble(spec: Spec, file: str, events: Sequence[Event], order: Sequence[int],
              findings: list[Finding], verdict: str, error: InputProblem | None,
              extra: dict[str, Any], batch_fields: Sequence[str],
              renumber: dict[int, dict[str, Any]],
              possible: frozenset[tuple[str, str | None]] | None = None,
              defer_bounds: Sequence[DeferBound] = ()) -> Report:
    """The Z3 engine's verdict and findings with the §7 outcome tables of the linearization.

    The tables' claim statuses are those of the one order `order`; they are brought in line with
    the decided findings (check.verdict.levels_agree): `possible` names the (rule, claim) pairs
    some admissible order could fail (None: any)."""
    linear = witness_events(events, order, spec, batch_fields, renumber)
    tables = _tables(spec, linear, file, defer_bounds)
    claims = levels_agree(tables.claims, tuple(findings), verdict, possible)
    if "linearizations" in extra:
        extra = {**extra, "conflicting_parts": _conflicting_parts(spec, events, extra,
                                                                  batch_fields, renumber)}
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    # Every occurrence: the chosen order's replay counts them all (findings list the first per
    # rule, claim and status), for the rules the decided findings name.
    for rule in counts:
        counts[rule] = max(counts[rule], tables.finding_counts.get(rule, 0))
    if error is not None:
        verdict = INPUT_ERROR
    return Report(file=file, verdict=verdict, events=len(events), findings=tuple(findings),
                  finding_counts=counts, claims=claims, requests=tables.requests,
                  prefixes=tables.prefixes,
                  cached_resident_victims=tables.cached_resident_victims,
                  resident_preserved=tables.resident_preserved,
                  protected_resident_blocks=tables.protected_resident_blocks,
                  error=error, extra=extra)


def _spell(ev: Event, spec: Spec, kvt_line: Any) -> str:
    """The event as a .kvt line; one outside the vocabulary has none: a JSON comment instead."""
    try:
        return kvt_line(ev, spec)
    except ValueError:
        import json

        return "# " + json.dumps({"event": ev.kind, **ev.fields}, default=str)


def _conflicting_parts(spec: Spec, events: Sequence[Event], extra: dict[str, Any],
                       batch_fields: Sequence[str], renumber: dict[int, dict[str, Any]]
                       ) -> list[dict[str, Any]]:
    """The details a report carries of each unordered part whose order matters (`conflicting`,
    see order_matters): its events and lines, and each witness's order of it (event indices and
    .kvt lines). The other parts are only counted: the reports stay as small as the conflicting
    parts (`--witness` writes the whole orders)."""
    from kvclaims.trace.write import kvt_line

    linear = {name: witness_events(events, extra[name], spec, batch_fields, renumber)
              for name in ("violating", "conforming") if extra.get(name) is not None}
    out: list[dict[str, Any]] = []
    for a, b in extra.get("conflicting", ()):
        out.append({"events": [a, b], "lines": [events[a].line, events[b].line],
                    "orders": {name: extra[name][a:b + 1] for name in linear},
                    "witnesses": {name: [_spell(ev, spec, kvt_line) for ev in lin[a:b + 1]]
                                  for name, lin in linear.items()}})
    return out


def decide(spec: Spec, events: Sequence[Event], *, file: str = "-",
           batches: Iterable[tuple[int, int]] = (), skews: Iterable[Any] = (),
           error: InputProblem | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS,
           batch_fields: Sequence[str] | None = None, source_field: str | None = None,
           fold: bool = True, defer_bounds: Sequence[DeferBound] = (),
           reduce: bool = True) -> Report:
    """The Z3 engine: decide `events` over every admissible order (see the module docstring).

    `fold=False` gives every event a solver position even when its order is known (a test mode
    that sends a totally ordered trace through the solver instead of folding it).
    `reduce` (with `fold`): a batch whose events all commute keeps its written order, which
    decides every order of it (check/commute.py, docs/partial.md); `reduce=False` encodes every
    batch (the full encoding the reduction is tested against).
    """
    R = RuleIds(spec)
    ctx = z3.Context()
    skews = tuple(skews)
    order = spec.order
    batch_fields = order.batch_fields if batch_fields is None else batch_fields
    source_field = order.source_field if source_field is None else source_field
    leaders: frozenset[int] = frozenset()
    if fold and reduce:
        batches = conflicting(spec, events, batches, defer_bounds)
        if not skews:  # each unordered part is one batch: its leaders come first
            leaders = batch_leaders(spec, events, batches, defer_bounds)
    free = free_pairs(events, batches, skews, source_field, order.time_fields)
    # fold=False: one solver stretch over the whole trace with every pair fixed, so the solver
    # must find the written order itself
    spans = [(0, len(events) - 1)] if not fold and len(events) > 1 else []
    lay = layout(events, free, ctx, order.time_fields, spans, leaders)
    segs = _segments(len(events), free)
    _, renumber = _stream_breaks(events, segs, order.time_fields)
    kvrm = spec.events_of_scope("kvrm")
    out_of_scope = next((i for i, ev in enumerate(events) if ev.kind in kvrm), None)
    if out_of_scope is not None:
        ev = events[out_of_scope]
        f = Finding(status=UNKNOWN, rule=R.vocabulary, message=(
            f"'{ev.kind}' is a KV-RM event (docs/model.md §10): rules K1-K5 are decided by the replay "
            "engine only, so the Z3 engine leaves this trace inconclusive"), line=ev.line,
            column=ev.column, event_index=out_of_scope, event=ev.kind)
        return _assemble(spec, file, events, list(range(len(events))), [f], INCONCLUSIVE, error,
                         {"engine": "z3", "order": "total" if not segs else "partial"},
                         batch_fields, renumber, defer_bounds=defer_bounds)
    enc = Encoding(spec, events, ctx, defer_bounds)
    found = enc.run(lay.slots) if events else []
    written = list(range(len(events)))
    possible = frozenset((sf.rule, sf.claim_id) for sf in found if sf.cond is not False)
    if not lay.segments:
        fs = _findings(events, [f for f in found if f.cond is True])
        return _assemble(spec, file, events, written, fs, _verdict_of(fs), error,
                         {"engine": "z3", "order": "total"}, batch_fields, renumber, possible,
                         defer_bounds=defer_bounds)
    base = [*lay.constraints, *enc.defs]
    # Only the parts whose order a finding reads are detailed and located (order_matters).
    matter = order_matters(lay.segments, [f.cond for f in found], enc.defs)
    named = matter or lay.segments
    reasons: list[str] = []
    viol = [f.cond for f in found if f.status == VIOLATION]
    unk = [f.cond for f in found if f.status == UNKNOWN]
    V = z3.Or(*[_b(c, ctx) for c in viol]) if viol else z3.BoolVal(False, ctx)
    U = z3.Or(*[_b(c, ctx) for c in unk]) if unk else z3.BoolVal(False, ctx)

    def check(*extra: Any) -> tuple[z3.CheckSatResult, z3.ModelRef | None]:
        # A fresh solver per question rather than push/pop (Z3's incremental core). Neither is
        # faster on every question (bench/z3.md): on the 50-event batch, "is there a violating
        # order?" took 3.8 s fresh against 31 s with push/pop, "a non-violating one?" timed out
        # fresh and took 6.6 s with push/pop. The written order usually answers the latter.
        solver = z3.Solver(ctx=ctx)
        solver.add(*base, *extra)
        try:
            r = ask(solver, timeout=timeout_ms)  # an interrupt stops here (KeyboardInterrupt)
        except SolverUnknown as unknown:
            reasons.append(unknown.reason)
            return z3.unknown, None
        return r, (solver.model() if r == z3.sat else None)

    # The written order is admissible: decide it first (folded, no solver). The solver is then
    # asked only the question the written order does not answer.
    plain = Encoding(spec, events, z3.Context(), defer_bounds)
    plain_found = plain.run(tuple(Slot(k, ((k, True),), sl.stream)
                                  for k, sl in enumerate(lay.slots)))
    w_status = {f.status for f in plain_found}
    as_written = [c for sl in lay.slots if len(sl.candidates) > 1
                  for e, c in sl.candidates if e == sl.index]
    _, written_model = check(*as_written)  # every placement fixed: propagation only
    if written_model is None:  # the solver gave up even here: ask it everything below
        w_status = {VIOLATION, UNKNOWN}
        r_viol, m_viol = check(V)
    elif VIOLATION in w_status:
        r_viol, m_viol = z3.sat, written_model
    else:
        r_viol, m_viol = check(V)
    if not w_status and written_model is not None:
        r_ok, m_ok = z3.sat, written_model
    else:
        r_ok, m_ok = check(z3.Not(V), z3.Not(U))
    if r_ok == z3.sat:
        r_nv, m_nv = r_ok, m_ok
    elif VIOLATION not in w_status and written_model is not None:
        r_nv, m_nv = z3.sat, written_model
    else:
        r_nv, m_nv = check(z3.Not(V))
    spans = ", ".join(f"events {s.first}..{s.last} (lines {events[s.first].line}.."
                      f"{events[s.last].line})" for s in named)
    if not matter:
        spans = (f"{len(lay.segments)} unordered part(s) (events {lay.segments[0].first}.."
                 f"{lay.segments[-1].last})") if len(lay.segments) > 1 else spans

    def order_of(m: z3.ModelRef) -> list[int]:
        pos = {i: m.eval(p, model_completion=True).as_long() for i, p in lay.positions.items()}
        return sorted(range(len(events)), key=lambda i: pos.get(i, i))

    def chosen(m: z3.ModelRef) -> list[SymFinding]:
        return [f for f in found
                if f.cond is True or z3.is_true(m.eval(_b(f.cond, ctx), model_completion=True))]

    extra: dict[str, Any] = {"engine": "z3", "order": "partial",
                             "unordered": [[s.first, s.last] for s in lay.segments],
                             "conflicting": [[s.first, s.last] for s in matter]}
    r_unk, m_unk = z3.unsat, None
    if r_viol == z3.unsat and r_ok == z3.sat:
        # No order violates; a pass also needs no order in which a rule is unknown.
        r_unk, m_unk = check(U)
    if z3.unknown in (r_viol, r_nv, r_ok, r_unk):
        f = Finding(status=UNKNOWN, rule=R.stream, message=(
            f"the solver could not decide every admissible order of {spans} within "
            f"{solver_timeout_ms(timeout_ms)} ms (solver answered unknown: "
            f"{'; '.join(reasons)}): inconclusive, never a pass"),
            line=events[named[0].first].line, column=1,
            event_index=named[0].first, event=events[named[0].first].kind)
        extra["linearizations"] = "unknown"
        extra["solver"] = f"solver answered unknown: {'; '.join(reasons)}"
        return _assemble(spec, file, events, written, [f], INCONCLUSIVE, error, extra,
                         batch_fields, renumber, None,
                         defer_bounds=defer_bounds)
    if r_viol == z3.unsat:
        m = m_unk if m_unk is not None else m_ok if m_ok is not None else m_nv
        assert m is not None
        order = order_of(m)
        fs = _findings(events, chosen(m))
        extra["linearizations"] = "all_conform" if m_unk is None and not fs else "none_violate"
        if m_ok is not None:
            extra["conforming"] = order_of(m_ok)
        return _assemble(spec, file, events, order, fs, _verdict_of(fs), error, extra,
                         batch_fields, renumber, possible,
                         defer_bounds=defer_bounds)
    assert m_viol is not None
    order = order_of(m_viol)
    extra["violating"] = order
    fs = _findings(events, chosen(m_viol))
    if r_nv == z3.unsat:
        extra["linearizations"] = "all_violate"
        # Every order violates some rule, but a finding of this witness that some order avoids
        # is not a fact of the trace: it is unknown at every level (one question per finding).
        avoidable: list[Finding] = []
        for f in fs:
            if f.status != VIOLATION:
                continue
            conds = [_b(sf.cond, ctx) for sf in found if sf.status == VIOLATION
                     and sf.rule == f.rule and sf.claim_id == f.claim_id]
            if check(z3.Not(z3.Or(*conds)))[0] != z3.unsat:
                avoidable.append(f)
        if avoidable:
            fs = [replace(f, status=UNKNOWN, message=f.message + " (some admissible orders "
                          "avoid this one; every order violates a rule)") if f in avoidable
                  else f for f in fs]
            if not any(f.status == VIOLATION for f in fs):
                which = ", ".join(f"{f.rule}" + (f" (claim {f.claim_id})" if f.claim_id else "")
                                  for f in avoidable)
                first = named[0]
                fs.append(Finding(status=VIOLATION, rule=avoidable[0].rule, message=(
                    f"every admissible order of {spans} violates one of {which}; which one "
                    "depends on the order (see the violating witness)"),
                    line=events[first.first].line, column=1, event_index=first.first,
                    event=events[first.first].kind))
                fs.sort(key=lambda x: (x.event_index, x.rule))
        return _assemble(spec, file, events, order, fs, VIOLATION, error, extra, batch_fields,
                         renumber, possible, defer_bounds=defer_bounds)
    assert m_nv is not None
    extra["linearizations"] = "some_violate"
    extra["conforming"] = order_of(m_nv)
    first = named[0]
    fs = [Finding(status=UNKNOWN, rule=f.rule, message=f.message + " (in some admissible "
                  "orders only)", line=f.line, column=f.column, event_index=f.event_index,
                  event=f.event, claim_id=f.claim_id, request_id=f.request_id,
                  state_before=f.state_before, quote=f.quote) if f.status == VIOLATION else f
          for f in fs]
    fs.append(Finding(status=UNKNOWN, rule=R.stream, message=(
        f"the verdict depends on the unknown order of {spans}: some admissible orders conform, "
        "others violate (see the witnesses)"), line=events[first.first].line, column=1,
        event_index=first.first, event=events[first.first].kind))
    fs.sort(key=lambda x: (x.event_index, x.rule))
    return _assemble(spec, file, events, order, fs, INCONCLUSIVE, error, extra, batch_fields,
                     renumber, possible, defer_bounds=defer_bounds)


def _b(c: Any, ctx: z3.Context) -> Any:
    if c is True or c is False:
        return z3.BoolVal(c, ctx)
    return c


def check_events(spec: Spec, events: Sequence[Event], file: str = "-", **kw: Any) -> Report:
    """The Z3 engine over a totally ordered event list (the signature of replay.check_events)."""
    return decide(spec, list(events), file=file, **kw)


def witnesses(spec: Spec, report: Report, events: Sequence[Event],
              batch_fields: Sequence[str] | None = None,
              ) -> dict[str, list[Event]]:
    """The violating and conforming linearizations a partial-order report names, as events."""
    segs = [(a, b) for a, b in report.extra.get("unordered", ())]
    _, renumber = _stream_breaks(events, segs, spec.order.time_fields)
    batch_fields = spec.order.batch_fields if batch_fields is None else batch_fields
    out = {}
    for name in ("violating", "conforming"):
        order = report.extra.get(name)
        if order is not None:
            out[name] = witness_events(events, order, spec, batch_fields, renumber)
    return out

