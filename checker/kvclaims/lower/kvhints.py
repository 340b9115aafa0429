"""KV hints lowered onto claims, as a small Z3 transition system (docs/model.md §9; docs/lowering.md
"KV hints"; the table is spec/kvhints.toml).

A KV hint (vLLM's KvHints RFC: Share, Prefetch, Demote, Pin, Retain) asks for a claim; its outcome
(accepted, clipped, deferred, rejected, missing) and any later outcome become lifecycle events.
This module decides whether a *lowering* — the spec table, or a variant of it — is sound: whether
some run of a runtime that keeps the hint semantics of spec/kvhints.toml yields a lowered trace
that breaks a rule of the claim's mode.

The runtime side: one hint for one claimed block. It is sent, answered with any outcome the
runtime can give (deferred first, then answered again), possibly cut later by an outcome that
cuts, or ended by an accepted Demote; the block is stored and may be evicted whenever the runtime
does not hold it (a kind that holds protects it only while accepted and not yet cut). The lowered
side: the events the lowering emits for each of those moves, applied to the claim's lifecycle
state (an event its transition does not allow from the current state is not emitted). A lowering
may emit a cut late, after the next loss (`late_cuts`), as a runtime that batches outcomes with
its block events would.

The rules encoded are the two a wrong lowering breaks at a loss: R-hard (a protected block of a
hard claim under responsibility is a victim) and R-no-silent-loss (a claim under responsibility
loses its block with no report). The shortest violating run is decoded into kvclaims events and
re-checked by the replay checker; with none up to the bound, k-induction closes the proof.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import z3  # type: ignore[import-untyped]

from kvclaims import spec as spec_mod
from kvclaims.lower import primitives as P
from kvclaims.lower.descriptor import HintKind, HintOutcome, HintTable, load_hint_table, \
    load_tables
from kvclaims.lower.relation import SemanticResult
from kvclaims.solver import SolverUnknown, ask
from kvclaims.spec import Spec

PREFIX = "kvhints_"  # primitive names: kvhints_<kind in lower case>
ENCODED = ("R-hard", "R-no-silent-loss")
# runtime hint states
PENDING, OPEN, HELD, CLOSED = range(4)


@dataclass(frozen=True, slots=True)
class Lowering:
    """A lowering of one hint kind: the mode its claim gets, the events each outcome becomes, the
    Demote kind that may end it, and which outcomes the runtime answers with."""

    kind: HintKind
    mode: str
    send: tuple[str, ...]
    materialize: str
    outcomes: Mapping[str, HintOutcome]
    answers: tuple[str, ...]
    demote: HintKind | None = None
    late_cuts: bool = False

    @property
    def name(self) -> str:
        return PREFIX + self.kind.name.lower()


def spec_lowering(kind: str, mode: str | None = None, answers: str = "rfc",
                  table: HintTable | None = None) -> Lowering:
    """The lowering spec/kvhints.toml gives `kind` (in `mode`, its own mode by default), with the
    outcomes of the answer set `answers`."""
    t = table or load_hint_table()
    k = t.kinds[kind]
    if k.mode is None:
        raise ValueError(f"hint kind {kind} ends a hold; it is not lowered onto a mode")
    demote = next((d for d in t.kinds.values() if d.ends), None)
    return Lowering(k, mode or k.mode, (t.send,), t.materialize, dict(t.outcomes),
                    t.answers[answers], demote)


def override(low: Lowering, *, mode: str | None = None, outcome: str | None = None,
             answer: tuple[str, ...] | None = None, later: tuple[str, ...] | None = None,
             on_accept: tuple[str, ...] | None = None, late_cuts: bool | None = None
             ) -> Lowering:
    """A variant of a lowering (a bad-lowering case's mapping): another mode, other events for one
    outcome, another event (or none) for an accepted Demote, or cuts reported late."""
    outcomes = dict(low.outcomes)
    if outcome is not None:
        o = outcomes[outcome]
        outcomes[outcome] = replace(o, answer=o.answer if answer is None else answer,
                                    later=o.later if later is None else later)
    demote = low.demote
    if on_accept is not None and demote is not None:
        demote = replace(demote, on_accept=on_accept[0] if on_accept else None)
    return replace(low, mode=mode or low.mode, outcomes=outcomes, demote=demote,
                   late_cuts=low.late_cuts if late_cuts is None else late_cuts)


# ---- the moves ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Move:
    name: str
    guard: Callable[[int, bool, bool], bool]  # (runtime hint state, stored, lost) -> allowed
    hint: Callable[[int], int]  # next runtime hint state
    events: tuple[str, ...] = ()  # lowered claim events (before the store/loss line)
    store: bool = False
    evict: bool = False
    cut: bool = False  # a cut: late_cuts defers its events past the next loss


def moves(low: Lowering) -> tuple[Move, ...]:
    out = []
    for o in low.answers:
        oc = low.outcomes[o]
        nxt = HELD if oc.grants else (OPEN if not oc.final else CLOSED)
        first = (lambda h, s, x: h == PENDING) if not oc.final else \
            (lambda h, s, x: h in (PENDING, OPEN))
        out.append(Move(f"answer {o}", first, lambda h, n=nxt: n, oc.answer))
        if oc.cuts:
            out.append(Move(f"{o} later", lambda h, s, x: h == HELD, lambda h: CLOSED, oc.later,
                            cut=True))
    granting = any(low.outcomes[o].grants for o in low.answers)
    if low.demote is not None and granting:
        ev = (low.demote.on_accept,) if low.demote.on_accept else ()
        out.append(Move(f"{low.demote.name} accepted", lambda h, s, x: h == HELD,
                        lambda h: CLOSED, ev))
    out.append(Move("store", lambda h, s, x: not s and not x, lambda h: h, store=True))
    holds = low.kind.holds
    out.append(Move("evict", lambda h, s, x: s and not (holds and h == HELD), lambda h: h,
                    evict=True))
    return tuple(out)


# ---- the lowered claim, concretely (the single definition Z3 tabulates) -------------------------
@dataclass(frozen=True, slots=True)
class Lowered:
    state: str
    pending: tuple[str, ...] = ()  # cut events held back until after the next loss
    emitted: tuple[str, ...] = field(default=(), compare=False)


def _apply(spec: Spec, state: str, events: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    emitted = []
    for e in events:
        t = spec.claim.transitions[e]
        if state in t.sources:
            state = state if t.target == "same" else t.target
            emitted.append(e)
    return state, tuple(emitted)


def step(spec: Spec, low: Lowering, cur: Lowered, move: Move, stored: bool) -> Lowered:
    """The lowered claim after `move` (stored: whether the block is stored before the move)."""
    if move.evict:
        state, emitted = _apply(spec, cur.state, cur.pending)
        return Lowered(state, (), emitted)
    if move.store:
        state, emitted = _apply(spec, cur.state, (low.materialize,))
        return Lowered(state, cur.pending, emitted)
    if move.cut and low.late_cuts:
        return Lowered(cur.state, cur.pending + move.events)
    state, emitted = _apply(spec, cur.state, move.events)
    mat = spec.claim.transitions[low.materialize]
    if stored and state in mat.sources and mat.target not in ("same", state):
        # accepted with its block already stored: the claim is materialized at once
        state, more = _apply(spec, state, (low.materialize,))
        emitted += more
    return Lowered(state, cur.pending, emitted)


def initial(spec: Spec, low: Lowering) -> Lowered:
    state, emitted = _apply(spec, spec.claim.initial, low.send)
    return Lowered(state, (), emitted)


def _violates(spec: Spec, low: Lowering, state: str) -> str | None:
    """The rule a loss breaks with the lowered claim in `state` (None: no rule encoded breaks)."""
    bundle = set(load_tables().bundle(spec, low.mode))
    if state not in spec.responsible:
        return None
    return next((r for r in ENCODED if r in bundle), None)


# ---- Z3 ----------------------------------------------------------------------------------------
def reachable(spec: Spec, low: Lowering) -> frozenset[tuple[str, tuple[str, ...]]]:
    """Every (lowered state, pending cuts) some run reaches (explicit search; the Z3 domain)."""
    ms = moves(low)
    start = (PENDING, False, False, initial(spec, low))
    seen = {start}
    todo = [start]
    while todo:
        h, s, x, cur = todo.pop()
        for m in ms:
            if not m.guard(h, s, x):
                continue
            nxt = step(spec, low, cur, m, s)
            item = (m.hint(h), False if m.evict else (True if m.store else s),
                    True if m.evict else x, Lowered(nxt.state, nxt.pending))
            if item not in seen:
                seen.add(item)
                todo.append(item)
    return frozenset((c.state, c.pending) for _, _, _, c in seen)


class _Run:
    """Z3 variables for k moves: runtime hint state h, stored s, lost x, and the lowered claim
    (an index into the reachable (state, pending) pairs)."""

    def __init__(self, spec: Spec, low: Lowering, k: int, tag: str):
        self.spec, self.low, self.k = spec, low, k
        self.moves = moves(low)
        self.lowered = sorted(reachable(spec, low))
        self.index = {v: i for i, v in enumerate(self.lowered)}
        I, B = z3.Int, z3.Bool
        self.h = [I(f"{tag}_h_{t}") for t in range(k + 1)]
        self.c = [I(f"{tag}_c_{t}") for t in range(k + 1)]
        self.s = [B(f"{tag}_s_{t}") for t in range(k + 1)]
        self.x = [B(f"{tag}_x_{t}") for t in range(k + 1)]
        self.act = [I(f"{tag}_act_{t}") for t in range(k)]

    def domain(self, t: int) -> list[Any]:
        return [self.h[t] >= 0, self.h[t] <= CLOSED, self.c[t] >= 0,
                self.c[t] < len(self.lowered)]

    def init(self) -> list[Any]:
        lo = initial(self.spec, self.low)
        return [self.h[0] == PENDING, self.c[0] == self.index[(lo.state, lo.pending)],
                z3.Not(self.s[0]), z3.Not(self.x[0])]

    def trans(self, t: int) -> list[Any]:
        n = t + 1
        options = []
        for i, m in enumerate(self.moves):
            guards = []
            for h in range(CLOSED + 1):
                for st in (False, True):
                    for x in (False, True):
                        if m.guard(h, st, x):
                            guards.append(z3.And(self.h[t] == h, self.s[t] == st,
                                                 self.x[t] == x, self.h[n] == m.hint(h)))
            if not guards:
                continue
            lowered = []
            for (state, pend), ci in self.index.items():
                for st in (False, True):
                    nxt = step(self.spec, self.low, Lowered(state, pend), m, st)
                    key = (nxt.state, nxt.pending)
                    if key in self.index:
                        lowered.append(z3.And(self.c[t] == ci, self.s[t] == st,
                                              self.c[n] == self.index[key]))
            options.append(z3.And(
                self.act[t] == i, z3.Or(*guards), z3.Or(*lowered),
                self.s[n] == (False if m.evict else (True if m.store else self.s[t])),
                self.x[n] == (True if m.evict else self.x[t])))
        return [z3.Or(*options)]

    def bad(self, t: int) -> dict[str, Any]:
        out: dict[str, list[Any]] = {}
        ev = next(i for i, m in enumerate(self.moves) if m.evict)
        for (state, _), ci in self.index.items():
            rule = _violates(self.spec, self.low, state)
            if rule is not None:
                out.setdefault(rule, []).append(
                    z3.And(self.act[t] == ev, self.s[t], self.c[t] == ci))
        return {r: z3.Or(*cs) for r, cs in out.items()}


# ---- decoding a run into kvclaims events ---------------------------------------------------------
CLAIM, BLOCK_PREFIX, USABLE = P.CLAIM, P.PREFIX, P.USABLE


def _claim_line(spec: Spec, low: Lowering, event: str) -> str:
    e = spec.events[event]
    line = f"{e.subject} {CLAIM} {e.verb}"
    declares = {"mode", "required", "predicate"}  # kvt keys of a claim declaration (docs/kvt.md)
    keys = {spec.fields[f].kvt for f in (*e.required, *e.optional) if f in spec.fields}
    if declares <= keys:
        line += (f" mode={P._mode_spelling(spec, low.mode)} required=1 "
                 f"predicate=leading_prefix_at_least(1) prefix={BLOCK_PREFIX} usable={USABLE}")
        if "registration" in keys:
            line += " registration=pre_registered"
    return line


def decode(spec: Spec, low: Lowering, acts: list[int]) -> tuple[list[str], tuple[str, ...]]:
    """The lowered trace (kvt lines) and the move names of a run, replayed concretely."""
    ms = moves(low)
    cur = initial(spec, low)
    lines = [_claim_line(spec, low, e) for e in cur.emitted]
    stored = False
    names = []
    for a in acts:
        m = ms[a]
        names.append(m.name)
        nxt = step(spec, low, cur, m, stored)
        if m.store:
            # the block names the claim whatever its state: the claim manifest joins stored
            # hashes to the claim the hint asked for, answered or not
            lines.append(f"block 1 materialized position=0 claim={CLAIM} prefix={BLOCK_PREFIX}")
            stored = True
        if m.evict:
            lines.append(f"block 1 victim request=a reason=cached_prefix_reuse usable={USABLE}")
            stored = False
        lines += [_claim_line(spec, low, e) for e in nxt.emitted]
        cur = nxt
    return lines, tuple(names)


# ---- the search --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Search:
    result: SemanticResult
    steps: tuple[str, ...] = ()


def search(low: Lowering, bound: int = P.DEFAULT_BOUND, spec: Spec | None = None) -> Search:
    """Shortest run whose lowered trace breaks an encoded rule of the lowering's mode, else
    k-induction. A solver `unknown` ends the search inconclusive (kvclaims.solver)."""
    spec = spec or spec_mod.load()
    start = time.perf_counter()
    bundle = set(load_tables().bundle(spec, low.mode))
    checked = tuple(r for r in ENCODED if r in bundle)
    if not checked:
        return Search(SemanticResult(low.name, low.mode, "not_modelled", (), note=(
            "the model encodes no rule of this bundle (" + ", ".join(ENCODED) + ")")))
    try:
        return _search(spec, low, bound, checked, start)
    except SolverUnknown as unknown:
        return Search(SemanticResult(
            low.name, low.mode, "unknown", checked, seconds=time.perf_counter() - start,
            note=f"the solver answered unknown ({unknown.reason}): inconclusive"))


def _search(spec: Spec, low: Lowering, bound: int, checked: tuple[str, ...],
            start: float) -> Search:
    P._fresh_context()
    for k in range(1, bound + 1):
        run = _Run(spec, low, k, "w")
        s = z3.Solver()
        s.add(*run.init())
        for t in range(k):
            s.add(*run.trans(t))
            s.add(*run.domain(t))
        bads = run.bad(k - 1)
        if not bads:
            break
        s.add(z3.Or(*bads.values()))
        if ask(s) == z3.sat:
            m = s.model()
            rule = next(r for r, cond in sorted(bads.items())
                        if z3.is_true(m.eval(cond, model_completion=True)))
            acts = [m.eval(run.act[t], model_completion=True).as_long() for t in range(k)]
            lines, names = decode(spec, low, acts)
            events = P.events_from_kvt(lines, spec, f"{low.name}-{low.mode}")
            return Search(SemanticResult(
                low.name, low.mode, "witness", checked, rule=rule, depth=k, events=events,
                confirmed=P._confirm(spec, events, rule), seconds=time.perf_counter() - start),
                names)
    for j in range(bound + 1):
        run = _Run(spec, low, j + 1, "i")
        s = z3.Solver()
        for t in range(j + 2):
            s.add(*run.domain(t))
        for t in range(j + 1):
            s.add(*run.trans(t))
        for t in range(j):
            bt = run.bad(t)
            if bt:
                s.add(z3.Not(z3.Or(*bt.values())))
        bj = run.bad(j)
        if not bj:
            break
        s.add(z3.Or(*bj.values()))
        if ask(s) == z3.unsat:
            return Search(SemanticResult(
                low.name, low.mode, "proved", checked, depth=j + 1,
                seconds=time.perf_counter() - start,
                note=f"no witness up to {bound} steps; {j + 1}-induction holds"))
    if not run.bad(0):
        return Search(SemanticResult(
            low.name, low.mode, "proved", checked, depth=0, seconds=time.perf_counter() - start,
            note=f"no state of the {low.mode} claim makes a loss break {', '.join(checked)}"))
    return Search(SemanticResult(low.name, low.mode, "bounded", checked, depth=bound,
                                 seconds=time.perf_counter() - start,
                                 note=f"no witness up to {bound} steps; induction did not close"))


# ---- primitives for descriptor rows ---------------------------------------------------------------
def primitive_names(table: HintTable | None = None) -> tuple[str, ...]:
    t = table or load_hint_table()
    return tuple(PREFIX + k.name.lower() for k in t.kinds.values() if k.mode is not None)


def kind_of(primitive: str, table: HintTable | None = None) -> str:
    t = table or load_hint_table()
    return next(k.name for k in t.kinds.values() if PREFIX + k.name.lower() == primitive)


@cache
def check(primitive: str, mode: str, bound: int = P.DEFAULT_BOUND) -> SemanticResult:
    """A descriptor row's primitive `kvhints_<kind>`: the spec lowering of that kind in `mode`,
    under every outcome the RFC names (cached)."""
    return search(spec_lowering(kind_of(primitive), mode), bound).result
