"""The KV-RM runtime: a static-graph decode model with a block pager and committed descriptors.

Decides (docs/model.md §10, issue 8), for one workload, what a KV-RM-style runtime does and writes it as
spec events: a fixed-shape decode graph (max batch B, max blocks per sequence W); mixed request
lengths with asynchronous EOS; logical histories decoupled from physical blocks through a pager
(`kvrm_block_mapped` / `kvrm_block_evicted`, allocations as `allocation_victim_selected`); one
committed descriptor per decode step (`kvrm_descriptor_committed`, logical -> physical, staging
slot = slot * W + position); merge-staged transfer groups (`kvrm_transfer_group`, optimal, see
kvclaims.lower.kvrm_transport); optional bounded far-history summaries (`kvrm_summary_used`); and resident claims
enforced at descriptor commit: hard exclusion (claimed blocks are never victims while under
responsibility), refusal with attribution, demotion before loss, expiry before loss, and a reused
claimed prefix mapped whole (`kvrm_claim_reused`). Fault switches make it misbehave in one named
way each; `KvrmResult.fired` says which changed the trace. Pure: no I/O, deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kvclaims.lower import kvrm_transport as T
from kvclaims.runtime.vocabulary import NAMES as N
from kvclaims.trace.model import Event

# fault switches (each caught by exactly one rule, tests/kvrm)
DOUBLE_COMMIT = "double_commit"  # K1
STALE_MAPPING = "stale_mapping"  # K2
OVERLAPPING_GROUPS = "overlapping_groups"  # K3
GAPPED_GROUPS = "gapped_groups"  # K3
SUMMARY_AS_MATERIALIZATION = "summary_as_materialization"  # K5
WHOLE_PREFIX_MISSING = "prefix_not_whole"  # K4
FAULTS = frozenset({DOUBLE_COMMIT, STALE_MAPPING, OVERLAPPING_GROUPS, GAPPED_GROUPS,
                    SUMMARY_AS_MATERIALIZATION, WHOLE_PREFIX_MISSING})
FAULT_RULE = {DOUBLE_COMMIT: "K1-one-descriptor", STALE_MAPPING: "K2-live-mapping",
              OVERLAPPING_GROUPS: "K3-transfer-groups", GAPPED_GROUPS: "K3-transfer-groups",
              WHOLE_PREFIX_MISSING: "K4-whole-prefix",
              SUMMARY_AS_MATERIALIZATION: "K5-summary-not-materialization"}
COALESCERS = {"merge_staged": T.merge_staged, "greedy_unsorted": T.greedy_unsorted,
              "one_per_block": T.one_per_block}

HARD, DEMOTABLE, EXPIRING = "hard_exclude", "demotable", "expiring"
ACCEPTED = N.state("accepted")
MATERIALIZED = N.state("materialized")
DEMOTED = N.state("demoted")
EXPIRED = N.state("expired")
RESPONSIBLE = frozenset({ACCEPTED, MATERIALIZED})

# runtime-side events and spellings (checked against spec/ by the vocabulary)
_SPEC = N.spec
for _e in ("kvrm_block_mapped", "kvrm_block_evicted", "kvrm_descriptor_committed",
           "kvrm_transfer_group", "kvrm_summary_used", "kvrm_claim_reused",
           "active_request_admitted"):
    if _e not in _SPEC.events:
        raise KeyError(f"spec/events.toml lacks {_e} (needed by the KV-RM runtime)")
MAPPED, EVICTED, COMMITTED, GROUP, SUMMARY, REUSED, ADMITTED = (
    "kvrm_block_mapped", "kvrm_block_evicted", "kvrm_descriptor_committed",
    "kvrm_transfer_group", "kvrm_summary_used", "kvrm_claim_reused", "active_request_admitted")


@dataclass(frozen=True, slots=True)
class KvrmClaim:
    claim_id: str
    prefix_id: str
    blocks: int
    mode: str = HARD  # hard_exclude | demotable | expiring
    duration_steps: int | None = None  # expiring: expires at this decode step


@dataclass(frozen=True, slots=True)
class KvrmRequest:
    request_id: str
    arrival_step: int
    prompt_blocks: int  # own blocks at admission (after the reused prefix, if any)
    decode_blocks: int  # blocks generated before EOS (one per decode step): mixed lengths
    reuses: str | None = None  # claim_id of a claimed prefix this request reuses


@dataclass(frozen=True, slots=True)
class KvrmWorkload:
    max_batch: int
    max_blocks: int  # W
    usable: int
    claims: tuple[KvrmClaim, ...] = ()
    requests: tuple[KvrmRequest, ...] = ()
    summary_window: int | None = None  # own blocks kept in full; older ones are summarized
    run_id: str = "kvrm"

    def length(self, r: KvrmRequest) -> int:
        pre = next((c.blocks for c in self.claims if c.claim_id == r.reuses), 0)
        return pre + r.prompt_blocks + r.decode_blocks

    def check(self) -> None:
        ids = [c.claim_id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate claim ids")
        if sum(c.blocks for c in self.claims) > self.usable:
            raise ValueError("claims exceed the pool")
        for r in self.requests:
            if r.reuses is not None and r.reuses not in ids:
                raise ValueError(f"{r.request_id} reuses unknown claim {r.reuses}")
            if self.length(r) > self.max_blocks:
                raise ValueError(f"{r.request_id} exceeds the static width W={self.max_blocks}")
            if r.prompt_blocks < 1 or r.decode_blocks < 0:
                raise ValueError("a request needs a prompt block")


@dataclass(frozen=True, slots=True)
class KvrmResult:
    events: tuple[Event, ...]
    fired: frozenset[str]
    outcomes: dict[str, str] = field(default_factory=dict)
    groups_per_step: tuple[int, ...] = ()  # transfer groups of each committed step
    pairs_per_step: tuple[int, ...] = ()  # mapped blocks of each committed step
    peak_blocks: int = 0  # peak physical blocks held (claims + active)


class _Claim:
    __slots__ = ("spec", "state", "blocks", "refs")

    def __init__(self, spec: KvrmClaim):
        self.spec = spec
        self.state = ACCEPTED
        self.blocks: list[int] = []  # position -> physical block
        self.refs = 0  # running requests reusing it

    @property
    def responsible(self) -> bool:
        return self.state in RESPONSIBLE


class _Req:
    __slots__ = ("spec", "own", "summarized", "grown", "prefix", "start")

    def __init__(self, spec: KvrmRequest, prefix: _Claim | None, start: int):
        self.spec = spec
        self.start = start
        self.prefix = prefix
        self.own: dict[int, int] = {}  # logical position -> physical block
        self.summarized: set[int] = set()
        self.grown = 0

    @property
    def base(self) -> int:
        return self.prefix.spec.blocks if self.prefix else 0

    def length(self) -> int:
        return self.base + self.spec.prompt_blocks + self.grown

    def need(self) -> int:
        return self.spec.prompt_blocks + self.spec.decode_blocks


class KvrmRuntime:
    """Run one workload; :meth:`run` returns the events, fired faults and transport numbers."""

    def __init__(self, workload: KvrmWorkload, faults: Iterable[str] = (),
                 coalescer: str = "merge_staged"):
        workload.check()
        self.w = workload
        self.faults = frozenset(faults)
        for f in self.faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}")
        self.coalesce = COALESCERS[coalescer]
        self.events: list[Event] = []
        self.fired: set[str] = set()
        self.free: list[int] = list(range(1, workload.usable + 1))  # uncached, in queue order
        self.cached: list[int] = []  # released claims' unreferenced blocks (evictable)
        self.block_owner: dict[int, _Claim] = {}
        self.ever: set[int] = set()
        self.claims = {c.claim_id: _Claim(c) for c in workload.claims}
        self.running: list[_Req] = []
        self.outcomes: dict[str, str] = {}
        self.groups: list[int] = []
        self.pairs: list[int] = []
        self.peak = 0

    # ---- emission ----------------------------------------------------------------------------
    def _emit(self, kind: str, f: dict[str, Any]) -> None:
        f = {k: v for k, v in f.items() if v is not None}
        unknown = set(f) - N.fields
        if unknown:
            raise KeyError(f"fields {sorted(unknown)} are not in spec/fields.toml")
        f["event_sequence"] = len(self.events) + 1
        if len(self.events) == 0:
            f.update(usable_blocks=self.w.usable, run_id=self.w.run_id)
        self.events.append(Event(kind, f, line=len(self.events) + 1))

    def _fire(self, fault: str) -> bool:
        if fault in self.faults and fault not in self.fired:
            self.fired.add(fault)
            return True
        return False

    # ---- the pager ---------------------------------------------------------------------------
    def _held(self) -> int:
        return self.w.usable - len(self.free) - len(self.cached)

    def _alloc(self, step: int, owner: str, pos: int, request: str | None,
               prefix: str | None) -> int:
        if self.free:
            b = self.free.pop(0)
            reason = N.uncached_reason
        else:
            b = self.cached.pop(0)  # a released claim's block: evicting it is a reported loss
            c = self.block_owner.pop(b)
            self._emit(EVICTED, {"decode_step": step, "physical_block_id": b,
                                 "prefix_id": c.spec.prefix_id, "kvrm_evict_reason": "evicted"})
            self._emit(N.lost_after_release, {"claim_id": c.spec.claim_id, "physical_block_id": b,
                                              "claim_status": c.state})
            reason = N.cached_reason
        self.ever.add(b)
        self._emit(N.victim, {"physical_block_id": b, "request_id": owner, "victim_reason": reason,
                              "is_protected_resident": False})
        self._emit(MAPPED, {"decode_step": step, "physical_block_id": b,
                            "logical_block_position": pos, "request_id": request,
                            "prefix_id": prefix})
        self.peak = max(self.peak, self._held())
        return b

    def _protected(self) -> list[_Claim]:
        return sorted((c for c in self.claims.values() if c.responsible and c.blocks),
                      key=lambda c: c.spec.claim_id)

    def _setup(self) -> None:
        for c in self.claims.values():
            s = c.spec
            owner = f"resident:{s.prefix_id}"
            blocks = [self._alloc(0, owner, i, None, s.prefix_id) for i in range(s.blocks)]
            pred = f"leading_prefix_at_least({s.blocks})"
            self._emit(N.accepted, {"claim_id": s.claim_id, "prefix_id": s.prefix_id,
                                    "protection_mode": s.mode,
                                    "resident_blocks_required": s.blocks,
                                    "materialization_predicate": pred,
                                    "duration_steps": s.duration_steps, "request_id": owner})
            for i, b in enumerate(blocks):
                self._emit(N.block_materialized, {
                    "physical_block_id": b, "logical_block_position": i, "claim_id": s.claim_id,
                    "prefix_id": s.prefix_id, "is_protected_resident": True})
                self.block_owner[b] = c
            c.blocks = blocks
            self._emit(N.materialized, {"claim_id": s.claim_id, "predicate_materialized": True,
                                        "resident_blocks_materialized": s.blocks})
            c.state = MATERIALIZED

    def _release(self, c: _Claim, kind: str, action: str) -> None:
        self._emit(kind, {"claim_id": c.spec.claim_id, "arbiter_action": action})
        c.state = DEMOTED if kind == N.demoted else EXPIRED
        if c.refs == 0:
            self.cached.extend(c.blocks)

    # ---- admission: claims enforced before the descriptor that would need the blocks --------
    def _reserved(self) -> int:
        return sum(r.need() for r in self.running)

    def _admit(self, r: KvrmRequest, step: int) -> bool | None:
        """True admitted, False refused, None wait (capacity held by running requests)."""
        prefix = self.claims.get(r.reuses) if r.reuses else None
        if prefix is not None and not prefix.responsible:
            prefix = None  # the claim was released: its prefix is not reused
        need = r.prompt_blocks + r.decode_blocks
        usable = self.w.usable
        protected = self._protected()
        pblocks = sum(len(c.blocks) for c in protected)
        if pblocks + need > usable:
            for c in [c for c in protected if c.spec.mode == DEMOTABLE and c is not prefix
                      and c.refs == 0]:
                self._release(c, N.demoted, "demote_on_conflict")
            protected = self._protected()
            pblocks = sum(len(c.blocks) for c in protected)
        if pblocks + need > usable:
            free = usable - pblocks - sum(len(x.own) for x in self.running)
            free = min(free, usable - pblocks)
            self._emit(N.refused, {
                "request_id": r.request_id, "active_live_blocks_required": need,
                "arbiter_action": "protected_resident_capacity_refused",
                "blocking_claim_ids": [c.spec.claim_id for c in protected],
                "blocking_prefix_ids": sorted({c.spec.prefix_id for c in protected}),
                "protected_resident_blocks": pblocks,
                "protected_resident_claims": [{"claim_id": c.spec.claim_id,
                                               "prefix_id": c.spec.prefix_id,
                                               "protection_mode": c.spec.mode}
                                              for c in protected],
                "resident_plus_active_blocks": pblocks + need,
                "capacity_shortfall_blocks": max(0, need - free),
                "feasibility": N.infeasible, "free_blocks_before_allocate": free,
                "future_reuse_admitted": False})
            self.outcomes[r.request_id] = "refused"
            return False
        # released claims still mapped by running requests hold their blocks until EOS
        pinned = sum(len(c.blocks) for c in self.claims.values()
                     if not c.responsible and c.refs > 0)
        if pblocks + pinned + self._reserved() + need > usable or \
                len(self.running) >= self.w.max_batch:
            return None
        self._emit(ADMITTED, {"request_id": r.request_id, "active_live_blocks_required": need,
                              "arbiter_action": "admit"})
        req = _Req(r, prefix, step)
        if prefix is not None:
            prefix.refs += 1
        for i in range(r.prompt_blocks):
            pos = req.base + i
            req.own[pos] = self._alloc(step, r.request_id, pos, r.request_id, None)
        self.running.append(req)
        self.outcomes[r.request_id] = "served"
        return True

    # ---- one decode step ---------------------------------------------------------------------
    def _step(self, step: int) -> None:
        W = self.w.max_blocks
        for req in self.running:  # grow: one new block per step after the first
            if req.grown < req.spec.decode_blocks and step > req.start:
                pos = req.length()
                req.grown += 1
                req.own[pos] = self._alloc(step, req.spec.request_id, pos, req.spec.request_id,
                                           None)
        summaries: list[tuple[_Req, list[int], str | None]] = []
        win = self.w.summary_window
        for req in self.running:
            far: list[int] = []
            if win is not None:
                own = sorted(req.own)
                for pos in own[:max(0, len(own) - win)]:
                    b = req.own.pop(pos)
                    self._emit(EVICTED, {"decode_step": step, "physical_block_id": b,
                                         "request_id": req.spec.request_id,
                                         "kvrm_evict_reason": "summarized"})
                    self.free.append(b)
                    req.summarized.add(pos)
            far = sorted(req.summarized)
            cid = None
            if req.prefix is not None and req.prefix.responsible and (
                    SUMMARY_AS_MATERIALIZATION in self.faults
                    and SUMMARY_AS_MATERIALIZATION not in self.fired):
                self._fire(SUMMARY_AS_MATERIALIZATION)
                far = sorted(set(far) | set(range(req.base)))
                cid = req.prefix.spec.claim_id
                req.summarized |= set(range(req.base))
            elif req.prefix is not None and req.summarized & set(range(req.base)):
                cid = req.prefix.spec.claim_id
            if far:
                summaries.append((req, far, cid))
        stale: tuple[_Req, int] | None = None
        if STALE_MAPPING in self.faults and STALE_MAPPING not in self.fired:
            cand = next((r for r in self.running if len(r.own) >= 2), None)
            if cand is not None:
                self._fire(STALE_MAPPING)
                pos = max(cand.own)
                self._emit(EVICTED, {"decode_step": step, "physical_block_id": cand.own[pos],
                                     "request_id": cand.spec.request_id,
                                     "kvrm_evict_reason": "evicted"})
                stale = (cand, pos)  # the pager dropped it; the descriptor keeps the entry
        batch, table, pairs = [], [], []
        drop_prefix = None
        for slot, req in enumerate(self.running):
            row = []
            for pos in range(req.length()):
                if pos < req.base and pos not in req.summarized:
                    b = req.prefix.blocks[pos] if req.prefix else -1
                elif pos in req.own:
                    b = req.own[pos]
                else:
                    b = -1
                row.append(b)
            if req.prefix is not None and req.base > 0 and drop_prefix is None and \
                    self._fire(WHOLE_PREFIX_MISSING):
                drop_prefix = req
                row[req.base - 1] = -1
            batch.append(req.spec.request_id)
            table.append(row)
            pairs += [(b, slot * W + p) for p, b in enumerate(row) if b >= 0]
        if stale is not None:
            self.free.append(stale[0].own.pop(stale[1]))
        commit = {"decode_step": step, "batch_requests": batch, "block_table": table,
                  "max_batch": self.w.max_batch, "max_blocks_per_sequence": W}
        self._emit(COMMITTED, commit)
        if self._fire(DOUBLE_COMMIT):
            self._emit(COMMITTED, dict(commit))
        for req, far, cid in summaries:
            self._emit(SUMMARY, {"decode_step": step, "request_id": req.spec.request_id,
                                 "summary_positions": far, "claim_id": cid})
        for req in self.running:
            if req.prefix is not None and req.prefix.responsible:
                self._emit(REUSED, {"decode_step": step, "request_id": req.spec.request_id,
                                    "claim_id": req.prefix.spec.claim_id,
                                    "prefix_id": req.prefix.spec.prefix_id})
        groups = self.coalesce(pairs)
        if len(groups) >= 1 and self._fire(OVERLAPPING_GROUPS):
            s, d = groups[0]
            groups = groups + [((s[0],), (d[0],))]
        if len(groups) >= 2 and GAPPED_GROUPS in self.faults:
            gap = next((i for i in range(len(groups) - 1)
                        if groups[i][1][-1] + 1 == groups[i + 1][1][0]), None)
            if gap is not None and self._fire(GAPPED_GROUPS):
                a, b = groups[gap], groups[gap + 1]
                groups = groups[:gap] + [(a[0] + b[0], a[1] + b[1])] + groups[gap + 2:]
        for s, d in groups:
            self._emit(GROUP, {"decode_step": step, "src_blocks": list(s),
                               "dst_slots": list(d)})
        self.groups.append(len(groups))
        self.pairs.append(len(pairs))
        # asynchronous EOS: requests that generated their last block leave after this step
        for req in [r for r in self.running if r.grown >= r.spec.decode_blocks]:
            self.running.remove(req)
            for pos in sorted(req.own):
                b = req.own.pop(pos)
                self._emit(EVICTED, {"decode_step": step, "physical_block_id": b,
                                     "request_id": req.spec.request_id,
                                     "kvrm_evict_reason": "eos"})
                self.free.append(b)
            if req.prefix is not None:
                req.prefix.refs -= 1
                if req.prefix.refs == 0 and not req.prefix.responsible:
                    self.cached.extend(req.prefix.blocks)

    def run(self) -> KvrmResult:
        self._setup()
        waiting = sorted(self.w.requests, key=lambda r: (r.arrival_step, r.request_id))
        step = 0
        tick = 0
        while waiting or self.running:
            for c in self.claims.values():
                d = c.spec.duration_steps
                if c.spec.mode == EXPIRING and d is not None and tick >= d and c.responsible:
                    self._release(c, N.expired, "claim_expired")
            for r in [r for r in waiting if r.arrival_step <= tick]:
                if self._admit(r, step) is not None:
                    waiting.remove(r)
            tick += 1
            if self.running:
                self._step(step)
                step += 1
        return KvrmResult(tuple(self.events), frozenset(self.fired), dict(self.outcomes),
                          tuple(self.groups), tuple(self.pairs), self.peak)


def kvrm_runtime(workload: KvrmWorkload, faults: Iterable[str] = (),
                 coalescer: str = "merge_staged") -> KvrmResult:
    """Factory for the fuzz runtime interface: run one workload, return its result."""
    return KvrmRuntime(workload, faults, coalescer).run()
