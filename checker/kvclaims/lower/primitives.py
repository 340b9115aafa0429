"""Runtime primitives as small Z3 transition systems, and the search for shortest witnesses
(docs/model.md §9: "a primitive's behaviour admits a trace violating O[m]"; issue 5 item 4).

One pool of two blocks: block 0 holds the claimed prefix (one block, predicate
leading_prefix_at_least(1)), block 1 is any other block. Each primitive fixes which blocks are
protected from allocation and the victim order (uncached free blocks first, then its own key:
LRU stamp, retention priority, ...), and which environment moves exist (time passing, a request
finishing, write no-admit, offload and restore, a duplicate cached copy). Reporting is modelled
as the best an adapter could do at that primitive — losses are reported as harm just before they
happen — except for block-scoped event observation, whose reports arrive after the batch. So a
witness shows a violation no telemetry could repair.

`check(primitive, mode)` searches depth by depth (bounded model checking) for the shortest run
violating a rule of the mode's bundle that the model encodes; that run is decoded into kvclaims
Events and re-checked by the replay checker (it must report the same rule). With no witness up to
the bound it tries k-induction and reports "proved" (with the induction depth) or "bounded to k".
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import z3  # type: ignore[import-untyped]

from kvclaims import spec as spec_mod
from kvclaims.lower.descriptor import load_tables
from kvclaims.lower.relation import SemanticResult
from kvclaims.solver import SolverUnknown, ask
from kvclaims.spec import Spec

DEFAULT_BOUND = 8
CLAIM = "claim:c"
PREFIX = "p"
USABLE = 2
DEFAULT_PRIORITY = 35  # TensorRT-LLM kDefaultRetentionPriority
CLAIM_PRIORITY = 100  # the lowering maps a claim to the highest priority (kMaxRetentionPriority)
DURATION = 1  # TTL / duration / pin timeout, in ticks

# actions
ACCEPT, MATERIALIZE, ALLOC, TICK, FINISH, NOADMIT, REFUSE, OFFLOAD, HOSTEVICT, REQUIRE, \
    RESTORE, DUP = range(12)
ACTION_NAMES = ("accept", "materialize", "alloc", "tick", "finish", "noadmit", "refuse",
                "offload", "host_evict", "restore_required", "restore", "duplicate")


@dataclass(frozen=True, slots=True)
class Primitive:
    name: str
    title: str
    runtime_example: str
    actions: frozenset[int]
    rules: tuple[str, ...]  # rules whose violation the model encodes
    protect: str = "none"  # none | claim | ttl | pin
    order: str = "lru"  # lru | priority | duration
    late_reports: bool = False  # block-scoped observation: reports follow the batch
    offload: bool = False
    # the primitive's defining move: a witness must use it (write no-admit must be exercised to
    # show it protects nothing; otherwise the shortest run is plain LRU)
    requires: int | None = None


_POOL = frozenset({ACCEPT, MATERIALIZE, ALLOC})
PRIMITIVES: dict[str, Primitive] = {p.name: p for p in (
    Primitive("lru_cached_blocks", "LRU eviction of cached blocks",
              "vLLM 0.33.0 free-block queue", _POOL, ("R-hard",)),
    Primitive("prioritized_lru_duration",
              "prioritized LRU, duration expiry reverting to the default priority",
              "TensorRT-LLM KvCacheRetentionConfig", _POOL | {TICK}, ("R-hard",),
              order="duration"),
    Primitive("max_merged_priority", "priority max-merged along the radix path, then LRU",
              "SGLang --radix-eviction-policy priority", _POOL, ("R-hard",), order="priority"),
    Primitive("write_no_admit", "write no-admit (future_reuse_denied)",
              "MicroRuntime write_no_admit", _POOL | {NOADMIT}, ("R-hard",), requires=NOADMIT),
    Primitive("hard_exclude_refusal", "hard exclusion of claimed blocks, refusal with attribution",
              "MicroRuntime hard_exclude", _POOL | {REFUSE, TICK}, ("R-hard",), protect="claim"),
    Primitive("ttl_expiry", "TTL protection that lapses without an event",
              "Dynamo nvext.cache_control TTL pin", _POOL | {TICK}, ("R-hard",), protect="ttl"),
    Primitive("offload_restore_fallback",
              "offload copy with restore, and fallback recompute when the copy is gone",
              "vLLM OffloadingConnector / LMCache retrieve miss",
              frozenset({ACCEPT, MATERIALIZE, OFFLOAD, HOSTEVICT, REQUIRE, RESTORE}),
              ("R-offload",), offload=True),
    Primitive("request_lifetime_pin", "pin held for the lifetime of the request (lock_ref)",
              "SGLang TreeNode.lock_ref", _POOL | {FINISH}, ("R-hard",), protect="pin"),
    Primitive("pin_timeout_log_only", "pin force-released after a timeout with only a log line",
              "LMCache controller /pin + PinMonitor", _POOL | {TICK}, ("R-hard",),
              protect="pin"),
    Primitive("block_event_observation",
              "block-scoped event observation: per-copy removal, batched after the step",
              "vLLM/SGLang BlockStored/BlockRemoved", _POOL | {DUP},
              ("R-hard", "R-no-silent-loss", "R-harm"), late_reports=True),
)}


# ---- the transition system ---------------------------------------------------------------------
class _Run:
    """Z3 variables for a run of k transitions from state 0 (or from an arbitrary state)."""

    def __init__(self, p: Primitive, k: int, tag: str):
        self.p, self.k = p, k
        B = z3.Bool
        I = z3.Int

        def vec(mk: Any, name: str) -> list[Any]:
            return [mk(f"{tag}_{name}_{t}") for t in range(k + 1)]

        self.acc, self.mat = vec(B, "acc"), vec(B, "mat")
        self.cached = [vec(B, f"cached{b}") for b in range(2)]
        self.used = [vec(B, f"used{b}") for b in range(2)]
        self.stamp = [vec(I, f"stamp{b}") for b in range(2)]
        self.ttl, self.pin, self.clock = vec(I, "ttl"), vec(B, "pin"), vec(I, "clock")
        self.noadmit, self.dup = vec(B, "noadmit"), vec(B, "dup")
        self.host, self.gen = vec(B, "host"), vec(I, "gen")  # gen: 0 none, 1 offloaded, 2 required
        self.act = [I(f"{tag}_act_{t}") for t in range(k)]
        self.vic = [I(f"{tag}_vic_{t}") for t in range(k)]

    def init(self) -> list[Any]:
        s = 0
        c = [z3.Not(self.acc[s]), z3.Not(self.mat[s]), self.ttl[s] == 0, z3.Not(self.pin[s]),
             self.clock[s] == 0, z3.Not(self.noadmit[s]), z3.Not(self.dup[s]),
             z3.Not(self.host[s]), self.gen[s] == 0]
        for b in range(2):
            c += [z3.Not(self.cached[b][s]), z3.Not(self.used[b][s]), self.stamp[b][s] == 0]
        return c

    # which blocks the primitive protects from allocation
    def protected(self, b: int, t: int) -> Any:
        if b != 0:
            return z3.BoolVal(False)
        kind = self.p.protect
        if kind == "claim":
            return self.acc[t]
        if kind == "ttl":
            return self.ttl[t] > 0
        if kind == "pin":
            return self.pin[t]
        return z3.BoolVal(False)

    def key(self, b: int, t: int) -> list[Any]:
        """Victim order key (smaller goes first): uncached free blocks, then the policy's key."""
        cached = z3.If(self.cached[b][t], 1, 0)
        if self.p.order == "lru":
            return [cached, self.stamp[b][t]]
        if self.p.order == "priority":
            prio = CLAIM_PRIORITY if b == 0 else DEFAULT_PRIORITY
            return [cached, z3.IntVal(prio), self.stamp[b][t]]
        prio = z3.If(self.ttl[t] > 0, CLAIM_PRIORITY, DEFAULT_PRIORITY) if b == 0 \
            else z3.IntVal(DEFAULT_PRIORITY)
        return [cached, prio, self.stamp[b][t]]

    @staticmethod
    def _le(a: list[Any], b: list[Any]) -> Any:
        if not a:
            return z3.BoolVal(True)
        return z3.Or(a[0] < b[0], z3.And(a[0] == b[0], _Run._le(a[1:], b[1:])))

    def evictable(self, b: int, t: int) -> Any:
        return z3.And(z3.Not(self.used[b][t]), z3.Not(self.protected(b, t)))

    def trans(self, t: int) -> list[Any]:
        p, a, v, n = self.p, self.act[t], self.vic[t], t + 1
        same = {name: (getattr(self, name)[t] == getattr(self, name)[n])
                for name in ("acc", "mat", "ttl", "pin", "clock", "noadmit", "dup", "host", "gen")}
        blocks_same = [z3.And(self.cached[b][t] == self.cached[b][n],
                              self.used[b][t] == self.used[b][n],
                              self.stamp[b][t] == self.stamp[b][n]) for b in range(2)]

        def keep(*changed: str, blocks: tuple[int, ...] = ()) -> list[Any]:
            return [same[k] for k in same if k not in changed] + \
                [blocks_same[b] for b in range(2) if b not in blocks]

        moves = []
        if ACCEPT in p.actions:
            moves.append(z3.And(a == ACCEPT, z3.Not(self.acc[t]), z3.Not(self.mat[t]),
                                self.gen[t] == 0, z3.Not(self.host[t]), self.acc[n],
                                *keep("acc")))
        if MATERIALIZE in p.actions:
            pinned = p.protect == "pin"
            moves.append(z3.And(
                a == MATERIALIZE, self.acc[t], z3.Not(self.mat[t]), z3.Not(self.used[0][t]),
                z3.Not(self.cached[0][t]), self.gen[t] == 0,
                self.mat[n], self.cached[0][n], z3.Not(self.used[0][n]),
                self.stamp[0][n] == self.clock[t],
                self.ttl[n] == (DURATION if p.protect == "ttl" or p.order == "duration"
                                or (pinned and TICK in p.actions) else 0),
                self.pin[n] == z3.BoolVal(pinned),
                *keep("mat", "ttl", "pin", blocks=(0,))))
        if ALLOC in p.actions:
            for b in range(2):
                o = 1 - b
                first = z3.Or(z3.Not(self.evictable(o, t)),
                              self._le(self.key(b, t), self.key(o, t)))
                lost = z3.And(b == 0, self.cached[0][t])
                moves.append(z3.And(
                    a == ALLOC, v == b, self.evictable(b, t), first,
                    self.used[b][n], z3.Not(self.cached[b][n]), self.stamp[b][n] == self.stamp[b][t],
                    # a predicate-breaking loss releases the claim (harm)
                    self.acc[n] == z3.And(self.acc[t], z3.Not(lost)) if b == 0 else same["acc"],
                    self.mat[n] == z3.And(self.mat[t], z3.Not(lost)) if b == 0 else same["mat"],
                    self.dup[n] == (z3.BoolVal(False) if b == 1 else self.dup[t]),
                    *keep("acc", "mat", "dup", blocks=(b,))))
        if REFUSE in p.actions:
            moves.append(z3.And(a == REFUSE, self.acc[t],
                                z3.Not(self.evictable(0, t)), z3.Not(self.evictable(1, t)),
                                *keep()))
        if TICK in p.actions:
            expire_pin = p.protect == "pin"
            moves.append(z3.And(
                a == TICK, self.clock[n] == self.clock[t] + 1,
                self.ttl[n] == z3.If(self.ttl[t] > 0, self.ttl[t] - 1, 0),
                # LMCache PinMonitor: the pin is forced to 0 when its timeout lapses (a log line)
                self.pin[n] == (z3.And(self.pin[t], self.ttl[t] > 1) if expire_pin
                                else self.pin[t]),
                *keep("clock", "ttl", "pin")))
        if FINISH in p.actions:
            moves.append(z3.And(a == FINISH, self.pin[t], z3.Not(self.pin[n]), *keep("pin")))
        if NOADMIT in p.actions:
            moves.append(z3.And(a == NOADMIT, self.acc[t], self.mat[t], z3.Not(self.noadmit[t]),
                                self.noadmit[n], *keep("noadmit")))
        if DUP in p.actions:
            moves.append(z3.And(a == DUP, self.mat[t], z3.Not(self.dup[t]),
                                z3.Not(self.used[1][t]), z3.Not(self.cached[1][t]),
                                self.dup[n], self.cached[1][n], z3.Not(self.used[1][n]),
                                self.stamp[1][n] == self.clock[t], *keep("dup", blocks=(1,))))
        if OFFLOAD in p.actions:
            moves.append(z3.And(a == OFFLOAD, self.acc[t], self.mat[t], self.gen[t] == 0,
                                self.host[n], self.gen[n] == 1, *keep("host", "gen")))
        if HOSTEVICT in p.actions:
            moves.append(z3.And(a == HOSTEVICT, self.host[t], z3.Not(self.host[n]),
                                *keep("host")))
        if REQUIRE in p.actions:
            moves.append(z3.And(a == REQUIRE, self.gen[t] == 1, self.gen[n] == 2, *keep("gen")))
        if RESTORE in p.actions:
            # restore from the host copy if it is there, else recompute and serve (fallback)
            moves.append(z3.And(a == RESTORE, self.gen[t] == 2, self.gen[n] == 3,
                                *keep("gen")))
        return [z3.Or(*moves)]

    def bad(self, t: int, rules: frozenset[str]) -> dict[str, Any]:
        """Per encoded rule of the bundle: the condition under which transition t violates it."""
        a, v, out = self.act[t], self.vic[t], {}
        if "R-hard" in rules and "R-hard" in self.p.rules:
            out["R-hard"] = z3.And(a == ALLOC, v == 0, self.acc[t], self.mat[t],
                                   self.cached[0][t])
        if self.p.late_reports:
            if "R-no-silent-loss" in rules:
                out["R-no-silent-loss"] = z3.And(a == ALLOC, v == 0, self.acc[t], self.mat[t])
            if "R-harm" in rules:
                out["R-harm"] = z3.And(a == ALLOC, v == 1, self.dup[t], self.acc[t], self.mat[t])
        if "R-offload" in rules and "R-offload" in self.p.rules:
            out["R-offload"] = z3.And(a == RESTORE, z3.Not(self.host[t]))
        return out


