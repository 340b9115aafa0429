"""The KV-RM claim arbiter as a Z3 transition system, checked against hard_protected (issue 8 item 3).

The model abstracts kvclaims.runtime.kvrm at the granularity its arbiter decides at: a pool of
`BLOCKS` usable blocks, one resident claim, `REQUESTS` requests. Every workload of that size is
covered at once: the claim's length (1..BLOCKS-1 blocks, set up on the first blocks as `_setup`
does), its mode (hard_exclude, demotable, expiring), each request's need (prompt + decode blocks,
1..BLOCKS) and whether it reuses the claimed prefix, and the maximum batch are free parameters.

State: per block its owner (free, the claim, cached = a released claim's unreferenced block,
or a request) and whether it still holds the claim's content (the claim's surviving prefix
positions); the claim's state (under responsibility, demoted, expired) and its reference count;
per request its state (waiting, running, done, refused), blocks held and whether it reuses the
prefix. Transitions, interleaved freely (an over-approximation of the runtime's schedule, so a
proof covers the runtime's order too):

- admit r        the arbiter's exclusion rule: protected + pinned + reserved + need <= usable and
                 a batch slot; a reusing request pins the prefix (refs += 1)
- refuse r       protected + need > usable: refused with attribution (the claim blocks)
- alloc r b      the pager's victim choice: a free block, else a cached (released, unreferenced)
                 block; never the claim's blocks, never a request's
- commit         one committed descriptor: each running request's row maps the prefix positions
                 to the claim's blocks
- eos r          a finished request frees its blocks; the last reuser of a released claim
                 returns the prefix blocks to the cache
- demote         a demotable claim nobody reuses is demoted before any loss (blocks cached)
- expire         an expiring claim expires (an event before any loss; blocks cached when unreferenced)

Checked (rules of the hard_protected bundle the arbiter decides, plus K4 and K2 on the prefix):
R-hard (no allocation takes an intact claim block while the claim is under responsibility),
K4-whole-prefix (no commit while a reusing request runs and the responsible claim's prefix is not
whole), K2-live-mapping (the same after release: a reused prefix row never maps a lost block),
R-attribution (a refusal names a claim under responsibility holding protected blocks, with a
positive shortfall). `search` runs bounded model checking depth by depth up to `BOUND`
transitions, then k-induction on the rules strengthened with the pager invariant `_inv` (the
claim under responsibility and every running reuser see the whole prefix on claim-owned blocks;
claim-owned blocks are intact; refs counts the running reusers) — the invariant is part of the
induction goal, so it is proved, not assumed. Broken arbiter variants (`FAULTS`) make the search
return the shortest witness, decoded into KV-RM events and re-checked by the replay checker.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import z3  # type: ignore[import-untyped]

from kvclaims import spec as spec_mod
from kvclaims.lower.relation import SemanticResult
from kvclaims.solver import SolverUnknown, ask
from kvclaims.spec import Spec

NAME = "kvrm_arbiter"
BLOCKS, REQUESTS, BOUND = 8, 3, 7
MODES = ("hard_protected", "demotable", "expiring")  # bundles that contain R-hard
RULES = ("K2-live-mapping", "K4-whole-prefix", "R-attribution", "R-hard")

# actions
ADMIT, REFUSE, ALLOC, COMMIT, EOS, DEMOTE, EXPIRE = range(7)
ACTION_NAMES = ("admit", "refuse", "alloc", "commit", "eos", "demote", "expire")
# block owners (a request r owns with REQ + r)
FREE, CLAIM, CACHED, REQ = 0, 1, 2, 3
# request and claim states, claim modes
WAIT, RUN, DONE, REFUSED = range(4)
RESP, DEMOTED, EXPIRED = range(3)
HARD, DEMOTABLE, EXPIRING = range(3)
CLAIM_MODES = ("hard_exclude", "demotable", "expiring")

# broken arbiter variants (tests; each must yield a witness the replay checker confirms)
# the arbiter admits without counting protected blocks and the pager treats claimed blocks like
# cached ones (soft priority offered as hard exclusion): R-hard
EVICT_CLAIMED = "evict_claimed"
# demotion ignores running reusers: it caches the prefix and drops their pins: K2
DEMOTE_REUSED = "demote_reused"
FAULTS = frozenset({EVICT_CLAIMED, DEMOTE_REUSED})


@dataclass(frozen=True, slots=True)
class KvrmProof:
    """The proof result: the relation's SemanticResult plus what `kvclaims prove` prints."""

    result: SemanticResult
    blocks: int
    requests: int
    bound: int
    k: int | None  # induction depth when proved
    max_check_seconds: float  # slowest single solver call
    steps: tuple[str, ...] = ()  # witness actions
    faults: frozenset[str] = field(default_factory=frozenset)

    @property
    def summary(self) -> str:
        r = self.result
        size = f"{self.blocks} blocks, {self.requests} requests, 1 claim"
        if r.status == "witness":
            return (f"witness: {r.depth} transitions ({', '.join(self.steps)}) violate {r.rule}; "
                    f"replay {'confirms' if r.confirmed else 'DISAGREES'} ({size})")
        if r.status == "unknown":
            return f"INCONCLUSIVE: {r.note} ({size}, bound {self.bound})"
        ind = f"; {self.k}-induction holds (strengthened with the pager invariant)" \
            if r.status == "proved" else "; k-induction did not close"
        return (f"{r.status}: no violation of {', '.join(r.rules_checked)} in any run up to "
                f"{self.bound} arbiter transitions, every workload of {size}{ind}; "
                f"slowest check {self.max_check_seconds:.2f} s")


