"""The Z3 encoding of the claim model: lifecycle, pool, block ownership and every rule of docs/model.md §6.

Decides the §6 obligations over an event sequence whose order may be only partly known. The trace
is unrolled over event positions ("slots"); a slot whose event is known holds that event, a slot
inside an unordered part holds one of several candidate events, chosen by the solver (the
position variables of :mod:`kvclaims.check.partial`). The state is encoded per claim (partitioned:
a claim's variables are written only by events that name it or its blocks), per physical block
and per pool; each rule is a condition over that state that yields a finding guarded by the
choice of order. Values whose order is known fold to constants, so a totally ordered trace never
reaches the solver and a batch costs only its own slots.

Everything the rules are about comes from the spec tables, read through the same
:class:`RuleIds`/:class:`EventNames` as the replay checker: the claim lifecycle and offload
machines (spec/lifecycle.toml, R-order, R-acceptance, R-offload), responsibility and release
states, the mode bundles (spec/modes.toml) that decide which rules bind a claim, the predicate
forms (§3), the vocabulary and scopes (spec/events.toml) and the named values. The rules are
not written here: each is defined once in check/rules/ against the operator interface of
check/rules/ops.py, and this module evaluates the same definitions as the replay, with
`symbolic.Ops` over its encoded state, so that a rule's condition becomes the guard of its
finding. What stays here is the encoding and unrolling of the state (and, as in the replay, the
input's own rules R-stream and R-vocabulary); the differential tests in tests/check compare the
two evaluators and this unrolling against the replay's streaming state. The timing rule for loss
reports is documented in docs/checking.md and docs/partial.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import z3

from kvclaims.check.predicate import LEADING, Predicate, declared_predicate
from kvclaims.check.progress import NS, STEPS, DeferBound, bound_fields
from kvclaims.check.rules import attribution as attribution_rule
from kvclaims.check.rules import (
    acceptance,
    explicit,
    hard,
    identity,
    loss,
    no_admit,
    order,
    release_order,
    steps,
)
from kvclaims.check.rules import offload as offload_rule
from kvclaims.check.rules import progress as progress_rule
from kvclaims.check.rules import yield_ as yield_rule
from kvclaims.check.rules.ops import (
    AT_EVENT,
    AT_HARM,
    AT_LOST_REPORT,
    AT_MATERIALIZED,
    Filed,
)
from kvclaims.check.state import IDENTITY_FIELDS, EventNames, RuleIds
from kvclaims.check.symbolic import Ops, Store, Val, is_sym
from kvclaims.check.verdict import UNKNOWN, VIOLATION
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

NONE = -(1 << 40)  # the encoding of an absent int (usable blocks, offload generation)
EMPTY_MODE = -2    # no mode named yet: every rule binds (the replay's empty bundle)
UNKNOWN_MODE = -1  # an unknown spelling: the best_effort bundle, and the claim is unknown


@dataclass(frozen=True)
class Slot:
    """One position of the unrolled trace: its candidate events and the guard of each."""

    index: int
    candidates: tuple[tuple[int, Val], ...]  # (event index, guard: True or a Z3 Bool)
    stream: str | None = None  # an R-stream break decided at this position (file order)


@dataclass(frozen=True)
class SymFinding:
    """A finding the encoding may raise: it holds in the linearizations where `cond` is true."""

    cond: Val
    status: str
    rule: str
    event: int        # event index of the event the finding is about (for line, quote)
    slot: int         # position in the linearization
    claim_id: str | None
    message: str
    order: int        # recording order (the replay keeps the first finding per key)
    state_before: str | None = None


_DEFAULTS: dict[str, Any] = {
    "ex": False, "acc": False, "mode": EMPTY_MODE, "spelled": False, "prot": False, "pred": -1,
    "decl": NONE, "trk": False, "asrt": False, "sil": False, "ph": -1, "pm": -1,
    "pl": 0, "plev": -1, "pend": False, "off": -1, "ogen": NONE,
    "failed": False, "owed": -1, "hv": False, "owedev": -1, "id": -1, "pos": False, "cbp": -1, "bind": -1,
    "bcl": -1, "alloc": False, "usable": NONE, "owedx": -1, "denied": False,
    # R-progress (docs/model.md §6): the tightest declared bounds, and per request its open deferral
    "bst": NONE, "bns": NONE, "dopen": False, "dlate": False, "dstep0": NONE, "dns0": NONE,
    "dcnt": 0, "dsteps": 0, "dns": 0, "dev": -1, "dblk": False, "rdec": False,
}


# State values that hold an event index or a slot: their possible values are tracked so that a
# finding about "the pending harm event" can be located on each event it may be.
_INDEX_TAGS = frozenset({"ph", "pm", "plev", "owedev", "dev"})


class _State(Store):
    def __getitem__(self, key: Any) -> Val:
        v = self.v.get(key)
        if v is None:
            return _DEFAULTS[key[0]] if key[0] != "st" else self.initial
        return v

    def __setitem__(self, key: Any, val: Val) -> None:
        g = self.guard
        if g is True:
            self.v[key] = val
        elif g is not False:
            self.v[key] = self.ops.ite(g, val, self[key])


class Encoding:
    """Unroll the slots over the encoded state and collect guarded findings."""

    def __init__(self, spec: Spec, events: Sequence[Event], ctx: z3.Context | None = None,
                 defer_bounds: Sequence[DeferBound] = ()):
        self.spec = spec
        self.defer_bounds = tuple(defer_bounds)
        self.events = events
        self.ctx = ctx or z3.Context()
        self.ops = Ops(self.ctx)
        self.R = RuleIds(spec)
        self.E = EventNames(spec)
        self.values = spec.values
        self.S = _State(self.ops)
        self.claim_states = list(spec.claim.states)
        self.code = {s: i for i, s in enumerate(self.claim_states)}
        self.S.initial = self.code[spec.claim.initial]
        self.responsible = [self.code[s] for s in spec.responsible]
        self.released = [self.code[s] for s in spec.released]
        self.off_states = list(spec.offload.states)
        self.off_code = {s: i for i, s in enumerate(self.off_states)}
        self.host = [self.off_code[s] for s in spec.offload_host_states]
        self.outcomes = sorted(spec.offload_outcome_events)
        self.mode_names = sorted(spec.modes)
        yielding = yield_rule.modes(spec.modes, False)
        self.yielding_modes = [i for i, m in enumerate(self.mode_names) if m in yielding]
        self.protecting_modes = [i for i, m in enumerate(self.mode_names) if m not in yielding]
        self.bound_fields = bound_fields(spec.fields)
        self.bundles = {i: frozenset(spec.modes[m].rules) for i, m in enumerate(self.mode_names)}
        self.bundles[UNKNOWN_MODE] = frozenset(spec.modes["best_effort"].rules)
        self.findings: list[SymFinding] = []
        self.defs: list[Any] = []  # definitions of the fresh state variables (add to the solver)
        self.choices: dict[int, Any] = {}  # fresh index variable -> the term it was defined by
        self.leaves_of: dict[int, set[int]] = {}  # fresh index variable -> values it may take
        self.posset: dict[int, set[int]] = {}
        self.fguard: Val = True
        self.slot = 0
        self.broken = False
        self.claim_kinds = spec.events_of_scope("claim")
        self.excusing = release_order.excusing_kinds(self.E.releasing, self.E.offloaded,
                                                     self.E.harmed)
        self.stream_kinds = spec.events_of_scope("stream")
        self._scan()

    # ---- static facts of the trace (which claims, blocks, bindings can exist) ---------------
    def _scan(self) -> None:
        E = self.E
        self.claim_ids: list[str] = []
        self.ci: dict[str, int] = {}
        self.binders: dict[Any, list[int]] = {}
        self.prefix_claims: dict[Any, list[int]] = {}
        self.preds: list[Predicate] = []
        self.gens: set[Any] = {None}
        self.idvals: dict[str, list[Any]] = {f: [] for f in IDENTITY_FIELDS}
        self.blocks: list[Any] = []
        self.deferred_requests: list[str] = []
        flag, cfield = self.values["connector_claim_flag"], self.values["connector_claim_id"]
        creating = self.spec.events_of_scope("claim") | {E.block_materialized}
        # Claims are numbered in the order the trace first creates them (the replay's order of
        # its claim table, which decides which claim a pool-wide attribution finding is filed on).
        for ev in self.events:
            f = ev.fields
            cid = f.get("claim_id")
            if ev.kind == E.request_initialized and f.get(flag) is True:
                cid = f.get(cfield) or cid
            elif ev.kind not in creating:
                continue
            if isinstance(cid, str) and cid not in self.ci:
                self.ci[cid] = len(self.claim_ids)
                self.claim_ids.append(cid)
        for i, ev in enumerate(self.events):
            f = ev.fields
            cid = f.get("claim_id")
            if ev.kind == E.request_initialized and f.get(flag) is True:
                cid = f.get(cfield) or cid
            if isinstance(cid, str) and cid not in self.ci:
                self.ci[cid] = len(self.claim_ids)
                self.claim_ids.append(cid)
            if ev.kind in (E.block_materialized, E.victim):
                b = f.get("physical_block_id")
                if b not in self.binders:
                    self.binders[b] = []
                    self.blocks.append(b)
                if ev.kind == E.block_materialized:
                    self.binders[b].append(i)
            rid = f.get("request_id")
            waits = ev.kind == E.request_initialized and f.get("active_live_blocks_required")
            if ((ev.kind == E.deferred or waits) and isinstance(rid, str)
                    and rid not in self.deferred_requests):
                self.deferred_requests.append(rid)
            if ev.kind == E.accepted and isinstance(cid, str) and f.get("prefix_id") is not None:
                lst = self.prefix_claims.setdefault(f["prefix_id"], [])
                if self.ci[cid] not in lst:
                    lst.append(self.ci[cid])
            if "offload_generation" in f:
                g = f["offload_generation"]
                try:
                    hash(g)
                    self.gens.add(g)
                except TypeError:
                    pass
            for b in f.get("blocking_claim_ids") or ():
                if isinstance(b, str) and b not in self.ci:
                    self.ci[b] = len(self.claim_ids)
                    self.claim_ids.append(b)

    def _intern_pred(self, p: Predicate) -> int:
        for i, q in enumerate(self.preds):
            if q == p:
                return i
        self.preds.append(p)
        return len(self.preds) - 1

    def _intern_id(self, field: str, v: Any) -> int:
        vals = self.idvals[field]
        for i, w in enumerate(vals):
            if w == v:
                return i
        vals.append(v)
        return len(vals) - 1

    # ---- state helpers ----------------------------------------------------------------------
    def in_bundle(self, c: int, rule: str) -> Val:
        m = self.S[("mode", c)]
        codes = [EMPTY_MODE] + [k for k, b in self.bundles.items() if rule in b]
        return self.ops.member(m, codes)

    def holds(self, c: int) -> tuple[Val, Val]:
        """(the claim has a predicate, the predicate holds over its surviving positions)."""
        o, S = self.ops, self.S
        return o.not_(o.eq(S[("pred", c)], -1)), S[("hv", c)]

    def _in_range(self, c: int, q: int) -> Val:
        """Position q is one the claim's predicate requires."""
        ks = [k for k, p in enumerate(self.preds)
              if (0 if p.kind == LEADING else p.start) <= q < (0 if p.kind == LEADING
                                                                else p.start) + p.n]
        return self.ops.member(self.S[("pred", c)], ks)

    def _recompute(self, c: int) -> None:
        """The predicate over the surviving positions, in full (after it or a position is set)."""
        self.S[("hv", c)] = self._evaluate(c)

    def _evaluate(self, c: int) -> Val:
        o, S = self.ops, self.S
        code = S[("pred", c)]
        val: Val = False
        for k, p in enumerate(self.preds):
            if not is_sym(code) and code != k:
                continue
            start = 0 if p.kind == LEADING else p.start
            bits: list[Val] = []
            for q in range(start, start + p.n):
                bit = S[("pos", c, q)]
                if bit is False:
                    bits = [False]
                    break
                if bit is not True:
                    bits.append(bit)
            val = o.ite(o.eq(code, k), o.all(bits), val)
        return val

    def surviving(self, c: int) -> Val:
        return self.ops.count(self.S[("pos", c, q)] for q in self.posset.get(c, ()))

    def blocks_of(self, c: int) -> Val:
        o, S = self.ops, self.S
        decl = S[("decl", c)]
        return o.ite(S[("trk", c)], self.surviving(c), o.ite(o.eq(decl, NONE), 0, decl))

    def protected_claim(self, c: int) -> Val:
        o, S = self.ops, self.S
        return o.and_(S[("ex", c)], hard.protected_claim(
            o, S[("prot", c)], o.member(S[("st", c)], self.responsible), S[("sil", c)],
            self.surviving(c), S[("trk", c)], S[("asrt", c)]))

    def set_state(self, c: int, name: str) -> None:
        self.S[("st", c)] = self.code[name]

    # ---- findings -----------------------------------------------------------------------------
    def find(self, status: str, rule: str, event: int, message: str, claim: int | None = None,
             *, claim_id: str | None = None, slot: int | None = None) -> None:
        o = self.ops
        cond = o.and_(self.fguard, self.S.guard)
        if claim is not None:
            cond = o.and_(cond, self.in_bundle(claim, rule))
            claim_id = self.claim_ids[claim]
        if cond is False:
            return
        if status == VIOLATION and self.broken and rule != self.R.stream:
            status = UNKNOWN
            message += " (after a stream gap, so it may be explained by missing events)"
        before = None
        if claim is not None:
            st = self.S[("st", claim)]
            before = None if is_sym(st) else self.claim_states[st]
        self.findings.append(SymFinding(cond, status, rule, event,
                                        self.slot if slot is None else slot, claim_id, message,
                                        len(self.findings), before))

    def _file(self, filed: tuple[Filed, ...], c: int, i: int, names: dict[str, Any],
              pending: dict[str, Val] | None = None, slot: int | None = None) -> None:
        """File, each under its guard, the findings of a rule step (check/rules/steps.py): the
        wording is the rule module's; located at event `i`, or at each event the index variable
        `pending[at]` may hold."""
        S, o = self.S, self.ops
        for f in filed:
            if not S.may(f.cond):
                continue
            with S.when(f.cond):
                msg = f.message.format(**names)
                if f.at == AT_EVENT or pending is None or f.at not in pending:
                    self.find(f.status, f.rule, i, msg, c)
                    continue
                var = pending[f.at]
                for m in self._event_choices(var):
                    with S.when(o.eq(var, m)):
                        self.find(f.status, f.rule, m, msg, c, slot=slot)

    # ---- the unrolling ------------------------------------------------------------------------
    def run(self, slots: Sequence[Slot]) -> list[SymFinding]:
        o, S = self.ops, self.S
        for slot in slots:
            self.slot = slot.index
            if len(slot.candidates) == 1 and slot.candidates[0][1] is True:
                self._step(slot.candidates[0][0], slot)
                continue
            # Fork the state per candidate event, then merge: exactly one guard holds.
            base = S.v
            forks: list[tuple[Val, dict[Any, Val]]] = []
            for e, guard in slot.candidates:
                S.v = dict(base)
                self.fguard = guard
                self._step(e, slot)
                forks.append((guard, S.v))
            self.fguard = True
            S.v = base
            merged = dict(base)
            keys: set[Any] = set()
            for _, vals in forks:
                keys.update(k for k, v in vals.items() if base.get(k) is not v)
            for k in keys:
                default = S[k]
                val = default
                # Only the forks that wrote the key contribute: the others keep the old value.
                for guard, vals in forks:
                    new = vals.get(k, default)
                    if new is not default:
                        val = o.ite(guard, new, val)
                if is_sym(val):
                    # A fresh variable per state value per slot keeps the formula linear in the
                    # unrolling (bounded model checking), instead of nesting every slot's choice.
                    fresh = z3.Const(f"{k[0]}_{len(self.defs)}_{slot.index}", val.sort())
                    self.defs.append(fresh == val)
                    if k[0] in _INDEX_TAGS:
                        self.choices[fresh.get_id()] = val  # its values, found when asked
                    val = fresh
                merged[k] = val
            S.v = merged
        self.slot = slots[-1].index if slots else 0
        self._finish()
        return self.findings

    def _step(self, i: int, slot: Slot) -> None:
        ev = self.events[i]
        E, S = self.E, self.S
        kind = ev.kind
        f = ev.fields
        if kind not in E.block_group:
            self._close_group(i)
        if slot.stream is not None:
            self.find(UNKNOWN, self.R.stream, i,
                      slot.stream + "; verdicts after this point are unknown")
            self.broken = True
        u = f.get("usable_blocks")
        if isinstance(u, int):
            S[("usable",)] = u
        if self.deferred_requests:
            self._progress_advance(i)
        if kind == E.victim:
            b = f["physical_block_id"]
            S[("alloc", b)] = True
            rid = f.get("request_id")
            if rid in self.deferred_requests:
                S[("rdec", rid)] = True
                self._progress_decided(rid)  # a block allocated to it: service began
            bind = S[("bind", b)]
            cached = f.get("victim_reason") == self.values["cached_victim_reason"]
            for j in self.binders.get(b, ()):
                g = self.ops.eq(bind, j)
                if S.may(g):
                    with S.when(g):
                        self._lose(b, j, i, cached)
            S[("bind", b)] = -1
            return
        if kind == E.block_materialized:
            self._on_block_materialized(i)
        elif kind == E.admitted:
            self._on_admitted(i)
        elif kind in (E.deferred, E.refused):
            self._on_decision(i)
        elif kind == E.live_bounded:
            self._discharge()
        elif kind == E.reuse_denied:
            S[("denied",)] = no_admit.denied_since(self.ops, S[("denied",)], self.ops.not_(
                self.ops.eq(S[("owedx",)], -1)))
        elif kind == E.reuse_admitted:
            pass
        elif kind == E.request_initialized:
            self._on_connector_claim(i)
        elif kind in self.claim_kinds:
            self._on_claim(i)
        elif kind not in self.spec.events:
            self._on_unknown(i)
        elif kind in self.stream_kinds:
            if not hasattr(self, "unjoined"):
                self.unjoined = i
        else:
            cid = f.get("claim_id")
            if isinstance(cid, str) and cid in self.ci:
                c = self.ci[cid]
                ex = S[("ex", c)]
                if S.may(ex):
                    with S.when(ex):
                        self._identity(c, i)

    # ---- vocabulary -----------------------------------------------------------------------------
    def _on_unknown(self, i: int) -> None:
        S = self.S
        ev = self.events[i]
        msg = (f"unknown event {ev.kind!r}: not in the closed vocabulary, so what it could "
               "affect is unknown")
        cid = ev.fields.get("claim_id")
        c = self.ci.get(cid) if isinstance(cid, str) else None
        ex = S[("ex", c)] if c is not None else False
        for t in S.branches(ex):
            if t:
                self.find(UNKNOWN, self.R.vocabulary, i, msg, c)
            else:
                self.find(UNKNOWN, self.R.vocabulary, i, msg)

    # ---- claims -----------------------------------------------------------------------------------
    def _claim(self, c: int) -> None:
        self.S[("ex", c)] = True

    def _identity(self, c: int, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        for name in IDENTITY_FIELDS:
            v = f.get(name)
            if v is None:
                continue
            code = self._intern_id(name, v)
            old = S[("id", c, name)]
            unset = o.eq(old, -1)
            amb = identity.ambiguous(o, unset, o.eq(old, code))
            for t in S.branches(unset):
                if t:
                    S[("id", c, name)] = code
                elif S.may(amb):
                    with S.when(amb):
                        self.find(VIOLATION, self.R.identity, i, identity.AMBIGUOUS.format(
                            field=name, value=v, old="different"), c)

    def _set_mode(self, c: int, i: int) -> None:
        S, o = self.S, self.ops
        spelling = self.events[i].fields.get("protection_mode")
        cond: Val = True
        if spelling is None:
            cond = o.not_(S[("spelled", c)])
        if not S.may(cond):
            return
        with S.when(cond):
            S[("spelled", c)] = spelling is not None
            mode = self.spec.canonical_mode(spelling)
            if mode is None:
                S[("mode", c)] = UNKNOWN_MODE
                self.find(UNKNOWN, self.R.vocabulary, i,
                          f"protection mode {spelling!r} is not a known mode, so the claim's "
                          "obligations are unknown", c)
                return
            S[("mode", c)] = self.mode_names.index(mode)
            S[("prot", c)] = self.R.hard in self.spec.modes[mode].rules
            if self.spec.modes[mode].undecidable:
                self.find(UNKNOWN, self.R.vocabulary, i,
                          f"mode {mode} cannot be witnessed from the reference vocabulary", c)

    def _set_predicate(self, c: int, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        pred, unparsed = declared_predicate(f)
        if unparsed:
            self.find(UNKNOWN, self.R.identity, i, identity.UNPARSED.format(
                value=f["materialization_predicate"]), c)
        req = f.get("resident_blocks_required")
        if req is not None:
            S[("decl", c)] = req
        if pred is not None:
            code = self._intern_pred(pred)
            cur = S[("pred", c)]
            S[("pred", c)] = o.ite(o.eq(cur, -1), code, cur)
            self._recompute(c)

    def _on_connector_claim(self, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        self._on_arrival(i)
        if f.get(self.values["connector_claim_flag"]) is True:
            cid = f.get(self.values["connector_claim_id"]) or f.get("claim_id")
            if isinstance(cid, str):
                c = self.ci[cid]
                self._claim(c)
                init = o.eq(S[("st", c)], S.initial)
                if S.may(init):
                    with S.when(init):
                        S[("st", c)] = self.code[
                            self.spec.claim.transitions[self.E.submitted].target]
                self._identity(c, i)

    def _on_claim(self, i: int) -> None:
        E, S, o = self.E, self.S, self.ops
        ev = self.events[i]
        kind = ev.kind
        c = self.ci[ev.fields["claim_id"]]
        self._claim(c)
        self._identity(c, i)
        t = self.spec.claim.transitions[kind]
        before = S[("st", c)]
        if kind in E.releasing:
            self._progress_release(c, o.member(before, self.responsible))
        allowed = order.allowed(o, before, [self.code[s] for s in t.sources])
        self._file(steps.at_claim_event(
            o, self.R, S[("sil", c)], kind in self.excusing, kind == E.expired, allowed,
            kind == E.harmed, o.eq(before, self.code[E.harmed_state]),
            o.not_(o.eq(S[("ph", c)], -1)),
            o.member(before, [S.initial, self.code[E.submitted_state]]), S[("acc", c)]), c, i,
            {"verb": self.spec.events[kind].verb, "state": "this state", "in_state": "",
             "at_line": ""})
        if S.may(allowed):
            with S.when(allowed):
                self._claim_body(c, i, t.target)

    def _claim_body(self, c: int, i: int, target: str) -> None:
        E, R, S, o = self.E, self.R, self.S, self.ops
        ev = self.events[i]
        kind = ev.kind
        f = ev.fields
        if kind == E.accepted:
            self._set_mode(c, i)
            if acceptance.post_hoc(f.get("claim_registration"),
                                   self.values["post_hoc_registration"]):
                self.find(VIOLATION, R.acceptance, i, acceptance.POST_HOC, c)
            self._set_predicate(c, i)
            S[("acc", c)] = True
            pid = f.get("prefix_id")
            if pid is not None:
                cur = S[("cbp", pid)]
                S[("cbp", pid)] = o.ite(o.eq(cur, -1), c, cur)
        elif kind in (E.submitted, E.created):
            self._set_mode(c, i)
            self._set_predicate(c, i)
        elif kind == E.materialized:
            self._set_predicate(c, i)
            if order.says_not_materialized(f.get("predicate_materialized")):
                self.find(VIOLATION, R.order, i, order.SAYS_NOT_MATERIALIZED, c)
            for tracked in S.branches(S[("trk", c)]):
                if tracked:
                    has, val = self.holds(c)
                    pending = order.materialized_unheld(o, has, val)
                    if S.may(pending):
                        with S.when(pending):
                            S[("pm", c)] = i
                            S[("pend", c)] = True
                else:
                    S[("asrt", c)] = True
        elif kind == E.harmed:
            self._on_harm(c, i)
            return
        elif kind == E.lost_after_release:
            S[("pl", c)] = S[("pl", c)] + 1
            S[("plev", c)] = i
            S[("pend", c)] = True
        elif kind in (E.offloaded, E.restore_required, E.restored, E.reuse_after_restore,
                      E.restoration_failed):
            self._on_offload(c, i)
        if kind in E.releasing:
            self._on_release(c, i)
        if target != "same":
            self.set_state(c, target)

    def _on_release(self, c: int, i: int) -> None:
        S, o = self.S, self.ops
        self._discharge()
        kind = self.events[i].kind
        g = offload_rule.settles(o, S[("owed", c)], self._settling(kind))
        if S.may(g):
            with S.when(g):
                S[("owed", c)] = -1
                S[("off", c)] = self.off_code[self.spec.offload.initial]

    def _on_harm(self, c: int, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        has, val = self.holds(c)
        st = steps.at_harm(o, self.R, f.get("predicate_before") is False,
                           f.get("predicate_after") is True, o.not_(o.eq(S[("ph", c)], -1)),
                           S[("trk", c)], has, val)
        self._file(st.filed, c, i, {})
        if S.may(st.harmed):
            with S.when(st.harmed):
                self.set_state(c, self.E.harmed_state)
        if S.may(st.pending):
            with S.when(st.pending):
                S[("ph", c)] = i
                S[("pend", c)] = True
        if S.may(st.settled):
            g = o.and_(st.settled,
                       offload_rule.settles(o, S[("owed", c)], self._settling(self.E.harmed)))
            if S.may(g):
                with S.when(g):
                    S[("owed", c)] = -1

    # ---- offload sub-lifecycle -----------------------------------------------------------------
    def _on_offload(self, c: int, i: int) -> None:
        """The claim's offload event, decided by check/rules/steps.py `at_offload`."""
        E, S, o = self.E, self.S, self.ops
        ev = self.events[i]
        f = ev.fields
        kind = ev.kind
        consts = self.spec.offload_constants
        init = self.off_code[self.spec.offload.initial]
        off = S[("off", c)]
        S[("off", c)] = o.ite(o.eq(off, -1), init, off)
        t = self.spec.offload.transitions[kind]
        gen = f.get("offload_generation")
        has_gen = isinstance(gen, int) and not isinstance(gen, bool)
        ogen = S[("ogen", c)]
        is_restore = kind == E.restored
        failed: Val = False
        if is_restore:
            failed = (S[("failed", c, gen)] if gen is not None else
                      o.any(o.and_(o.eq(ogen, g if isinstance(g, int) else NONE),
                                   S[("failed", c, g)]) for g in self.gens))
        outcome = f.get("claim_scoped_outcome_type")
        target = f.get("outcome_claim_id")
        outcomes = self.spec.offload_outcome_events
        st = steps.at_offload(
            o, self.R, kind == E.offloaded, is_restore, kind == E.restoration_failed, has_gen,
            gen if has_gen else NONE, o.not_(o.eq(ogen, NONE)), ogen, failed, S[("off", c)],
            [self.off_code[s] for s in t.sources],
            offload_rule.wrong_tiers(f.get("cache_tier_from"), f.get("cache_tier_to"), consts),
            offload_rule.not_from_offload_tier(f.get("restoration_source"),
                                               f.get("restored_from_offload_tier"),
                                               f.get("cache_tier_from"), consts),
            offload_rule.unknown_outcome(outcome, outcomes),
            offload_rule.outcome_for_other_claim(target, self.claim_ids[c]))
        self._file(st.filed, c, i, {
            "gen": gen, "open_gen": "", "verb": self.spec.events[kind].verb,
            "in_off_state": "", "gpu_tier": consts["gpu_tier"], "host_tier": consts["host_tier"],
            "source": f.get("restoration_source") or f.get("cache_tier_from"),
            "outcome": outcome, "outcomes": sorted(outcomes), "target": target,
            "claim": self.claim_ids[c]})
        if S.may(st.opens):
            with S.when(st.opens):
                S[("ogen", c)] = gen if has_gen else NONE
                self._discharge()
        if S.may(st.fails):
            with S.when(st.fails):
                if gen is not None:
                    S[("failed", c, gen)] = True
                else:
                    for g in self.gens:
                        m = o.eq(ogen, g if isinstance(g, int) else NONE)
                        if S.may(m):
                            with S.when(m):
                                S[("failed", c, g)] = True
        if S.may(st.owes):
            with S.when(st.owes):
                S[("owed", c)] = self.outcomes.index(outcome)
                S[("owedev", c)] = i
        if t.target != "same" and S.may(st.moves):
            with S.when(st.moves):
                S[("off", c)] = self.off_code[t.target]

    # ---- blocks -----------------------------------------------------------------------------------
    def _binding_claim(self, i: int) -> Val:
        """The claim a block materialization binds to, as the replay resolves it at that point."""
        f = self.events[i].fields
        cid = f.get("claim_id")
        if cid is not None:
            return self.ci[cid] if isinstance(cid, str) else -1
        pid = f.get("prefix_id")
        if pid is not None:
            return self.S[("cbp", pid)]
        return -1

    def _claims_of(self, i: int) -> list[int]:
        f = self.events[i].fields
        cid = f.get("claim_id")
        if cid is not None:
            return [self.ci[cid]] if isinstance(cid, str) else []
        return list(self.prefix_claims.get(f.get("prefix_id"), ()))

    @staticmethod
    def _prefix_key(f: dict[str, Any]) -> Any:
        pid = f.get("prefix_id")
        return pid if pid is not None else (f.get("claim_id") or "?")

    def _on_block_materialized(self, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        b = f["physical_block_id"]
        pos = f["logical_block_position"]
        cid = f.get("claim_id")
        if isinstance(cid, str):
            c = self.ci[cid]
            g = identity.unsubmitted(o, S[("ex", c)])
            if S.may(g):
                with S.when(g):
                    self._claim(c)
                    self.find(VIOLATION, self.R.identity, i,
                              identity.UNSUBMITTED.format(claim=cid), c)
        claim = self._binding_claim(i)
        for c in self._claims_of(i):
            g = o.eq(claim, c)
            if S.may(g):
                with S.when(g):
                    self._identity(c, i)
        key, old = self._prefix_key(f), S[("bind", b)]
        for j in self.binders.get(b, ()):
            if j == i:
                continue
            fj = self.events[j].fields
            if self._prefix_key(fj) == key and fj["logical_block_position"] == pos:
                continue
            g = o.eq(old, j)
            if S.may(g):
                with S.when(g):
                    self._lose(b, j, i, False)
        S[("bind", b)] = i
        S[("bcl", b)] = claim
        for c in self._claims_of(i):
            g = o.eq(claim, c)
            if S.may(g):
                with S.when(g):
                    S[("trk", c)] = True
                    S[("pos", c, pos)] = True
                    self.posset.setdefault(c, set()).add(pos)
                    self._recompute(c)
                    has, val = self.holds(c)
                    clear = o.and_(o.not_(o.eq(S[("pm", c)], -1)), has, val)
                    if S.may(clear):
                        with S.when(clear):
                            S[("pm", c)] = -1

    def _lose(self, b: Any, j: int, i: int, cached: bool) -> None:
        S, o = self.S, self.ops
        pos = self.events[j].fields["logical_block_position"]
        bcl = S[("bcl", b)]
        for c in self._claims_of(j):
            g = o.eq(bcl, c)
            if S.may(g):
                with S.when(g):
                    self._lose_claim(c, b, pos, i)

    def _lose_claim(self, c: int, b: Any, pos: int, i: int) -> None:
        R, S, o = self.R, self.S, self.ops
        has, before = self.holds(c)
        S[("pos", c, pos)] = False
        # Losing a required position breaks a leading or contiguous predicate (docs/model.md §3).
        after = o.and_(before, o.not_(self._in_range(c, pos)))
        S[("hv", c)] = after
        resp = o.member(S[("st", c)], self.responsible)
        sil = S[("sil", c)]
        off = loss.offloaded(o, resp, o.member(S[("off", c)], self.host))
        live = loss.live(o, resp, off, sil)
        gone = loss.post_release(o, off, live, o.member(S[("st", c)], self.released), sil)
        if S.may(gone):
            with S.when(gone):
                pl = S[("pl", c)]
                S[("pl", c)] = o.ite(o.cmp(">", pl, 0), pl - 1, 0)
        if not S.may(live):
            return
        st = steps.at_loss(o, R, live, o.not_(o.eq(S[("ph", c)], -1)), has,
                           loss.breaks(o, before, after), o.not_(o.eq(S[("owedx",)], -1)),
                           S[("denied",)], S[("prot", c)])
        self._file(st.filed, c, i, {"block": b, "pos": pos, "claim": self.claim_ids[c],
                                    "pred": "the predicate"})
        if S.may(st.harm_settled):
            with S.when(st.harm_settled):
                S[("ph", c)] = -1
                self.set_state(c, self.E.harmed_state)
        if S.may(st.silent):
            with S.when(st.silent):
                S[("sil", c)] = True

    def _close_group(self, i: int | None) -> None:
        E, R, S, o = self.E, self.R, self.S, self.ops
        at = i if i is not None else len(self.events) - 1
        for c in range(len(self.claim_ids)):
            pend = S[("pend", c)]
            if not S.may(pend):
                continue
            with S.when(pend):
                ph, pm, pl = S[("ph", c)], S[("pm", c)], S[("pl", c)]
                has, val = self.holds(c)
                st = steps.at_group_end(o, R, o.not_(o.eq(ph, -1)), o.not_(o.eq(pm, -1)), has,
                                        val, pl)
                self._file(st.filed, c, at, {},
                           {AT_HARM: ph, AT_MATERIALIZED: pm, AT_LOST_REPORT: S[("plev", c)]},
                           slot=at if i is None else None)
                if S.may(st.harmed):
                    with S.when(st.harmed):
                        self.set_state(c, E.harmed_state)
                S[("ph", c)] = -1
                S[("pm", c)] = -1
                S[("pl", c)] = 0
                S[("pend", c)] = False

    def _event_choices(self, v: Val) -> list[int]:
        """The values an index variable may take: the constants at the leaves of its If-chain."""
        if not is_sym(v):
            return [v] if v != -1 else []
        leaves = self._leaves(v)
        if leaves is None:
            return list(range(len(self.events)))
        return sorted(x for x in leaves if x != -1)

    def _leaves(self, v: Any) -> set[int] | None:
        out: set[int] = set()
        todo = [v]
        seen: set[int] = set()
        while todo:
            t = todo.pop()
            tid = t.get_id()
            if tid in seen:
                continue
            seen.add(tid)
            if z3.is_int_value(t):
                out.add(t.as_long())
            elif tid in self.choices:
                known = self.leaves_of.get(tid)
                if known is None:
                    known = self._leaves(self.choices[tid])
                    if known is None:
                        return None
                    self.leaves_of[tid] = known
                out |= known
            elif z3.is_app_of(t, z3.Z3_OP_ITE):
                todo += [t.arg(1), t.arg(2)]
            else:
                return None
        return out

    # ---- requests ---------------------------------------------------------------------------------
    def _usable(self, f: dict[str, Any]) -> Val:
        u = f.get("usable_blocks")
        return u if isinstance(u, int) else self.S[("usable",)]

    def _on_admitted(self, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        if f.get("request_id") in self.deferred_requests:
            self.S[("rdec", f["request_id"])] = True
        self._progress_decided(f.get("request_id"))
        required = f.get("active_live_blocks_required")
        usable = self._usable(f)
        if not required or (not is_sym(usable) and usable == NONE):
            return
        prot = [(self.protected_claim(c), c) for c in range(len(self.claim_ids))]
        total = o.total(o.ite(p, self.blocks_of(c), 0) for p, c in prot)
        over = o.and_(o.not_(o.eq(usable, NONE)),
                      explicit.owed(o, o.any(p for p, _ in prot), total, required, usable))
        if S.may(over):
            with S.when(over):
                S[("owedx",)] = i
                S[("denied",)] = False

    def _discharge(self) -> None:
        self.S[("owedx",)] = -1
        self.S[("denied",)] = False

    def _on_decision(self, i: int) -> None:
        self._over_protection(i)
        self._attribution(i)
        self._discharge()
        ev = self.events[i]
        rid = ev.fields["request_id"]
        if rid in self.deferred_requests:
            self.S[("rdec", rid)] = True
        if ev.kind == self.E.deferred:
            self._progress_deferred(i)
        else:
            self._progress_decided(rid)

    # ---- R-yield (docs/model.md §6): claims that give way never block -------------------------------
    def gives_way(self, c: int) -> Val:
        return yield_rule.gives_way(self.ops, self.S[("mode", c)], self.yielding_modes)

    def protecting_claim(self, c: int) -> Val:
        o, S = self.ops, self.S
        return o.and_(S[("ex", c)], yield_rule.protecting(
            o, o.member(S[("mode", c)], self.protecting_modes),
            o.member(S[("st", c)], self.responsible), S[("sil", c)],
            o.member(S[("off", c)], self.host), self.surviving(c), S[("trk", c)],
            S[("asrt", c)]))

    def _over_protection(self, i: int) -> None:
        R, S, o = self.R, self.S, self.ops
        ev = self.events[i]
        f = ev.fields
        verb = self.spec.events[ev.kind].verb
        rid = f.get("request_id")
        named: dict[int, Val] = {}
        for bid in f.get("blocking_claim_ids") or ():
            if not isinstance(bid, str) or bid not in self.ci:
                continue
            c = self.ci[bid]
            g = yield_rule.named(o, S[("ex", c)], self.gives_way(c))
            named[c] = o.or_(named.get(c, False), g)
            if S.may(g):
                with S.when(g):
                    self.find(VIOLATION, R.yield_, i, yield_rule.NAMED.format(
                        request=rid, verb=verb, claim=bid, in_mode=""), c)
        required = f.get("active_live_blocks_required")
        usable = self._usable(f)
        if not required or (not is_sym(usable) and usable == NONE):
            return
        n = len(self.claim_ids)
        soft = [o.and_(S[("ex", c)], yield_rule.soft_holder(
                    o, self.gives_way(c), o.member(S[("st", c)], self.responsible),
                    S[("trk", c)], self.surviving(c)))
                for c in range(n)]
        if not any(S.may(x) for x in soft):
            return
        held = o.total(o.ite(self.protecting_claim(c), self.blocks_of(c), 0) for c in range(n))
        yielded = o.total(o.ite(soft[c], self.surviving(c), 0) for c in range(n))
        fits = o.and_(o.not_(o.eq(usable, NONE)),
                      yield_rule.only_yielding_cause(o, held, yielded, required, usable))
        for c in range(n):
            g = yield_rule.unnamed_cause(o, fits, soft[c], named.get(c, False))
            if S.may(g):
                with S.when(g):
                    self.find(VIOLATION, R.yield_, i, yield_rule.UNNAMED_CAUSE.format(
                        request=rid, verb=verb, claim=self.claim_ids[c], numbers="", held=""), c)

    # ---- R-progress (docs/model.md §6): a deferral is decided within every declared bound -----------
    def _progress_advance(self, i: int) -> None:
        """Bounds this event declares, elapsed steps and time as of it, and bounds passed (before
        the event is applied, as in check/progress.py)."""
        S, o = self.S, self.ops
        f = self.events[i].fields
        for unit, name in self.bound_fields.items():
            v = f.get(name)
            if isinstance(v, int) and not isinstance(v, bool):
                key = ("bst",) if unit == STEPS else ("bns",)
                cur = S[key]
                S[key] = o.ite(o.or_(o.eq(cur, NONE), o.cmp("<", v, cur)), v, cur)
        step = f.get("scheduler_step")
        now = self._time(f)
        for rid in self.deferred_requests:
            op = S[("dopen", rid)]
            if not S.may(op):
                continue
            with S.when(op):
                for at, start, elapsed in ((step, "dstep0", "dsteps"), (now, "dns0", "dns")):
                    if not isinstance(at, int):
                        continue
                    t0 = S[(start, rid)]
                    g = o.not_(o.eq(t0, NONE))
                    if S.may(g):
                        with S.when(g):
                            S[(elapsed, rid)] = progress_rule.elapsed(o, at, t0,
                                                                      S[(elapsed, rid)])
            self._progress_check(i, rid)

    @staticmethod
    def _time(f: dict[str, Any]) -> int | None:
        t = f.get("timestamp_ns")
        if t is None:
            t = f.get("monotonic_ns")
        return t if isinstance(t, int) and not isinstance(t, bool) else None

    def _progress_check(self, i: int, rid: str) -> None:
        S, o = self.S, self.ops
        over: list[Val] = []
        for key, elapsed in ((("bst",), ("dsteps", rid)), (("bns",), ("dns", rid))):
            b = S[key]
            over.append(o.and_(o.not_(o.eq(b, NONE)), progress_rule.past_bound(o, S[elapsed], b)))
        for bound in self.defer_bounds:
            over.append(progress_rule.past_bound(o, S[("dsteps", rid) if bound.unit == STEPS
                                                      else ("dns", rid)], bound.value))
        g = o.and_(S[("dopen", rid)], o.any(over))
        if S.may(g):
            with S.when(g):
                self.find(VIOLATION, self.R.progress, i, progress_rule.PAST_BOUND.format(
                    request=rid, since="", elapsed="", bound="a declared deferral bound"))
                S[("dopen", rid)] = False
                S[("dlate", rid)] = True

    def _progress_deferred(self, i: int) -> None:
        S, o = self.S, self.ops
        f = self.events[i].fields
        rid = f["request_id"]
        late = S[("dlate", rid)]
        op = S[("dopen", rid)]
        first = o.and_(o.not_(late), o.not_(op))
        if S.may(first):
            with S.when(first):
                self._open_deferral(rid, i, [False] * len(self.claim_ids))
        more = o.and_(o.not_(late), op)
        if S.may(more):
            with S.when(more):
                cnt = S[("dcnt", rid)] + 1
                S[("dcnt", rid)] = cnt
                s0 = S[("dstep0", rid)]
                S[("dsteps", rid)] = o.ite(o.eq(s0, NONE), cnt - 1, S[("dsteps", rid)])
        active = o.not_(late)
        if S.may(active):
            with S.when(active):
                for bid in f.get("blocking_claim_ids") or ():
                    if isinstance(bid, str) and bid in self.ci:
                        S[("dblk", rid, self.ci[bid])] = True
                self._progress_check(i, rid)

    def _on_arrival(self, i: int) -> None:
        """A request arriving while claims hold the blocks it needs waits: an unreported
        deferral (check/progress.py, replay `_on_arrival`)."""
        S, o = self.S, self.ops
        f = self.events[i].fields
        rid = f.get("request_id")
        required = f.get("active_live_blocks_required")
        usable = self._usable(f)
        if (not isinstance(rid, str) or not required
                or (not is_sym(usable) and usable == NONE)):
            return
        n = len(self.claim_ids)
        holds = [o.and_(S[("ex", c)], progress_rule.holds_blocks(
                     o, o.member(S[("st", c)], self.responsible), self.blocks_of(c)))
                 for c in range(n)]
        total = o.total(o.ite(holds[c], self.blocks_of(c), 0) for c in range(n))
        g = o.and_(o.not_(o.eq(usable, NONE)), o.not_(S[("rdec", rid)]),
                   o.not_(S[("dopen", rid)]), o.not_(S[("dlate", rid)]),
                   progress_rule.waits(o, total, required, usable))
        if not S.may(g):
            return
        with S.when(g):
            self._open_deferral(rid, i, holds)

    def _open_deferral(self, rid: str, i: int, blocking: list[Val]) -> None:
        """A deferral of `rid` opens at event i (reported, or a silent wait from its arrival),
        waiting on the claims `blocking` marks (check/progress.py `Deferral`)."""
        S = self.S
        f = self.events[i].fields
        step = f.get("scheduler_step")
        now = self._time(f)
        S[("dopen", rid)] = True
        S[("dstep0", rid)] = step if isinstance(step, int) else NONE
        S[("dns0", rid)] = now if now is not None else NONE
        S[("dcnt", rid)] = 1
        S[("dsteps", rid)] = 0
        S[("dns", rid)] = 0
        S[("dev", rid)] = i
        for c, b in enumerate(blocking):
            S[("dblk", rid, c)] = b

    def _progress_decided(self, rid: Any) -> None:
        if rid in self.deferred_requests:
            self.S[("dopen", rid)] = False
            self.S[("dlate", rid)] = False

    def _progress_release(self, c: int, responsible: Val) -> None:
        S, o = self.S, self.ops
        for rid in self.deferred_requests:
            g = o.and_(S[("dopen", rid)], progress_rule.unblocks(o, responsible,
                                                                  S[("dblk", rid, c)]))
            if S.may(g):
                with S.when(g):
                    S[("dopen", rid)] = False

    def _refusal_outcome_codes(self) -> list[int]:
        return self._settling(self.E.refused)

    def _settling(self, kind: str) -> list[int]:
        """The codes of the claim-scoped outcomes an event of this kind gives (rules/offload.py
        `settles`)."""
        return [k for k, name in enumerate(self.outcomes)
                if self.spec.offload_outcome_events[name] == kind]

    def _attribution(self, i: int) -> None:
        R, V, S, o = self.R, self.values, self.S, self.ops
        f = self.events[i].fields
        blocking = f.get("blocking_claim_ids")
        feas = f.get("feasibility")
        restore_path = feas == V["restore_infeasible"]
        n = len(self.claim_ids)
        if restore_path:
            codes = self._refusal_outcome_codes()
            eligible = [attribution_rule.restore_eligible(o, S[("ex", c)], S[("owed", c)], codes)
                        for c in range(n)]
        else:
            eligible = [self.protected_claim(c) for c in range(n)]
        shortfall = f.get("capacity_shortfall_blocks")
        if not attribution_rule.claim_caused(blocking, feas == V["infeasible"], shortfall):
            return
        if not blocking:
            for c in range(n):
                g = attribution_rule.unnamed(o, eligible[c])
                if S.may(g):
                    with S.when(g):
                        self.find(VIOLATION, R.attribution, i, attribution_rule.UNNAMED.format(
                            claim=self.claim_ids[c]), c)
            return
        if attribution_rule.unsorted(blocking):
            self._first_claim_find(eligible, range(n), i,
                                   attribution_rule.UNSORTED.format(blocking=blocking))
        for bid in blocking:
            el = eligible[self.ci[bid]] if bid in self.ci else False
            g = attribution_rule.smear(o, el)
            if S.may(g):
                with S.when(g):
                    self.find(VIOLATION, R.attribution, i, attribution_rule.SMEAR.format(
                        claim=bid, why="is not a claim under responsibility holding protected "
                        "blocks"), None, claim_id=bid)
        if not restore_path:
            self._numbers(i, blocking, eligible)
        else:
            for bid in blocking:
                if bid not in self.ci:
                    continue
                c = self.ci[bid]
                if S.may(eligible[c]):
                    with S.when(eligible[c]):
                        S[("owed", c)] = -1
                        S[("off", c)] = self.off_code[self.spec.offload.initial]

    def _first_claim_find(self, eligible: list[Val], order: Any, i: int, msg: str) -> None:
        """A finding filed against the first eligible claim in `order` (or none)."""
        S, o = self.S, self.ops
        rest: Val = True
        for c in order:
            g = o.and_(rest, eligible[c])
            if S.may(g):
                with S.when(g):
                    self.find(VIOLATION, self.R.attribution, i, msg, c)
            rest = o.and_(rest, o.not_(eligible[c]))
        if S.may(rest):
            with S.when(rest):
                self.find(VIOLATION, self.R.attribution, i, msg, None)

    def _numbers(self, i: int, blocking: list[str], eligible: list[Val]) -> None:
        R, V, S, o = self.R, self.values, self.S, self.ops
        f = self.events[i].fields
        named_ids = []
        for bid in blocking:
            if bid in self.ci and self.ci[bid] not in named_ids:
                named_ids.append(self.ci[bid])
        protected = o.total(o.ite(eligible[c], self.blocks_of(c), 0) for c in named_ids)
        protected_all = o.total(o.ite(eligible[c], self.blocks_of(c), 0)
                                for c in range(len(self.claim_ids)))
        bads: list[tuple[Val, str]] = []
        rule = attribution_rule
        p = f.get("protected_resident_blocks")
        if p is not None:
            bads.append((rule.protected_mismatch(o, p, protected), rule.PROTECTED_MISMATCH.format(
                declared=p, protected="a different number of")))
        req = f.get("active_live_blocks_required")
        total = f.get("resident_plus_active_blocks")
        if total is not None and req is not None:
            bads.append((rule.total_mismatch(o, total, protected, req),
                         rule.TOTAL_MISMATCH.format(total=total, protected_n="", required=req)))
        usable = self._usable(f)
        has_usable = o.not_(o.eq(usable, NONE))
        free = f.get("free_blocks_before_allocate")
        if free is not None:
            allocated = o.count(S[("alloc", b)] for b in self.blocks)
            over = o.and_(has_usable, rule.free_over(o, free, usable, protected_all))
            under = o.and_(has_usable, rule.free_under(o, free, usable, allocated, over))
            bads.append((over, rule.FREE_OVER.format(free=free, upper="usable - protected")))
            bads.append((under, rule.FREE_UNDER.format(
                free=free, lower="usable - blocks ever allocated")))
        shortfall = f.get("capacity_shortfall_blocks")
        if shortfall is not None and req is not None:
            if rule.shortfall_not_free(shortfall, req, free):
                bads.append((True, rule.SHORTFALL_NOT_FREE.format(
                    shortfall=shortfall, required=req, free=free, result="")))
            else:
                bads.append((o.and_(has_usable, rule.shortfall_low(o, shortfall, protected, req,
                                                                    usable)),
                             rule.SHORTFALL_LOW.format(shortfall=shortfall, protected_n="",
                                                       required=req, usable_n="")))
        feas = f.get("feasibility")
        if feas is not None and shortfall is not None:
            if rule.feasibility_mismatch(feas, shortfall, V["infeasible"], V["feasible_prefix"]):
                bads.append((True, rule.FEASIBILITY_MISMATCH.format(feasibility=feas,
                                                                     shortfall=shortfall)))
        listed = f.get("protected_resident_claims")
        if listed is not None:
            ids = sorted(str(x.get("claim_id")) for x in listed if isinstance(x, dict))
            named = [self.claim_ids[c] for c in named_ids]

            def eligible_of(cid: str) -> Val:
                return eligible[self.ci[cid]] if cid in named else False

            bads.append((rule.listed_mismatch(o, ids, named, eligible_of),
                         rule.LISTED_MISMATCH.format(listed=ids, named=sorted(named))))
        for cond, msg in bads:
            if S.may(cond):
                with S.when(cond):
                    self._first_claim_find(eligible, named_ids, i, msg)

    # ---- the end ----------------------------------------------------------------------------------
    def _finish(self) -> None:
        R, S, o = self.R, self.S, self.ops
        self.fguard = True
        last = len(self.events) - 1
        self._close_group(None)
        for c in range(len(self.claim_ids)):
            owed = S[("owed", c)]
            g = offload_rule.outcome_never_followed(o, o.not_(o.eq(owed, -1)))
            if S.may(g):
                with S.when(g):
                    for m in self._event_choices(S[("owedev", c)]):
                        with S.when(o.eq(S[("owedev", c)], m)):
                            self.find(VIOLATION, R.offload, m, offload_rule.NEVER_FOLLOWED.format(
                                outcome="claim-scoped"), c, slot=last)
        for rid in self.deferred_requests:
            g = S[("dopen", rid)]
            if S.may(g):
                with S.when(g):
                    for m in self._event_choices(S[("dev", rid)]):
                        with S.when(o.eq(S[("dev", rid)], m)):
                            self.find(UNKNOWN, R.progress, m, progress_rule.STILL_OPEN.format(
                                request=rid, since="", why="no declared bound has passed"),
                                slot=last)
        if hasattr(self, "unjoined"):
            any_claim = o.any(S[("ex", c)] for c in range(len(self.claim_ids)))
            if S.may(any_claim):
                with S.when(any_claim):
                    self.find(UNKNOWN, R.vocabulary, self.unjoined, "runtime KV stream events "
                              "cannot be joined to claims without a claim manifest", slot=last)
