"""A claim-aware vLLM `Scheduler`, loaded through vLLM's own `scheduler_cls` setting.

docs/model.md §4 (lifecycle), §6 (R-hard, R-explicit, R-attribution, R-expiry). Use it with
`--scheduler-cls kvclaims.runtime.vllm.scheduler_plugin.ClaimAwareScheduler` (or
`SchedulerConfig(scheduler_cls=...)`); claims come from
`additional_config={"kvclaims": {"claims": [...]}}` or from :meth:`add_claim`. No vLLM file is
edited: the subclass only calls the stock `schedule()` and the `BlockPool`'s public methods.

- **Accepts** each claim (a token prefix; its chain of block hashes comes from vLLM's own block
  hasher) and emits `resident_claim_accepted`.
- **Keeps protected blocks out of allocation**: once the claim's blocks are in the prefix cache it
  takes one extra reference on each (`BlockPool.touch`), so they leave the free queue and can never
  be handed to `get_new_blocks`; `resident_claim_materialized` follows when every position is held.
- **Refuses or defers with attribution** a waiting request that cannot fit beside the blocks of
  the claims that protect (`protected + required > usable`), before vLLM's waiting loop would
  silently `break` on it: `active_request_refused` (or `_deferred`) names the blocking claims,
  their blocks, the shortfall, the free blocks and the feasibility (docs/model.md §6 R-attribution).
- **Bounds every deferral** (docs/model.md §6 R-progress): the plug-in declares `defer_bound_steps`
  (config `defer_bound_steps`, default :data:`DEFAULT_DEFER_BOUND_STEPS`) on its first event and
  stamps `scheduler_step` on every event; a deferred request is admitted once a release unblocks
  it, else refused with attribution (`defer_attempts`) when the bound is reached. While deferred
  it is set aside from vLLM's waiting queue for the step, so the requests behind it are scheduled
  (no FCFS stall).
- **Lets soft claims give way** (docs/model.md §6 R-yield): claims whose mode does not protect
  (soft_priority, best_effort; spec/modes.toml `protects`) never block a request. When a waiting
  request fits beside the protecting claims but not beside the soft ones too, soft claims drop
  their extra references, best_effort first, then lowest `claim_priority` first, until it fits;
  vLLM then evicts their blocks, and a soft_priority claim's `resident_claim_harmed` is written
  just before the victim that breaks its predicate (the harness calls
  :meth:`kvclaims_before_loss` before each victim).
- **Demotes** claims whose `on_conflict` is `demote` (emit `resident_claim_demoted`, then drop the
  extra references) and **expires** claims with `duration_steps` (`resident_claim_expired`),
  always before any of their blocks can be lost.

Telemetry goes to the sink attached with :meth:`kvclaims_attach` (the harness), else it is kept in
`self.kvclaims_telemetry` as `(event, fields)` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vllm.utils.hashing import get_hash_fn_by_name
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus

from kvclaims.runtime.vllm.harness import ClaimDecl, chain_hashes

RESPONSIBLE = ("accepted", "materialized")
DEFAULT_DEFER_BOUND_STEPS = 2  # scheduler steps a deferral may stay open (R-progress)
HARD_MODES = ("hard_exclude", "hard_protected", "reserve", "resident_reserve", "demotable",
              "demote_on_conflict", "expiring")
INFEASIBLE = "infeasible_preserve_resident_and_active"
RESTORE_INFEASIBLE = "infeasible_restore_claimed_kv"
OFFLOADABLE_MODES = ("offloadable", "offloadable_reference")
GPU_TIER, HOST_TIER, RESTORE_SOURCE = "gpu_kv_cache", "host_offload_tier", "offload_tier"


@dataclass
class _Claim:
    decl: ClaimDecl
    hashes: list[Any]
    state: str = "accepted"
    accepted_step: int = 0
    pinned: dict[int, Any] = field(default_factory=dict)  # position -> KVCacheBlock
    # offloadable sub-lifecycle (docs/model.md §4): None (resident) | offloaded | restore_required |
    # failed (restoration failed; the host copy is kept, the claim is not re-pinned)
    off: str | None = None
    generation: int = 0
    # R-yield: a claim that does not protect gave way (its extra references dropped); `live` are
    # the positions still cached then, so that the loss that breaks its predicate is known.
    yielded: bool = False
    live: set[int] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.decl.claim_id

    @property
    def required(self) -> int:
        return self.decl.required_blocks or len(self.hashes)

    @property
    def hard(self) -> bool:
        return self.decl.mode in HARD_MODES

    def predicate_holds(self, positions: set[int]) -> bool:
        return all(p in positions for p in range(self.required))


class ClaimAwareScheduler(Scheduler):
    """vLLM's Scheduler plus resident KV claims (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        conf = self.vllm_config.additional_config or {}
        conf = conf.get("kvclaims", {}) if isinstance(conf, dict) else {}
        self._sink: Callable[[str, dict[str, Any]], None] | None = None
        self.kvclaims_telemetry: list[tuple[str, dict[str, Any]]] = []
        self._kv_pool = self.kv_cache_manager.block_pool
        self.kvclaims_usable = self._kv_pool.num_gpu_blocks - 1  # minus the null block
        hash_fn = get_hash_fn_by_name(self.cache_config.prefix_caching_hash_algo)
        init_none_hash(hash_fn)
        self._hasher = get_request_block_hasher(self.block_size, hash_fn)
        self._claims: dict[str, _Claim] = {}
        self._outcomes: dict[str, str] = {}
        self._deferred: dict[str, int] = {}  # request id -> scheduler step of its deferral
        self._step_no = 0
        self.kvclaims_defer_bound = int(conf.get("defer_bound_steps", DEFAULT_DEFER_BOUND_STEPS))
        if self.kvclaims_defer_bound < 0:
            raise ValueError("defer_bound_steps must be >= 0")
        self._declared = False  # the first event carries defer_bound_steps
        from kvclaims import spec as spec_mod

        self._spec = spec_mod.load()
        # Restore-failure witness (docs/model.md §4, §6 offloadable): the host-tier connector
        # (connector.py, loaded through kv_connector_module_path) reports lookups and planned loads.
        self._restoring: dict[str, _Claim] = {}  # request id -> claim awaiting its restore
        self._load_jobs: dict[str, Any] = {}  # request id -> connector Job
        self._recomputing: dict[str, _Claim] = {}
        self._need: dict[str, int] = {}
        # Controls only (deliberately wrong plug-in behaviour, for the checker to reject):
        self._misattribute_to: str | None = conf.get("misattribute_restore_failures_to")
        self._recompute_counts_as_restored = bool(conf.get("recompute_counts_as_restored"))
        # ... one that keeps deferring past its declared bound, never deciding (R-progress), and
        # one whose soft claims never give way (the queue stalls behind them: R-progress, R-yield).
        self._defer_forever = bool(conf.get("defer_forever"))
        self._no_give_way = bool(conf.get("no_give_way"))
        self.kvclaims_unclaimed_load_failures: list[tuple[str, list[int]]] = []
        if self.connector is not None and hasattr(self.connector, "kvclaims_observe"):
            self.connector.kvclaims_observe(self)
        for d in conf.get("claims", ()):
            self.add_claim(ClaimDecl.from_config(d))

    # ---- telemetry -----------------------------------------------------------------------
    def kvclaims_attach(self, sink: Callable[[str, dict[str, Any]], None],
                        usable: int | None = None) -> None:
        self._sink = sink
        for kind, fields in self.kvclaims_telemetry:
            sink(kind, fields)
        self.kvclaims_telemetry = []

    def _emit(self, kind: str, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["scheduler_step"] = self._step_no
        if not self._declared:
            self._declared = True
            fields["defer_bound_steps"] = self.kvclaims_defer_bound  # the trace header's bound
        if self._sink is not None:
            self._sink(kind, fields)
        else:
            self.kvclaims_telemetry.append((kind, fields))

    def kvclaims_outcomes(self) -> dict[str, str]:
        return dict(self._outcomes)

    def kvclaims_is_protected(self, claim_id: str) -> bool:
        c = self._claims.get(claim_id)
        return c is not None and c.hard and c.state in RESPONSIBLE

    def kvclaims_before_loss(self, claim_id: str, block_id: int, position: int) -> None:
        """vLLM is about to hand `block_id` (position `position` of the claim) to an allocation:
        report the loss first (docs/model.md §6 R-harm, R-no-silent-loss; docs/checking.md timing rule)."""
        c = self._claims.get(claim_id)
        if c is None:
            return
        if c.state not in RESPONSIBLE:
            self._emit("resident_claim_block_lost_after_release", claim_id=c.id,
                       prefix_id=c.decl.prefix, physical_block_id=block_id,
                       logical_block_position=position)
            return
        live = c.live if c.yielded else set(c.pinned)
        before = c.predicate_holds(live)
        live.discard(position)
        if before and not c.predicate_holds(live) and self._reports_harm(c):
            c.state = "harmed"
            self._emit("resident_claim_harmed", claim_id=c.id, prefix_id=c.decl.prefix,
                       protection_mode=c.decl.mode, physical_block_id=block_id,
                       logical_block_position=position, predicate_before=True,
                       predicate_after=False, resident_blocks_materialized=len(live),
                       resident_blocks_required=c.required,
                       claim_priority=c.decl.priority)

    def _canonical(self, c: _Claim) -> str | None:
        return self._spec.canonical_mode(c.decl.mode)

    def _gives_way(self, c: _Claim) -> bool:
        """docs/model.md §6 R-yield: only modes that protect may block an active request."""
        m = self._canonical(c)
        return m is not None and not self._spec.modes[m].protects and not c.hard

    def _reports_harm(self, c: _Claim) -> bool:
        """A claim whose bundle decides harm reports it (soft_priority; best_effort does not)."""
        from kvclaims.check.state import RuleIds

        m = self._canonical(c)
        return m is not None and RuleIds(self._spec).harm in self._spec.modes[m].rules

    # ---- claims --------------------------------------------------------------------------
    def add_claim(self, decl: ClaimDecl) -> None:
        if decl.claim_id in self._claims:
            raise ValueError(f"claim {decl.claim_id} already exists")
        hashes = chain_hashes(decl.tokens, self._hasher, decl.cache_salt)
        if not hashes:
            self._emit("resident_claim_rejected", claim_id=decl.claim_id,
                       reason="no full block to claim")
            return
        c = _Claim(decl, hashes, accepted_step=self._step_no)
        self._claims[decl.claim_id] = c
        self._emit("resident_claim_accepted", claim_id=c.id, protection_mode=decl.mode,
                   prefix_id=decl.prefix, resident_blocks_required=c.required,
                   materialization_predicate=f"leading_prefix_at_least({c.required})",
                   duration_steps=decl.duration_steps, usable_blocks=self.kvclaims_usable,
                   claim_priority=decl.priority, **self._identity(c))
        self._pin()

    def _identity(self, c: _Claim) -> dict[str, Any]:
        """Offloadable claims name the reusable object, the cache identity and the request-token
        map (the offloadable bundle requires each to take exactly one value)."""
        if c.decl.mode not in OFFLOADABLE_MODES:
            return {}
        from vllm.v1.core.kv_cache_utils import maybe_convert_block_hash

        algo = self.cache_config.prefix_caching_hash_algo
        return {"claim_registration": "pre_registered",
                "reusable_object_id": f"vllm-prefix:{maybe_convert_block_hash(c.hashes[-1])}",
                "cache_identity": f"vllm-{self._vllm_version()}:{algo}:block_size="
                                  f"{self.block_size}:salt={c.decl.cache_salt or ''}",
                "request_token_map_id": f"vllm-request-block-hasher:{algo}:{self.block_size}"}

    @staticmethod
    def _vllm_version() -> str:
        import vllm

        return vllm.__version__

    def _release(self, c: _Claim, kind: str, **fields: Any) -> None:
        """Announce the release first, then drop the extra references (blocks become
        evictable only after the claim-scoped event)."""
        self._emit(kind, claim_id=c.id, prefix_id=c.decl.prefix, **fields)
        c.state = {"resident_claim_demoted": "demoted",
                   "resident_claim_expired": "expired"}.get(kind, "released")
        blocks = [c.pinned[p] for p in sorted(c.pinned, reverse=True)]
        c.pinned.clear()
        if blocks:
            self._kv_pool.free_blocks(blocks)

    def demote_claim(self, claim_id: str, reason: str = "owner") -> None:
        c = self._claims[claim_id]
        if c.state in RESPONSIBLE:
            self._release(c, "resident_claim_demoted", demotion_reason=reason)

    def expire_claim(self, claim_id: str) -> None:
        c = self._claims[claim_id]
        if c.state in RESPONSIBLE:
            self._release(c, "resident_claim_expired")

    def _pin(self) -> None:
        pool = self._kv_pool
        for c in self._claims.values():
            if c.state not in RESPONSIBLE or c.off is not None or c.yielded:
                continue  # an offloaded claim's protection is its host copy; a soft one gave way
            for pos, h in enumerate(c.hashes):
                if pos in c.pinned:
                    continue
                blocks = pool.get_cached_block(h, [0])
                if not blocks:
                    continue
                pool.touch(blocks)  # one extra reference: out of the free queue
                c.pinned[pos] = blocks[0]
            if c.state == "accepted" and all(p in c.pinned for p in range(c.required)):
                c.state = "materialized"
                self._emit("resident_claim_materialized", claim_id=c.id,
                           prefix_id=c.decl.prefix, resident_blocks_materialized=len(c.pinned),
                           predicate_materialized=True)

    def _protected(self, exclude_ids: set[int]) -> list[tuple[_Claim, int]]:
        out = []
        for c in self._claims.values():
            if c.hard and c.state in RESPONSIBLE and c.pinned:
                n = sum(1 for b in c.pinned.values() if b.block_id not in exclude_ids)
                if n:
                    out.append((c, n))
        return out

    # ---- admission -----------------------------------------------------------------------
    def _shared_ids(self, req: Request) -> set[int]:
        """Pinned blocks the request would reuse as a prefix hit (no conflict with those)."""
        ids: set[int] = set()
        for h in req.block_hashes:
            blocks = self._kv_pool.get_cached_block(h, [0])
            if not blocks:
                break
            ids.add(blocks[0].block_id)
        return ids

    def _arbitrate(self) -> None:
        """Decide, before vLLM's waiting loop, each waiting request the claims stand in the way of
        (docs/model.md §6 R-explicit, R-progress, R-yield)."""
        usable = self.kvclaims_usable
        for req in list(self.waiting):
            if req.status != RequestStatus.WAITING or req.num_computed_tokens:
                continue
            rid = req.request_id
            shared = self._shared_ids(req)
            need = -(-req.num_tokens // self.block_size) - len(shared)
            blocking = self._protected(shared)
            protected = sum(n for _, n in blocking)
            # The blocks it reuses stay resident beside its new ones: they count too.
            if blocking and protected + len(shared) + need > usable:
                claims = sorted((c for c, _ in blocking), key=lambda c: c.id)
                if not all(c.decl.on_conflict == "demote" for c in claims):
                    self._hold(req, claims, protected, need)
                    continue
                for c in claims:
                    self._release(c, "resident_claim_demoted",
                                  demotion_reason="conflict_with_active_request",
                                  request_id=rid)
                protected = 0
            if self._deferred.pop(rid, None) is not None:
                # A release unblocked it (the deferral is closed): vLLM admits it now.
                self._outcomes.pop(rid, None)
            self._give_way(req, shared, protected, need)

    def _give_way(self, req: Request, shared: set[int], protected: int, need: int) -> None:
        """docs/model.md §6 R-yield: a request that fits beside the protecting claims never waits on
        claims that do not protect. They drop their extra references (best_effort first, then
        lowest `claim_priority`, then claim id) until it fits; vLLM evicts their blocks in that
        order (freed blocks join the free queue's tail, tail position first)."""
        if self._no_give_way:
            return  # the control: soft claims keep their pins and the request waits, unreported
        soft = [(c, sum(1 for b in c.pinned.values() if b.block_id not in shared))
                for c in self._claims.values()
                if c.state in RESPONSIBLE and c.pinned and self._gives_way(c)]
        held = sum(n for _, n in soft)
        usable = self.kvclaims_usable
        order = sorted(soft, key=lambda cn: (self._reports_harm(cn[0]), cn[0].decl.priority or 0,
                                             cn[0].id))
        for c, n in order:
            if protected + held + len(shared) + need <= usable:
                return
            if n == 0:
                continue  # the request reuses all of it: no conflict
            c.yielded = True
            c.live = set(c.pinned)
            blocks = [c.pinned[p] for p in sorted(c.pinned, reverse=True)]
            c.pinned.clear()
            self._kv_pool.free_blocks(blocks)
            held -= n

    def _hold(self, req: Request, claims: list[_Claim], protected: int, need: int) -> None:
        """Refuse, or defer within the declared bound and then refuse, a request the protecting
        `claims` block (docs/model.md §6 R-attribution, R-progress)."""
        rid = req.request_id
        free = self._kv_pool.get_num_free_blocks()
        usable = self.kvclaims_usable
        attribution = dict(
            request_id=rid,
            blocking_claim_ids=[c.id for c in claims],
            blocking_prefix_ids=sorted({c.decl.prefix for c in claims}),
            protected_resident_blocks=protected,
            protected_resident_claims=[{
                "claim_id": c.id, "prefix_id": c.decl.prefix,
                "protection_mode": c.decl.mode,
                "resident_blocks_materialized": len(c.pinned),
                "resident_blocks_required": c.required,
                "predicate_materialized": all(p in c.pinned for p in range(c.required)),
            } for c in claims],
            active_live_blocks_required=need,
            resident_plus_active_blocks=protected + need,
            capacity_shortfall_blocks=max(0, need - free),
            feasibility=INFEASIBLE,
            free_blocks_before_allocate=free,
            usable_blocks=usable,
        )
        attempts = None
        if all(c.decl.on_conflict == "defer" for c in claims):
            first = self._deferred.get(rid)
            if first is None:
                self._deferred[rid] = self._step_no
                self._emit("active_request_deferred", arbiter_action="defer_active_request",
                           **attribution)
                self._outcomes[rid] = "deferred"
                if self.kvclaims_defer_bound > 0 or self._defer_forever:
                    return
                first = self._step_no
            attempts = self._step_no - first
            if self._defer_forever:
                # The control: still deferring, past the bound, never deciding.
                self._emit("active_request_deferred", arbiter_action="defer_active_request",
                           **attribution)
                return
            if attempts < self.kvclaims_defer_bound:
                return  # still within the bound: set aside for this step
            del self._deferred[rid]
        self._emit("active_request_refused", arbiter_action="refuse_active_request",
                   defer_attempts=attempts, **attribution)
        self._outcomes[rid] = "refused"
        self.finish_requests(rid, RequestStatus.FINISHED_ABORTED)

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        self._step_no += 1
        for c in list(self._claims.values()):
            d = c.decl.duration_steps
            if d is not None and c.state in RESPONSIBLE and self._step_no - c.accepted_step > d:
                self._release(c, "resident_claim_expired", duration_steps=d)
        self._pin()
        self._arbitrate()
        # Deferred requests sit out this step, so that vLLM's waiting loop (which stops at the
        # first request it cannot allocate) schedules the requests behind them.
        held = [r for r in self.waiting if r.request_id in self._deferred]
        if held:
            self.waiting.remove_requests(held)
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            if held:
                self.waiting.prepend_requests(reversed(held))
        self._pin()
        return out

    # ---- offloadable claims: offload, restore, restoration failure -----------------------
    def _host_connector(self) -> Any:
        conn = self.connector
        return conn if conn is not None and hasattr(conn, "kvclaims_observe") else None

    def offload_claim(self, claim_id: str) -> bool:
        """Move an offloadable claim's protection from its GPU blocks to the host tier: only
        once the connector holds a host copy of every required block. Emits
        `resident_claim_offloaded` (next `offload_generation`), then drops the extra references,
        so vLLM may evict the GPU copies (that is not a loss of the claim)."""
        c = self._claims[claim_id]
        conn = self._host_connector()
        if (conn is None or c.decl.mode not in OFFLOADABLE_MODES or c.state not in RESPONSIBLE
                or c.off is not None):
            return False
        if not all(conn.tier.has(h) for h in c.hashes[:c.required]):
            return False
        c.generation += 1
        ids = [c.pinned[p].block_id for p in sorted(c.pinned)]
        self._emit("resident_claim_offloaded", claim_id=c.id, prefix_id=c.decl.prefix,
                   offload_generation=c.generation, cache_tier_from=GPU_TIER,
                   cache_tier_to=HOST_TIER, block_ids=ids, block_count_footprint=len(ids))
        c.off = "offloaded"
        blocks = [c.pinned[p] for p in sorted(c.pinned, reverse=True)]
        c.pinned.clear()
        if blocks:
            self._kv_pool.free_blocks(blocks)
        return True

    def _claims_of(self, hashes: Any) -> list[_Claim]:
        hs = set(hashes)
        return [c for c in self._claims.values() if hs.intersection(c.hashes[:c.required])]

    def kvclaims_on_lookup(self, request: Request, start: int, hashes: list[Any]) -> None:
        """The connector found host copies for `request` past its local hit (scheduler role)."""
        for c in self._claims_of(hashes):
            if c.off == "offloaded" and c.state in RESPONSIBLE:
                c.off = "restore_required"
                self._restoring[request.request_id] = c
                self._emit("resident_claim_restore_required", claim_id=c.id,
                           prefix_id=c.decl.prefix, offload_generation=c.generation,
                           reuse_requires_restoration=True, request_id=request.request_id)

    def kvclaims_on_load_planned(self, request: Request, job: Any) -> None:
        self._load_jobs[request.request_id] = job
        self._need[request.request_id] = -(-request.num_tokens // self.block_size)

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        kvo = model_runner_output.kv_connector_output
        invalid = set(kvo.invalid_block_ids) if kvo is not None else set()
        jobs = {rid: self._load_jobs.pop(rid) for rid in list(scheduler_output.num_scheduled_tokens)
                if rid in self._load_jobs}
        out = super().update_from_output(scheduler_output, model_runner_output)
        conn = self._host_connector()
        for rid, job in jobs.items():
            bad = [b for b in job.block_ids if b in invalid]
            c = self._restoring.pop(rid, None)
            if c is None:
                if bad:  # no claim covers these blocks: vLLM's own outcome only
                    self.kvclaims_unclaimed_load_failures.append((rid, bad))
                continue
            if not bad:
                self._emit("resident_claim_restored", claim_id=c.id, prefix_id=c.decl.prefix,
                           offload_generation=c.generation, restoration_source=RESTORE_SOURCE,
                           restored_from_offload_tier=True, cache_tier_from=HOST_TIER,
                           cache_tier_to=GPU_TIER, request_id=rid)
                c.off = None
                self._pin()
                if all(p in c.pinned for p in range(c.required)):
                    self._emit("resident_claim_reuse_after_restore", claim_id=c.id,
                               prefix_id=c.decl.prefix, offload_generation=c.generation,
                               predicate_satisfied=True, request_id=rid)
                continue
            bad_hashes = [h for b, h in zip(job.block_ids, job.hashes) if b in invalid]
            injected = conn is not None and any(h in conn.tier.fail_loads for h in bad_hashes)
            if self.recompute_kv_load_failures:
                # vLLM rescheduled the request: it recomputes the prefix. That is not restoration.
                c.off = "failed"
                self._recomputing[rid] = c
                continue
            # kv_load_failure_policy="fail": vLLM finished the request with FINISHED_ERROR.
            # Fail closed, scoped to the claim: restoration failed, then a refusal naming it.
            target = self._misattribute_to or c.id
            tc = self._claims.get(target)
            self._emit("resident_claim_restoration_failed", claim_id=c.id,
                       prefix_id=c.decl.prefix, offload_generation=c.generation,
                       claim_scoped_outcome_type="refusal", outcome_claim_id=target,
                       controlled_restoration_unavailable=True,
                       injected_restoration_failure=injected, request_id=rid,
                       block_ids=bad)
            self._emit("active_request_refused", request_id=rid,
                       arbiter_action="refuse_active_request",
                       blocking_claim_ids=[target],
                       blocking_prefix_ids=[tc.decl.prefix if tc else c.decl.prefix],
                       feasibility=RESTORE_INFEASIBLE, outcome_claim_id=target,
                       active_live_blocks_required=self._need.pop(rid, None),
                       usable_blocks=self.kvclaims_usable)
            self._outcomes[rid] = "refused"
            c.off = "failed"
        for rid in list(self._recomputing):
            if rid not in self.requests:  # served (by recompute)
                c = self._recomputing.pop(rid)
                if self._recompute_counts_as_restored:
                    # The control: a plug-in that counts the recompute as restoration.
                    self._emit("resident_claim_restored", claim_id=c.id, prefix_id=c.decl.prefix,
                               offload_generation=c.generation, restoration_source="recompute",
                               restored_from_offload_tier=False, cache_tier_from=GPU_TIER,
                               cache_tier_to=GPU_TIER, request_id=rid)
        return out