# ---- decoding a run into kvclaims events ---------------------------------------------------------
def _mode_spelling(spec: Spec, mode: str) -> str:
    for spelling, canonical in spec.mode_aliases.items():
        if spelling == mode and canonical == mode:
            return spelling
    return next(s for s, c in spec.mode_aliases.items() if c == mode)


def _decode(p: Primitive, m: z3.ModelRef, run: _Run, k: int, mode: str, spec: Spec) -> list[str]:
    val = lambda x: m.eval(x, model_completion=True)
    truth = lambda x: z3.is_true(val(x))
    lines = []
    spelling = _mode_spelling(spec, mode)
    for t in range(k):
        act = val(run.act[t]).as_long()
        if act == ACCEPT:
            lines.append(f"claim {CLAIM} accepted mode={spelling} required=1 "
                         f"predicate=leading_prefix_at_least(1) prefix={PREFIX} "
                         f"registration=pre_registered usable={USABLE}")
        elif act == MATERIALIZE:
            if p.offload:
                lines.append(f"claim {CLAIM} materialized holds=true")
            else:
                lines.append(f"block 1 materialized claim={CLAIM} prefix={PREFIX} position=0")
                lines.append(f"claim {CLAIM} materialized")
        elif act == ALLOC:
            b = val(run.vic[t]).as_long()
            cached = truth(run.cached[b][t])
            reason = "cached_prefix_reuse" if cached else "free_uncached"
            victim = f"block {b + 1} victim request=a reason={reason} usable={USABLE}"
            claim_loss = b == 0 and cached and truth(run.acc[t]) and truth(run.mat[t])
            copy_loss = b == 1 and truth(run.dup[t]) and truth(run.acc[t])
            if claim_loss and not p.late_reports:
                lines += [f"claim {CLAIM} harmed", victim]
            elif claim_loss:
                lines += [victim, f"claim {CLAIM} harmed"]  # reported with the step's batch
            elif copy_loss:
                # BlockRemoved names the claim's hash: the observer reports harm, but another
                # copy (block 1) still serves the prefix
                lines += [f"claim {CLAIM} harmed", victim]
            else:
                lines.append(victim)
        elif act == NOADMIT:
            lines += [f"active a admitted live_required={USABLE} usable={USABLE}",
                      "active a reuse_denied"]
        elif act == OFFLOAD:
            lines.append(f"claim {CLAIM} offloaded generation=1 tier_from=gpu_kv_cache "
                         f"tier_to=host_offload_tier")
        elif act == REQUIRE:
            lines.append(f"claim {CLAIM} restore_required generation=1")
        elif act == RESTORE:
            if truth(run.host[t]):
                lines.append(f"claim {CLAIM} restored generation=1 source=offload_tier "
                             f"restored_from_offload_tier=true tier_from=host_offload_tier "
                             f"tier_to=gpu_kv_cache")
            else:
                lines.append(f"claim {CLAIM} restored generation=1 source=fallback_recompute "
                             f"restored_from_offload_tier=false tier_from=host_offload_tier "
                             f"tier_to=gpu_kv_cache")
        # TICK, FINISH, HOSTEVICT, DUP: the primitive reports nothing claim-scoped
    return lines