class _Run:
    def __init__(self, k: int, tag: str, nb: int, nr: int, faults: frozenset[str],
                 ctx: z3.Context):
        self.k, self.nb, self.nr, self.faults, self.ctx = k, nb, nr, faults, ctx

        def I(name: str) -> Any:
            return z3.Int(name, ctx)

        def B(name: str) -> Any:
            return z3.Bool(name, ctx)

        T = range(k + 1)
        # parameters (one workload, fixed over the run)
        self.cp = I(f"{tag}_cp")
        self.cmode = I(f"{tag}_cmode")
        self.maxb = I(f"{tag}_maxb")
        self.need = [I(f"{tag}_need{r}") for r in range(nr)]
        self.reuses = [B(f"{tag}_reuses{r}") for r in range(nr)]
        # state
        self.own = [[I(f"{tag}_own{b}_{t}") for t in T] for b in range(nb)]
        self.intact = [[B(f"{tag}_intact{b}_{t}") for t in T] for b in range(nb)]
        self.cst = [I(f"{tag}_cst_{t}") for t in T]
        self.refs = [I(f"{tag}_refs_{t}") for t in T]
        self.rst = [[I(f"{tag}_rst{r}_{t}") for t in T] for r in range(nr)]
        self.held = [[I(f"{tag}_held{r}_{t}") for t in T] for r in range(nr)]
        self.ru = [[B(f"{tag}_ru{r}_{t}") for t in T] for r in range(nr)]
        # moves
        self.act = [I(f"{tag}_act_{t}") for t in range(k)]
        self.arg = [I(f"{tag}_arg_{t}") for t in range(k)]
        self.vic = [I(f"{tag}_vic_{t}") for t in range(k)]

    def params(self) -> list[Any]:
        c = [self.cp >= 1, self.cp <= self.nb - 1, self.cmode >= 0, self.cmode <= 2,
             self.maxb >= 1, self.maxb <= self.nr]
        c += [z3.And(n >= 1, n <= self.nb) for n in self.need]
        return c

    def domain(self, t: int) -> list[Any]:
        c = [self.cst[t] >= 0, self.cst[t] <= 2, self.refs[t] >= 0]
        for b in range(self.nb):
            c += [self.own[b][t] >= 0, self.own[b][t] < REQ + self.nr]
        for r in range(self.nr):
            c += [self.rst[r][t] >= 0, self.rst[r][t] <= 3, self.held[r][t] >= 0,
                  self.held[r][t] <= self.need[r]]
        return c

    def init(self) -> list[Any]:
        c = [self.cst[0] == RESP, self.refs[0] == 0]
        for b in range(self.nb):
            c += [self.own[b][0] == z3.If(b < self.cp, CLAIM, FREE),
                  self.intact[b][0] == (b < self.cp)]
        for r in range(self.nr):
            c += [self.rst[r][0] == WAIT, self.held[r][0] == 0, z3.Not(self.ru[r][0])]
        return c

    def inv(self, t: int) -> Any:
        """The pager invariant that strengthens the induction (proved with the rules)."""
        whole = z3.And(*[z3.Implies(b < self.cp, z3.And(self.intact[b][t],
                                                         self.own[b][t] == CLAIM))
                         for b in range(self.nb)])
        c = [z3.Implies(self.cst[t] == RESP, whole),
             self.refs[t] == z3.Sum(*[z3.If(z3.And(self.rst[r][t] == RUN, self.ru[r][t]), 1, 0)
                                      for r in range(self.nr)])]
        c += [z3.Implies(z3.And(self.rst[r][t] == RUN, self.ru[r][t]), whole)
              for r in range(self.nr)]
        c += [z3.And(z3.Implies(self.own[b][t] == CLAIM, self.intact[b][t]),
                     z3.Implies(self.intact[b][t], b < self.cp)) for b in range(self.nb)]
        return z3.And(*c)

    def trans(self, t: int) -> Any:
        """One transition as a guard on (act, arg, vic) and a functional next state."""
        n, a, arg, v = t + 1, self.act[t], self.arg[t], self.vic[t]
        nb, nr = range(self.nb), range(self.nr)
        resp = self.cst[t] == RESP
        pbl = z3.If(resp, self.cp, 0)

        def at(xs: list[Any]) -> Any:  # xs[arg]
            out = xs[-1]
            for r in reversed(range(len(xs) - 1)):
                out = z3.If(arg == r, xs[r], out)
            return out

        rst = at([self.rst[r][t] for r in nr])
        held = at([self.held[r][t] for r in nr])
        need = at(self.need)
        ru = at([self.ru[r][t] for r in nr])
        reuses = at(self.reuses)
        running = z3.Sum(*[z3.If(self.rst[r][t] == RUN, 1, 0) for r in nr])
        reserved = z3.Sum(*[z3.If(self.rst[r][t] == RUN, self.need[r], 0) for r in nr])
        pinned = z3.If(z3.And(z3.Not(resp), self.refs[t] > 0), self.cp, 0)
        no_free = z3.And(*[self.own[b][t] != FREE for b in nb])
        vown = self.own[-1][t]
        for b in reversed(range(self.nb - 1)):
            vown = z3.If(v == b, self.own[b][t], vown)
        evictable = [CACHED, CLAIM] if EVICT_CLAIMED in self.faults else [CACHED]
        choice = z3.Or(vown == FREE, z3.And(no_free, z3.Or(*[vown == o for o in evictable])))
        # the pager takes the first such block: free (and cached) blocks are interchangeable, so
        # fixing the order only removes renamings of the same run
        for b in nb:
            first = z3.And(z3.BoolVal(True, self.ctx), *[
                z3.And(z3.Implies(vown == FREE, self.own[x][t] != FREE),
                       z3.Implies(vown != FREE,
                                  z3.And(*[self.own[x][t] != o for o in evictable])))
                for x in range(b)])
            choice = z3.And(choice, z3.Implies(v == b, first))
        reuse = z3.And(reuses, resp)
        last = z3.And(ru, self.refs[t] == 1, z3.Not(resp))
        release_ok = z3.BoolVal(True, self.ctx) if DEMOTE_REUSED in self.faults \
            else self.refs[t] == 0
        apbl = z3.IntVal(0, self.ctx) if EVICT_CLAIMED in self.faults else pbl
        guard = z3.Or(
            z3.And(a == ADMIT, rst == WAIT, apbl + need <= self.nb,
                   apbl + pinned + reserved + need <= self.nb, running < self.maxb),
            z3.And(a == REFUSE, rst == WAIT, pbl + need > self.nb),
            z3.And(a == ALLOC, rst == RUN, held < need, choice),
            z3.And(a == COMMIT, running >= 1),
            z3.And(a == EOS, rst == RUN, held == need),
            z3.And(a == DEMOTE, self.cmode == DEMOTABLE, resp, release_ok),
            z3.And(a == EXPIRE, self.cmode == EXPIRING, resp))
        c = [guard, arg >= 0, arg < self.nr, v >= 0, v < self.nb]
        releasing = z3.Or(a == DEMOTE, a == EXPIRE)
        cache_on_release = z3.Or(self.refs[t] == 0, a == DEMOTE) \
            if DEMOTE_REUSED in self.faults else self.refs[t] == 0
        for b in nb:
            own = self.own[b][t]
            c.append(self.own[b][n] == z3.If(
                z3.And(a == ALLOC, v == b), REQ + arg,
                z3.If(z3.And(a == EOS, own == REQ + arg), FREE,
                      z3.If(z3.And(own == CLAIM, z3.Or(z3.And(a == EOS, last),
                                                       z3.And(releasing, cache_on_release))),
                            CACHED, own))))
            c.append(self.intact[b][n] == z3.And(self.intact[b][t],
                                                 z3.Not(z3.And(a == ALLOC, v == b))))
        c.append(self.cst[n] == z3.If(a == DEMOTE, DEMOTED,
                                      z3.If(a == EXPIRE, EXPIRED, self.cst[t])))
        refs = self.refs[t] + z3.If(z3.And(a == ADMIT, reuse), 1, 0) \
            - z3.If(z3.And(a == EOS, ru), 1, 0)
        if DEMOTE_REUSED in self.faults:
            refs = z3.If(a == DEMOTE, 0, refs)
        c.append(self.refs[n] == refs)
        for r in nr:
            me = arg == r
            c.append(self.rst[r][n] == z3.If(me, z3.If(a == ADMIT, RUN, z3.If(
                a == REFUSE, REFUSED, z3.If(a == EOS, DONE, self.rst[r][t]))), self.rst[r][t]))
            c.append(self.held[r][n] == z3.If(z3.And(me, a == ALLOC), self.held[r][t] + 1,
                                              z3.If(z3.And(me, a == EOS), 0, self.held[r][t])))
            c.append(self.ru[r][n] == z3.If(z3.And(me, a == ADMIT), reuse, self.ru[r][t]))
        return z3.And(*c, a >= 0, a < len(ACTION_NAMES))

    def bad(self, t: int) -> dict[str, Any]:
        a, v = self.act[t], self.vic[t]
        resp = self.cst[t] == RESP
        lost = z3.Or(*[z3.And(b < self.cp, z3.Not(self.intact[b][t])) for b in range(self.nb)])
        reuser = z3.Or(*[z3.And(self.rst[r][t] == RUN, self.ru[r][t]) for r in range(self.nr)])
        hit = z3.Or(*[z3.And(v == b, self.intact[b][t]) for b in range(self.nb)])
        return {
            "R-hard": z3.And(a == ALLOC, hit, resp),
            "K4-whole-prefix": z3.And(a == COMMIT, resp, reuser, lost),
            "K2-live-mapping": z3.And(a == COMMIT, z3.Not(resp), reuser, lost),
            "R-attribution": z3.And(a == REFUSE, z3.Not(resp)),
        }


