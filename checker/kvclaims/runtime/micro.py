"""The MicroRuntime: a deterministic paged-KV pool that emits reference telemetry (docs/model.md §2, §8).

It decides, for one workload under one arbitration policy (kvclaims.runtime.policies), what a
runtime holding resident claims and serving active requests does, and writes what it did as spec
events: block allocations in vLLM free-queue order, claim acceptance and materialization,
harm and post-release losses just before the victim they report, refusals and deferrals with full
attribution, demotion, expiry (TTL in allocation epochs), offload and restoration. Policies that
may defer declare their bound (`defer_bound_steps`) on the first event and decide within it
(R-progress); soft claims give way lowest `claim_priority` first, with harm (R-yield). Fault
switches make it misbehave in one named way each; `RunResult.fired` says which actually changed
the trace.
Pure: no I/O; the same inputs always give the same events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kvclaims.runtime import policies as P
from kvclaims.runtime.pool import Content, Pool
from kvclaims.runtime.vocabulary import NAMES as N
from kvclaims.runtime.workload import (
    FULL_ATTENTION,
    ClaimSpec,
    PrefixSpec,
    RequestSpec,
    Workload,
)
from kvclaims.trace.model import Event

# Runtime-side claim states (spec/lifecycle.toml names).
ACCEPTED = N.state("accepted")
MATERIALIZED = N.state("materialized")
DEMOTED = N.state("demoted")
EXPIRED = N.state("expired")
HARMED = N.state("harmed")
REFUSED = N.state("refused")
RESPONSIBLE = frozenset({ACCEPTED, MATERIALIZED})

# Request outcomes (docs/model.md §7 vocabulary).
SERVED = "served"
REFUSED_OUTCOME = "refused"
DEFERRED_OUTCOME = "deferred"  # only under the fault defer_forever: never decided

# arbiter_action values (papers P1.5.1 and the vLLM prototype's spellings).
ACTION_CAPACITY_REQUIRED = "capacity_required"
ACTION_DEFER = "defer_active"
ACTION_REFUSED_AFTER_DEFER = "protected_resident_capacity_refused"
ACTION_NO_ADMIT = "write_no_admit"
ACTION_DEMOTE = "demote_on_conflict"
ACTION_EXPIRE = "claim_expired"
ACTION_OFFLOAD = "offload_resident"
ACTION_RESTORE_UNAVAILABLE = {
    "refusal": "restore_unavailable_refuse",
    "demotion": "restore_unavailable_demotion",
    "expiry": "restore_unavailable_expiry",
    "harm": "restore_unavailable_harm",
}
CACHE_IDENTITY = "microruntime-cache:v1"
RESTORE_FAILURE_REASON = "controlled_unavailable"
RECOMPUTE_SOURCE = "fallback_recompute"


@dataclass(frozen=True, slots=True)
class RunResult:
    events: tuple[Event, ...]
    fired: frozenset[str]  # fault switches that changed the trace
    outcomes: dict[str, str] = field(default_factory=dict)  # request_id -> served | refused | deferred


class _Claim:
    __slots__ = ("spec", "prefix", "state", "mode", "protected", "tracked", "positions",
                 "epoch", "offloaded", "off_gen", "host_lost", "silent", "harm_count",
                 "expiry_due", "broken")

    def __init__(self, spec: ClaimSpec, prefix: PrefixSpec, mode: str, protected: bool,
                 tracked: bool):
        self.spec = spec
        self.prefix = prefix
        self.state = ACCEPTED
        self.mode = mode
        self.protected = protected
        self.tracked = tracked  # block events carry its claim id, so losses must be reported
        self.positions: dict[int, int] = {}  # surviving logical position -> physical block
        self.epoch = 0
        self.offloaded = False
        self.off_gen = 0
        self.host_lost = False  # its offloaded copy was declared unavailable
        self.silent = False  # fault: a loss went unreported, so nothing further is reported
        self.harm_count = 0
        self.expiry_due = False  # fault expiry_after_loss: expired internally, not yet reported
        self.broken = False  # its predicate broke (reported or not): it is not expired later

    @property
    def id(self) -> str:
        return self.spec.claim_id

    def leading(self) -> int:
        k = 0
        while k in self.positions:
            k += 1
        return k

    def holds(self) -> bool:
        return self.leading() >= self.spec.required

    @property
    def responsible(self) -> bool:
        return self.state in RESPONSIBLE


class MicroRuntime:
    """Run one workload under one policy; :meth:`run` returns the events and fired faults."""

    def __init__(self, workload: Workload, policy: P.Policy | str,
                 faults: Iterable[str] = (), *, base_fields: bool = True):
        workload.check()
        self.w = workload
        self.policy = policy if isinstance(policy, P.Policy) else P.Policy(policy)
        self.faults = frozenset(faults)
        for f in self.faults:
            if f not in P.FAULTS:
                raise ValueError(f"unknown fault {f!r}")
        self.base_fields = base_fields
        self.pool = Pool(workload.usable)
        self.events: list[Event] = []
        self.fired: set[str] = set()
        self.claims: dict[str, _Claim] = {}
        self.claim_of_prefix: dict[str, _Claim] = {}
        self.epoch = 0
        self.outcomes: dict[str, str] = {}
        self.all_claim_ids: list[str] = []  # every claim id the runtime has named

    # ---- emission ----------------------------------------------------------------------------
    def _emit(self, kind: str, fields: dict[str, Any], *, usable: bool = False) -> None:
        f = {k: v for k, v in fields.items() if v is not None}
        unknown = set(f) - N.fields
        if unknown:
            raise KeyError(f"fields {sorted(unknown)} are not in spec/fields.toml")
        if not self.events and self.policy.name in P.DEFERRING:
            # The trace header declares the deferral bound (docs/model.md §6 R-progress).
            f["defer_bound_steps"] = self.policy.defer_attempts
        f["event_sequence"] = len(self.events) + 1
        if self.base_fields:
            f.update(schema_version=1, run_id=self.w.run_id, policy=self.policy.name,
                     usable_blocks=self.w.usable)
        elif usable or not self.events:
            f["usable_blocks"] = self.w.usable
        self.events.append(Event(kind, f, line=len(self.events) + 1))

    def _fire(self, fault: str) -> bool:
        if fault in self.faults:
            self.fired.add(fault)
            return True
        return False

    def _has(self, fault: str) -> bool:
        return fault in self.faults

    # ---- claims ------------------------------------------------------------------------------
    def _identity(self, c: _Claim) -> dict[str, Any]:
        ident: dict[str, Any] = {"claim_id": c.id, "prefix_id": c.prefix.prefix_id}
        if self.policy.name == P.OFFLOADABLE:
            ident.update(
                predicate_id=f"predicate:{c.id}",
                materialization_predicate=c.spec.predicate,
                reusable_object_id=f"kv-object:{c.prefix.prefix_id}",
                request_token_map_id=f"token-map:{c.prefix.prefix_id}",
                cache_identity=CACHE_IDENTITY,
            )
        return ident

    def _claim_record(self, c: _Claim) -> dict[str, Any]:
        return {
            "claim_id": c.id, "prefix_id": c.prefix.prefix_id, "protection_mode": c.mode,
            "resident_blocks_materialized": len(c.positions),
            "resident_blocks_required": c.prefix.blocks,
            "useful_threshold_blocks": c.spec.required,
            "leading_blocks_survived": c.leading(),
            "predicate": "leading_prefix_at_least", "predicate_materialized": c.holds(),
        }

    def _mode_for(self, spec: ClaimSpec) -> tuple[str, bool]:
        """(protection_mode spelling, excluded from the free queue?) for a claim under policy."""
        spelling = self.policy.mode_spelling
        assert spelling is not None
        if self.policy.name in P.EXCLUDING and not spec.protected:
            return N.mode(P.BEST_EFFORT_SPELLING), False
        return N.mode(spelling), self.policy.name in P.EXCLUDING

    def _reserve(self) -> int:
        if self.policy.reserve_blocks is not None:
            return self.policy.reserve_blocks
        return max((r.max_live for r in self.w.requests), default=0)

    # ---- resident prefixes -------------------------------------------------------------------
    def _load_prefix(self, p: PrefixSpec) -> None:
        rid = p.owner_request
        blocks = self._allocate(rid, p.blocks, exclude=self._excluded())
        claim: _Claim | None = None
        cs = p.claim
        accept_now = False
        if cs is not None and self.policy.name not in P.CLAIMLESS:
            mode, protected = self._mode_for(cs)
            protected_now = sum(len(c.positions) for c in self._protected())
            if self.policy.name == P.RESIDENT_RESERVE and protected and (
                    protected_now + p.blocks > self.w.usable - self._reserve()):
                self._emit(N.submitted, {"claim_id": cs.claim_id, "prefix_id": p.prefix_id,
                                         "request_id": rid, "protection_mode": mode,
                                         "resident_blocks_required": p.blocks,
                                         "materialization_predicate": cs.predicate})
                self._emit(N.rejected, {"claim_id": cs.claim_id, "prefix_id": p.prefix_id,
                                        "request_id": rid,
                                        "arbiter_action": "refuse_residency_claim"})
                self.all_claim_ids.append(cs.claim_id)
            else:
                tracked = self.policy.name != P.OFFLOADABLE
                claim = _Claim(cs, p, mode, protected, tracked)
                claim.epoch = self.epoch
                self.claims[cs.claim_id] = claim
                self.claim_of_prefix[p.prefix_id] = claim
                self.all_claim_ids.append(cs.claim_id)
                accept_now = True
        post_hoc = claim is not None and self._fire(P.POST_HOC_ACCEPTANCE)
        if claim is not None and post_hoc:
            claim.tracked = False
        if accept_now and not post_hoc:
            assert claim is not None
            self._emit_accepted(claim, rid, registration=None)
        announced = False
        contents: dict[int, Content] = {}
        for pos, b in enumerate(blocks):
            if claim is not None:
                claim.positions[pos] = b
            if (claim is not None and claim.tracked and not announced
                    and claim.leading() >= claim.spec.required):
                # reference order: the claim event inside the run, before the block that
                # makes the predicate true (papers P1.9.1, corpus conformance/L3)
                self._emit_materialized(claim, rid)
                announced = True
            content = Content(p.prefix_id, pos)
            contents[b] = content
            if claim is None or claim.tracked or post_hoc:
                self._emit(N.block_materialized, {
                    "request_id": rid, "prefix_id": p.prefix_id,
                    "claim_id": claim.id if claim is not None and claim.tracked else None,
                    "logical_block_position": pos, "physical_block_id": b,
                    "block_hash": content.block_hash, "ref_count": 1,
                    "is_protected_resident": bool(claim is not None and claim.protected
                                                  and claim.tracked),
                })
        if claim is not None and not claim.tracked:
            if post_hoc:
                self._emit_accepted(claim, rid, registration=N.post_hoc)
            self._emit_materialized(claim, rid, blocks=blocks)
            announced = True
        if claim is not None:
            claim.state = MATERIALIZED if announced else ACCEPTED
        self.pool.release(self._free_order(blocks), contents)

    def _emit_accepted(self, c: _Claim, rid: str, registration: str | None) -> None:
        self._emit(N.accepted, {
            **self._identity(c), "request_id": rid, "protection_mode": c.mode,
            "resident_blocks_required": c.prefix.blocks,
            "useful_threshold_blocks": c.spec.required,
            "materialization_predicate": c.spec.predicate,
            "predicted_value": c.spec.predicted_value, "confidence": 1.0,
            "duration_steps": c.spec.duration_steps if self.policy.name == P.EXPIRING else None,
            "claim_priority": c.spec.priority,
            "claim_registration": registration,
        })

    def _emit_materialized(self, c: _Claim, rid: str, blocks: list[int] | None = None) -> None:
        self._emit(N.materialized, {
            **self._identity(c), "request_id": rid, "protection_mode": c.mode,
            "predicate": "leading_prefix_at_least", "predicate_materialized": True,
            "resident_blocks_materialized": c.spec.required,
            "resident_blocks_required": c.prefix.blocks,
            "useful_threshold_blocks": c.spec.required,
            "block_ids": list(blocks) if blocks is not None else None,
            "block_count_footprint": len(blocks) if blocks is not None else None,
            "cache_tier": N.gpu_tier if blocks is not None else None,
        })

    def _free_order(self, blocks: list[int]) -> list[int]:
        return list(reversed(blocks)) if self.policy.free_order == P.TAIL_FIRST else list(blocks)

    # ---- allocation --------------------------------------------------------------------------
    def _protected(self) -> list[_Claim]:
        return [c for c in self.claims.values()
                if c.protected and c.responsible and not c.silent and not c.expiry_due
                and c.positions]

    def _excluded(self) -> set[int]:
        if self.policy.name not in P.EXCLUDING:
            return set()
        return {b for c in self._protected() for b in c.positions.values()}

    def _owner(self, block: int) -> tuple[_Claim | None, int]:
        content = self.pool.content.get(block)
        if content is None:
            return None, -1
        c = self.claim_of_prefix.get(content.owner)
        if c is None or c.offloaded or c.positions.get(content.position) != block:
            return None, content.position
        return c, content.position

    def _back_key(self, block: int) -> tuple[float, ...] | None:
        """Soft priority (and offloadable): blocks of claims under responsibility go last, lower
        `claim_priority` first (docs/model.md §6 R-yield: lowest priority gives way first), then lower
        predicted value."""
        c, _ = self._owner(block)
        if c is None or not c.responsible:
            return None
        return (c.spec.priority or 0, c.spec.predicted_value)

    def _allocate(self, rid: str, n: int, *, exclude: set[int]) -> list[int]:
        back = self._back_key if self.policy.name in (P.SOFT_PRIORITY, P.OFFLOADABLE) else None
        queue = self.pool.queue(exclude, back)
        if len(queue) < n:
            raise AssertionError(f"pool cannot give {n} blocks to {rid}: the arbiter let an "
                                 "infeasible allocation through")
        chosen = queue[:n]
        if self.policy.name == P.OFFLOADABLE:
            self._offload_before(chosen, rid)
        breaks, last = self._breaking(chosen)
        for rank, b in enumerate(chosen):
            c, pos = self._owner(b)
            if c is not None:
                self._report_loss(c, pos, b, rid, breaks.get(c.id, False), last.get(c.id) == b)
            content = self.pool.take(b)
            self._emit(N.victim, {
                "request_id": rid, "physical_block_id": b, "free_queue_rank": rank,
                "is_protected_resident": False,
                "victim_reason": N.cached_reason if content is not None else N.uncached_reason,
                "block_hash": content.block_hash if content is not None else None,
                "ref_count": 0,
            })
        return chosen

    def _breaking(self, chosen: list[int]) -> tuple[dict[str, bool], dict[str, int]]:
        """Per claim losing blocks in this allocation: does the allocation break its predicate,
        and which chosen block is its last loss?"""
        lost: dict[str, set[int]] = {}
        last: dict[str, int] = {}
        for b in chosen:
            c, pos = self._owner(b)
            if c is not None:
                lost.setdefault(c.id, set()).add(pos)
                last[c.id] = b
        out = {}
        for cid, positions in lost.items():
            c = self.claims[cid]
            k = 0
            while k in c.positions and k not in positions:
                k += 1
            out[cid] = c.holds() and k < c.spec.required
        return out, last

    def _report_loss(self, c: _Claim, pos: int, block: int, rid: str, breaks: bool,
                     last: bool) -> None:
        before = c.holds()
        del c.positions[pos]
        after = c.holds()
        if before and not after:
            c.broken = True
        if not c.tracked or c.silent or c.mode == P.BEST_EFFORT_SPELLING:
            return
        if c.responsible and not c.expiry_due:
            if before and not after:
                if self._fire(P.SILENT_LOSS):
                    c.silent = True
                    return
                self._emit_harm(c, block, rid)
            elif before and not breaks and last and self._fire(P.HARM_WITHOUT_BREAK):
                # reported before this allocation's last loss of the claim, which keeps the
                # predicate true: nothing in the allocation breaks it
                self._emit_harm(c, block, rid)
            return
        if c.expiry_due:
            self._fire(P.EXPIRY_AFTER_LOSS)
            return
        if c.state == HARMED and c.harm_count == 1 and self._fire(P.HARM_TWICE):
            self._emit_harm(c, block, rid)
            return
        self._emit(N.lost_after_release, {
            **self._identity(c), "request_id": c.prefix.owner_request, "physical_block_id": block,
            "claim_status": c.state, "protection_mode": c.mode,
            "resident_blocks_materialized": len(c.positions),
            "resident_blocks_required": c.prefix.blocks,
            "useful_threshold_blocks": c.spec.required,
        })

    def _emit_harm(self, c: _Claim, block: int | None, rid: str, **extra: Any) -> None:
        c.harm_count += 1
        c.state = HARMED
        self._emit(N.harmed, {
            **self._identity(c), "request_id": c.prefix.owner_request,
            "physical_block_id": block, "protection_mode": c.mode,
            "predicate": "leading_prefix_at_least", "predicate_before": True,
            "predicate_after": False, "resident_blocks_materialized": len(c.positions),
            "resident_blocks_required": c.prefix.blocks,
            "useful_threshold_blocks": c.spec.required, "value_lost": c.spec.predicted_value,
            **extra,
        })

    # ---- offload -----------------------------------------------------------------------------
    def _offload_before(self, chosen: list[int], rid: str) -> None:
        seen: list[_Claim] = []
        for b in chosen:
            c, _ = self._owner(b)
            if c is not None and c.responsible and c not in seen:
                seen.append(c)
        for c in seen:
            c.off_gen += 1
            blocks = [c.positions[p] for p in sorted(c.positions)]
            self._emit(N.offloaded, {
                **self._identity(c), "request_id": rid, "arbiter_action": ACTION_OFFLOAD,
                "offload_generation": c.off_gen, "cache_tier": N.host_tier,
                "cache_tier_from": N.gpu_tier, "cache_tier_to": N.host_tier,
                "block_ids": blocks, "block_count_footprint": len(blocks),
                "restoration_required": True,
            })
            c.offloaded = True
            c.positions = {}

    def _reuse(self, r: RequestSpec) -> bool:
        """The restore path of a request reusing an offloaded claim; False if it was refused."""
        c = self.claim_of_prefix.get(r.reuses or "")
        if (self.policy.name != P.OFFLOADABLE or c is None or not c.offloaded or c.host_lost
                or not c.responsible):
            return True
        rid = r.request_id
        gen = c.off_gen
        self._emit(N.restore_required, {
            **self._identity(c), "request_id": rid, "offload_generation": gen,
            "cache_tier": N.host_tier, "block_count_footprint": c.prefix.blocks,
            "restoration_required": True, "reuse_requires_restoration": True,
            "predicate_satisfied_from_primary": False,
        })
        if c.spec.restore_fails:
            return self._restore_failed(c, r, gen)
        blocks = self._allocate(rid, c.prefix.blocks, exclude=set())
        recompute = self._fire(P.RESTORE_FROM_RECOMPUTE)
        self._emit(N.restored, {
            **self._identity(c), "request_id": rid, "offload_generation": gen,
            "cache_tier": N.gpu_tier,
            "cache_tier_from": RECOMPUTE_SOURCE if recompute else N.host_tier,
            "cache_tier_to": N.gpu_tier, "block_ids": blocks,
            "block_count_footprint": len(blocks), "restoration_completed": True,
            "restoration_source": RECOMPUTE_SOURCE if recompute else N.restore_source,
            "restored_from_offload_tier": not recompute,
        })
        c.offloaded = False
        c.positions = {pos: b for pos, b in enumerate(blocks)}
        self._emit(N.reuse_after_restore, {
            **self._identity(c), "request_id": rid, "offload_generation": gen,
            "cache_tier": N.gpu_tier, "block_count_footprint": len(blocks),
            "predicate_satisfied": True, "reuse_requires_restoration": True,
        })
        contents = {b: Content(c.prefix.prefix_id, pos) for pos, b in enumerate(blocks)}
        self.pool.release(self._free_order(blocks), contents)
        return True

    def _restore_failed(self, c: _Claim, r: RequestSpec, gen: int) -> bool:
        rid = r.request_id
        outcome = c.spec.failure_outcome
        if outcome not in N.outcome_events:
            raise ValueError(f"claim {c.id}: unknown restoration failure outcome {outcome!r}")
        target = c.id
        if self._fire(P.WRONG_CLAIM_OUTCOME):
            others = sorted(i for i in self.all_claim_ids if i != c.id)
            target = others[0] if others else f"{c.id}:other"
        self._emit(N.restoration_failed, {
            **self._identity(c), "request_id": rid, "offload_generation": gen,
            "cache_tier": N.host_tier, "block_count_footprint": c.prefix.blocks,
            "claim_scoped_outcome": True, "claim_scoped_outcome_type": outcome,
            "outcome_claim_id": target, "controlled_restoration_unavailable": True,
            "injected_restoration_failure": True,
            "restoration_failure_reason": RESTORE_FAILURE_REASON,
        })
        c.host_lost = True
        action = ACTION_RESTORE_UNAVAILABLE[outcome]
        answer = N.outcome_events[outcome]
        common = {**self._identity(c), "request_id": rid, "offload_generation": gen,
                  "arbiter_action": action, "outcome_claim_id": c.id}
        if answer == N.refused:
            self._emit(N.refused, {
                **common, "blocking_claim_ids": [c.id],
                "blocking_prefix_ids": [c.prefix.prefix_id],
                "feasibility": N.restore_infeasible,
                "future_reuse_requested": r.future_reuse_requested,
                "future_reuse_admitted": False,
            }, usable=True)
            self.outcomes[rid] = REFUSED_OUTCOME
            return False
        if answer == N.harmed:
            c.harm_count += 1
            self._emit(N.harmed, {**common, "predicate_before": True, "predicate_after": False,
                                  "value_lost": c.spec.predicted_value})
            c.state = HARMED
        else:
            self._emit(answer, common)
            c.state = DEMOTED if answer == N.demoted else EXPIRED
        return True

    # ---- active requests ---------------------------------------------------------------------
    def _expire_due(self) -> None:
        """Expiring policy: claims whose duration ended expire at the start of this epoch."""
        if self.policy.name != P.EXPIRING:
            return
        for c in self.claims.values():
            d = c.spec.duration_steps
            if d is None or not c.responsible or c.expiry_due or self.epoch < c.epoch + d:
                continue
            if c.broken and not c.protected:
                # A claim that gives way lost its predicate already (best effort: unreported);
                # expiring it now would be a release after the loss (docs/model.md §6 R-release-order).
                continue
            if c.protected and self._has(P.EXPIRY_AFTER_LOSS):
                c.expiry_due = True  # reported only after this request's allocations
                continue
            self._emit_expired(c)

    def _emit_expired(self, c: _Claim) -> None:
        c.expiry_due = False
        self._emit(N.expired, {**self._identity(c), "request_id": c.prefix.owner_request,
                               "arbiter_action": ACTION_EXPIRE, "protection_mode": c.mode,
                               "resident_blocks_materialized": len(c.positions)})
        c.state = EXPIRED

    def _flush_expiry(self) -> None:
        for c in self.claims.values():
            if c.expiry_due:
                self._emit_expired(c)

    def _decision(self, r: RequestSpec, kind: str, action: str, attempts: int | None,
                  blockers: list[_Claim] | None = None) -> list[str]:
        """Emit a refusal or deferral with attribution; return the blocking claim ids named."""
        protected = sorted(self._protected() if blockers is None else blockers,
                           key=lambda c: c.id)
        blocks = sum(len(c.positions) for c in protected)
        free = self.pool.free_count(self._excluded() if blockers is None else
                                    {b for c in protected for b in c.positions.values()})
        need = r.max_live
        shortfall = max(0, need - free)
        blocking = [c.id for c in protected]
        bystanders = set(self.all_claim_ids) - set(blocking)
        if bystanders and self._fire(P.SMEARED_ATTRIBUTION):
            blocking = sorted(set(self.all_claim_ids))
        reported_free = free
        if self._has(P.WRONG_FREE) and blocks > 0:
            self._fire(P.WRONG_FREE)
            reported_free = free + blocks
        if self._fire(P.WRONG_SHORTFALL):
            shortfall += 1
        self._emit(kind, {
            "request_id": r.request_id, "active_live_blocks_required": need,
            "active_live_blocks_current": 0, "active_chunks": list(r.chunks),
            "arbiter_action": action, "blocking_claim_ids": blocking,
            "blocking_prefix_ids": sorted({c.prefix.prefix_id for c in protected}),
            "protected_resident_blocks": blocks,
            "protected_resident_claims": [self._claim_record(c) for c in protected],
            "resident_plus_active_blocks": blocks + need,
            "capacity_shortfall_blocks": shortfall,
            "feasibility": N.infeasible,
            "free_blocks_before_allocate": reported_free,
            "future_reuse_requested": r.future_reuse_requested,
            "future_reuse_admitted": False,
            "defer_attempts": attempts,
        }, usable=True)
        return blocking

    def _request(self, r: RequestSpec) -> None:
        """Serve, defer or refuse one active request (docs/model.md §6). An excluding policy defers at
        most `defer_attempts` times, the bound its trace declares (R-progress), then refuses with
        attribution; a deferral is closed early when a claim it named is released (expiry)."""
        attempt = 0
        open_run = 0  # deferrals since the request's deferral last opened (R-progress)
        named: list[str] = []  # the claims the latest deferral named as blocking
        while True:
            self.epoch += 1
            self._expire_due()
            if any(not self.claims[cid].responsible for cid in named):
                open_run, named = 0, []  # a named claim was released: the deferral is closed
            if not self._reuse(r):
                return
            if self.policy.name == P.SOFT_PRIORITY and self._over_protect(r):
                return
            if self.policy.name not in P.EXCLUDING:
                break
            need = r.max_live
            if need <= self.pool.free_count(self._excluded()):
                break
            if self.policy.name == P.DEMOTE_ON_CONFLICT:
                self._demote_until_fits(r)
                break
            self._flush_expiry()
            bound = self.policy.defer_attempts
            past = attempt >= bound  # a correct policy refuses now
            if not past or self._has(P.DEFER_FOREVER):
                if past and open_run > bound:
                    # this deferral is the one past the declared bound
                    self._fire(P.DEFER_FOREVER)
                named = self._decision(r, N.deferred, ACTION_DEFER, None)
                attempt += 1
                open_run += 1
                if past and open_run > bound + 1:
                    self.outcomes[r.request_id] = DEFERRED_OUTCOME  # never decided
                    return
                continue
            action = ACTION_REFUSED_AFTER_DEFER if attempt else ACTION_CAPACITY_REQUIRED
            self._decision(r, N.refused, action, attempt if attempt else None)
            self.outcomes[r.request_id] = REFUSED_OUTCOME
            return
        self._serve(r)
        self.outcomes[r.request_id] = SERVED

    def _over_protect(self, r: RequestSpec) -> bool:
        """Fault over_protection (soft priority): a request that would take blocks of soft claims
        under responsibility is refused, naming them as blocking, instead of their giving way."""
        if not self._has(P.OVER_PROTECTION):
            return False
        holders = [c for c in self.claims.values()
                   if c.responsible and c.positions and not c.offloaded]
        held = {b for c in holders for b in c.positions.values()}
        if r.max_live <= self.pool.free_count(held):
            return False
        self._fire(P.OVER_PROTECTION)
        self._decision(r, N.refused, ACTION_CAPACITY_REQUIRED, None, blockers=holders)
        self.outcomes[r.request_id] = REFUSED_OUTCOME
        return True

    def _demote_until_fits(self, r: RequestSpec) -> None:
        for c in sorted(self._protected(), key=lambda c: (c.spec.predicted_value, c.id)):
            if r.max_live <= self.pool.free_count(self._excluded()):
                return
            self._emit(N.demoted, {**self._identity(c), "request_id": c.prefix.owner_request,
                                   "arbiter_action": ACTION_DEMOTE, "protection_mode": c.mode,
                                   "resident_blocks_materialized": len(c.positions)})
            c.state = DEMOTED

    def _serve(self, r: RequestSpec) -> None:
        rid = r.request_id
        held: list[int] = []
        live = r.live_by_step()
        for step, chunk in enumerate(r.chunks):
            if r.attention != FULL_ATTENTION:
                drop = max(0, len(held) + chunk - live[step])
                self.pool.release(held[:drop])  # recomputed or out of window: not cached
                held = held[drop:]
            held += self._allocate(rid, chunk, exclude=self._excluded())
        self._flush_expiry()
        admit = r.future_reuse_requested and self.policy.name != P.WRITE_NO_ADMIT
        if r.future_reuse_requested and self.policy.name == P.WRITE_NO_ADMIT:
            self._emit(N.reuse_denied, {
                "request_id": rid, "active_live_blocks_required": r.max_live,
                "active_live_blocks_current": len(held), "arbiter_action": ACTION_NO_ADMIT,
                "future_reuse_requested": True, "future_reuse_admitted": False,
            })
        first = r.total - len(held)
        contents = ({b: Content(rid, first + i) for i, b in enumerate(held)} if admit else {})
        self.pool.release(self._free_order(held), contents)

    # ---- the run -----------------------------------------------------------------------------
    def run(self) -> RunResult:
        for p in self.w.prefixes:
            self._load_prefix(p)
        for r in self.w.requests:
            self._request(r)
        return RunResult(tuple(self.events), frozenset(self.fired), dict(self.outcomes))


def run(workload: Workload, policy: P.Policy | str, faults: Iterable[str] = (), *,
        base_fields: bool = True) -> RunResult:
    """Run `workload` under `policy` with the given fault switches (see policies.FAULTS)."""
    return MicroRuntime(workload, policy, faults, base_fields=base_fields).run()