def steps_of(m: z3.ModelRef, run: _Run, k: int) -> tuple[str, ...]:
    out = []
    for t in range(k):
        act = m.eval(run.act[t], model_completion=True).as_long()
        name = ACTION_NAMES[act]
        if act == ALLOC:
            name += f"(block {m.eval(run.vic[t], model_completion=True).as_long() + 1})"
        out.append(name)
    return tuple(out)


def events_from_kvt(lines: list[str], spec: Spec, name: str = "witness") -> tuple[Any, ...]:
    from kvclaims.trace.dsl import read_kvt

    text = "kvtrace 1\n" + "\n".join(lines) + "\n"
    return tuple(read_kvt(io.StringIO(text), name, spec=spec))


def witness_kvt(events: tuple[Any, ...], spec: Spec | None = None) -> str:
    from kvclaims.trace.write import write_kvt

    buf = io.StringIO()
    write_kvt(events, buf, spec=spec or spec_mod.load())
    return buf.getvalue()


# ---- the search --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Search:
    result: SemanticResult
    steps: tuple[str, ...] = ()


def _bundle(spec: Spec, mode: str) -> frozenset[str]:
    return frozenset(load_tables().bundle(spec, mode))


def _fresh_context() -> None:
    """Give each search a new default Z3 context.

    The model Z3 returns for a satisfiable query (hence the witness trace printed) can depend on
    terms earlier searches left in the shared default context; a fresh context per search makes
    every witness a function of its primitive, mode and bound alone (docs/lowering.md and its
    test compare witnesses byte for byte, whatever ran before in the process)."""
    z3.z3._main_ctx = None  # z3.main_ctx() creates the next one on demand