# ---- decoding a run into KV-RM events (the replay checker re-checks the witness) ---------------
def _decode(m: z3.ModelRef, run: _Run, k: int) -> tuple[list[str], tuple[str, ...]]:
    from kvclaims.lower.kvrm_transport import merge_staged

    ev = lambda x: m.eval(x, model_completion=True)
    num = lambda x: ev(x).as_long()
    nb = run.nb
    cp, cmode, maxb = num(run.cp), num(run.cmode), num(run.maxb)
    need = [num(x) for x in run.need]
    usable = nb
    claim, prefix = "claim:p", "p"
    lines: list[str] = []
    for b in range(cp):
        head = f" run=kvrm-proof usable={usable}" if b == 0 else ""
        lines += [(f"block {b + 1} victim request=resident:{prefix} reason=free_uncached "
                  f"protected=false{head}"),
                  f"kvrm 0 mapped block={b + 1} position={b} prefix={prefix}"]
    lines.append(f"claim {claim} accepted mode={CLAIM_MODES[cmode]} required={cp} "
                 f"predicate=leading_prefix_at_least({cp}) prefix={prefix} "
                 f"request=resident:{prefix}")
    lines += [f"block {b + 1} materialized position={b} claim={claim} prefix={prefix} "
              f"protected=true" for b in range(cp)]
    lines.append(f"claim {claim} materialized materialized={cp} holds=true")
    rows: dict[int, list[int]] = {}  # running request -> its row (physical block ids)
    own: dict[int, str] = {}  # physical block -> owner while held by a request
    step = 0
    steps = []
    for t in range(k):
        a, r = num(run.act[t]), num(run.arg[t])
        name = f"r{r}"
        if a == ADMIT:
            steps.append(f"admit {name}")
            lines.append(f"active {name} admitted live_required={need[r]} action=admit")
            rows[r] = list(range(1, cp + 1)) if z3.is_true(ev(run.ru[r][t + 1])) else []
        elif a == REFUSE:
            steps.append(f"refuse {name}")
            held = sum(len(x) for x in rows.values())
            free = min(usable - cp - held, usable - cp)
            lines.append(
                f"active {name} refused blocking=[{claim}] blocking_prefixes=[{prefix}] "
                f"protected_blocks={cp} protected_claims=[{{claim_id={claim}, prefix_id={prefix}, "
                f"protection_mode={CLAIM_MODES[cmode]}}}] live_required={need[r]} "
                f"total={cp + need[r]} shortfall={max(0, need[r] - free)} "
                f"feasibility=infeasible_preserve_resident_and_active free={free} "
                f"action=protected_resident_capacity_refused reuse_admitted=false")
        elif a == ALLOC:
            b = num(run.vic[t])
            steps.append(f"alloc {name} block {b + 1}")
            o = num(run.own[b][t])
            if o == CACHED:
                lines += [f"kvrm {step} evicted block={b + 1} prefix={prefix} why=evicted",
                          f"claim {claim} lost_after_release block={b + 1}"]
            reason = "free_uncached" if o == FREE else "cached_prefix_reuse"
            lines.append(f"block {b + 1} victim request={name} reason={reason} protected=false")
            pos = len(rows[r])
            rows[r].append(b + 1)
            own[b + 1] = name
            lines.append(f"kvrm {step} mapped block={b + 1} position={pos} request={name}")
        elif a == COMMIT:
            steps.append("commit")
            batch = sorted(rows)
            table = ", ".join("[" + ", ".join(str(x) for x in rows[q]) + "]" for q in batch)
            lines.append(f"kvrm {step} committed batch=[{', '.join(f'r{q}' for q in batch)}] "
                         f"table=[{table}] max_batch={maxb} max_blocks={nb}")
            resp = num(run.cst[t]) == RESP
            for q in batch:
                if resp and z3.is_true(ev(run.ru[q][t])):
                    lines.append(f"kvrm {step} reused request=r{q} claim={claim} prefix={prefix}")
            pairs = [(blk, slot * nb + p) for slot, q in enumerate(batch)
                     for p, blk in enumerate(rows[q])]
            for s, d in merge_staged(pairs):
                lines.append(f"kvrm {step} group src=[{', '.join(map(str, s))}] "
                             f"dst=[{', '.join(map(str, d))}]")
            step += 1
        elif a == EOS:
            steps.append(f"eos {name}")
            base = cp if z3.is_true(ev(run.ru[r][t])) else 0
            for blk in rows.pop(r)[base:]:
                lines.append(f"kvrm {max(step - 1, 0)} evicted block={blk} request={name} "
                             f"why=eos")
        elif a == DEMOTE:
            steps.append("demote")
            lines.append(f"claim {claim} demoted action=demote_on_conflict")
        elif a == EXPIRE:
            steps.append("expire")
            lines.append(f"claim {claim} expired action=claim_expired")
    return lines, tuple(steps)