def search(primitive: str, mode: str, bound: int = DEFAULT_BOUND,
           spec: Spec | None = None) -> Search:
    """Shortest witness of `primitive` violating an encoded rule of O[mode], else k-induction.

    A solver `unknown` (kvclaims.solver) at any depth ends the search with status "unknown" and
    Z3's reason: no bad run found below that depth says nothing about it."""
    start = time.perf_counter()
    try:
        return _search(primitive, mode, bound, spec)
    except SolverUnknown as unknown:
        rules = _bundle(spec or spec_mod.load(), mode)
        return Search(SemanticResult(
            primitive, mode, "unknown", tuple(sorted(set(PRIMITIVES[primitive].rules) & rules)),
            seconds=time.perf_counter() - start,
            note=f"the solver answered unknown ({unknown.reason}): inconclusive"))


def _search(primitive: str, mode: str, bound: int, spec: Spec | None) -> Search:
    spec = spec or spec_mod.load()
    _fresh_context()
    p = PRIMITIVES[primitive]
    rules = _bundle(spec, mode)
    checked = tuple(sorted(set(p.rules) & rules if not p.late_reports else
                           {r for r in ("R-hard", "R-no-silent-loss", "R-harm") if r in rules}))
    start = time.perf_counter()
    if not checked:
        return Search(SemanticResult(primitive, mode, "not_modelled", (), note=(
            "the model encodes no rule of this bundle (" + ", ".join(p.rules) + ")")))
    for k in range(1, bound + 1):
        run = _Run(p, k, "w")
        s = z3.Solver()
        s.add(*run.init())
        for t in range(k):
            s.add(*run.trans(t))
            s.add(z3.And(run.act[t] >= 0, run.act[t] < len(ACTION_NAMES)))
        bads = run.bad(k - 1, rules)
        s.add(z3.Or(*bads.values()))
        if p.requires is not None:
            s.add(z3.Or(*[run.act[t] == p.requires for t in range(k - 1)] or [z3.BoolVal(False)]))
        if ask(s) == z3.sat:
            m = s.model()
            rule = next(r for r, cond in sorted(bads.items())
                        if z3.is_true(m.eval(cond, model_completion=True)))
            lines = _decode(p, m, run, k, mode, spec)
            events = events_from_kvt(lines, spec, f"{primitive}-{mode}")
            confirmed = _confirm(spec, events, rule)
            return Search(SemanticResult(
                primitive, mode, "witness", checked, rule=rule, depth=k, events=events,
                confirmed=confirmed, seconds=time.perf_counter() - start),
                steps_of(m, run, k))
    # no witness up to the bound: k-induction on "no transition violates an encoded rule"
    for j in range(bound + 1):
        run = _Run(p, j + 1, "i")
        s = z3.Solver()
        for t in range(j + 1):
            s.add(*run.trans(t))
            s.add(z3.And(run.act[t] >= 0, run.act[t] < len(ACTION_NAMES)))
        for t in range(j):
            s.add(z3.Not(z3.Or(*run.bad(t, rules).values())))
        s.add(z3.Or(*run.bad(j, rules).values()))
        if ask(s) == z3.unsat:
            return Search(SemanticResult(
                primitive, mode, "proved", checked, depth=j + 1,
                seconds=time.perf_counter() - start,
                note=f"no witness up to {bound} steps; {j + 1}-induction holds"))
    return Search(SemanticResult(primitive, mode, "bounded", checked, depth=bound,
                                 seconds=time.perf_counter() - start,
                                 note=f"no witness up to {bound} steps; induction did not close"))


def _confirm(spec: Spec, events: tuple[Any, ...], rule: str) -> bool:
    from kvclaims.check.replay import check_events

    report = check_events(spec, events, "witness")
    return any(f.rule == rule and f.status == "violation" for f in report.findings)


@cache
def check(primitive: str, mode: str, bound: int = DEFAULT_BOUND) -> SemanticResult:
    """The oracle relation.classify asks: checking mode m against primitive p (cached)."""
    return search(primitive, mode, bound).result