def _confirm(spec: Spec, lines: list[str], rule: str) -> tuple[tuple[Any, ...], bool]:
    from kvclaims.check.replay import check_events
    from kvclaims.lower.primitives import events_from_kvt

    events = events_from_kvt(lines, spec, NAME)
    report = check_events(spec, events, "witness")
    return events, any(f.rule == rule and f.status == "violation" for f in report.findings)


# ---- the search ----------------------------------------------------------------------------------
def search(mode: str = "hard_protected", bound: int = BOUND, blocks: int = BLOCKS,
           requests: int = REQUESTS, faults: frozenset[str] | set[str] = frozenset(),
           claim_mode: str | None = None, spec: Spec | None = None) -> KvrmProof:
    """Shortest run of the arbiter violating a checked rule up to `bound`, else k-induction."""
    spec = spec or spec_mod.load()
    faults = frozenset(faults)
    unknown = faults - FAULTS
    if unknown:
        raise ValueError(f"unknown arbiter fault(s) {sorted(unknown)}")
    start = time.perf_counter()
    if mode not in MODES:
        return KvrmProof(SemanticResult(NAME, mode, "not_modelled", (), note=(
            "the arbiter model decides R-hard, R-attribution, K2, K4: no R-hard in this bundle")),
            blocks, requests, bound, None, 0.0, faults=faults)
    timed = _Timed()
    try:
        return _decide(mode, bound, blocks, requests, faults, claim_mode, spec, start, timed)
    except SolverUnknown as unknown:
        res = SemanticResult(NAME, mode, "unknown", RULES, depth=bound,
                             seconds=time.perf_counter() - start,
                             note=f"the solver answered unknown ({unknown.reason}): inconclusive")
        return KvrmProof(res, blocks, requests, bound, None, timed.slowest, (), faults)


class _Timed:
    """Asks a solver (sat or unsat; the third answer raises, kvclaims.solver) and keeps the
    slowest question's time."""

    def __init__(self) -> None:
        self.slowest = 0.0

    def __call__(self, s: z3.Solver) -> Any:
        t0 = time.perf_counter()
        try:
            return ask(s)
        finally:
            self.slowest = max(self.slowest, time.perf_counter() - t0)


def _decide(mode: str, bound: int, blocks: int, requests: int, faults: frozenset[str],
            claim_mode: str | None, spec: Spec, start: float, timed: _Timed) -> KvrmProof:
    """The search itself (see :func:`search`); `timed` asks every solver question."""
    # a context of its own: the proof must not perturb the witnesses other searches find in the
    # main context (the lowering table and docs/lowering.md are deterministic)
    ctx = z3.Context()
    run = _Run(bound, "w", blocks, requests, faults, ctx)
    s = z3.Solver(ctx=ctx)
    s.add(*run.params(), *run.init(), *run.domain(0))
    if claim_mode is not None:
        s.add(run.cmode == CLAIM_MODES.index(claim_mode))
    for k in range(1, bound + 1):
        t = k - 1
        s.add(run.trans(t), *run.domain(k))
        bads = run.bad(t)
        s.push()
        s.add(z3.Or(*bads.values()))
        if timed(s) == z3.sat:
            m = s.model()
            rule = next(r for r, cond in sorted(bads.items())
                        if z3.is_true(m.eval(cond, model_completion=True)))
            lines, steps = _decode(m, run, k)
            events, confirmed = _confirm(spec, lines, rule)
            res = SemanticResult(NAME, mode, "witness", RULES, rule=rule, depth=k, events=events,
                                 confirmed=confirmed, seconds=time.perf_counter() - start,
                                 note=f"{k} arbiter transitions: {', '.join(steps)}")
            return KvrmProof(res, blocks, requests, bound, None, timed.slowest, steps, faults)
        s.pop()
        s.add(z3.Not(z3.Or(*bads.values())))
    # base of the strengthened induction: the invariant holds on every reachable state up to k
    kmax = 3
    proved_k = None
    for k in range(1, kmax + 1):
        base = z3.Solver(ctx=ctx)
        base.add(*run.params(), *run.init())
        if claim_mode is not None:
            base.add(run.cmode == CLAIM_MODES.index(claim_mode))
        for t in range(k):
            base.add(run.trans(t), *run.domain(t + 1))
        base.add(z3.Or(*[z3.Not(run.inv(t)) for t in range(k + 1)]))
        if timed(base) != z3.unsat:
            break
        ind = _Run(k, "i", blocks, requests, faults, ctx)
        st = z3.Solver(ctx=ctx)
        st.add(*ind.params(), *[c for t in range(k + 1) for c in ind.domain(t)])
        if claim_mode is not None:
            st.add(ind.cmode == CLAIM_MODES.index(claim_mode))
        for t in range(k):
            st.add(ind.trans(t), ind.inv(t))
        for t in range(k - 1):
            st.add(z3.Not(z3.Or(*ind.bad(t).values())))
        st.add(z3.Or(z3.Or(*ind.bad(k - 1).values()), z3.Not(ind.inv(k))))
        if timed(st) == z3.unsat:
            proved_k = k
            break
    secs = time.perf_counter() - start
    size = f"{blocks} blocks, {requests} requests"
    if proved_k is not None:
        res = SemanticResult(NAME, mode, "proved", RULES, depth=proved_k, seconds=secs, note=(
            f"no violation up to {bound} arbiter transitions ({size}, every workload); "
            f"{proved_k}-induction holds with the pager invariant"))
    else:
        res = SemanticResult(NAME, mode, "bounded", RULES, depth=bound, seconds=secs, note=(
            f"no violation up to {bound} arbiter transitions ({size}); induction did not close"))
    return KvrmProof(res, blocks, requests, bound, proved_k, timed.slowest, (), faults)


@cache
def proof(bound: int = BOUND) -> KvrmProof:
    """The proof of the correct arbiter (cached): one system for every claim mode."""
    return search("hard_protected", bound)


def check(mode: str, bound: int = BOUND) -> SemanticResult:
    """The oracle relation.classify asks for the `kvrm_arbiter` primitive (cached). The claim's
    mode is a free parameter of the model, so one proof serves every bundle with R-hard."""
    if mode not in MODES:
        return search(mode, bound).result
    return dataclasses.replace(proof(bound).result, mode=mode)
