"""A claim-aware SGLang `RadixCache`: a subclass the harness is configured with (`tree_cache_cls`).

docs/model.md §4 (lifecycle), §6 (R-hard, R-explicit, R-attribution, R-yield, R-progress,
R-expiry); docs/sglang.md. No SGLang file is edited: the subclass calls the stock tree's own
methods (`match_prefix`, `insert`, `lock`/`unlock`, i.e. `inc_lock_ref`/`dec_lock_ref`) and reads
the allocator's `available_size`. Protection is SGLang's own: a claim holds a tree lock on the
deepest node of its cached prefix, and SGLang's `evict` never takes a locked node or its
ancestors.

- **Accepts** each claim (its page hashes from SGLang's own recorder, harness.page_hashes) and
  emits `resident_claim_accepted`.
- **Pins** a claim's prefix (one tree lock) as soon as its pages are in the tree (after every
  `insert` and at each step); `resident_claim_materialized` when every required page is held.
- **Refuses or defers with attribution** a waiting request that cannot fit beside the pages of
  the claims that protect (`protected + shared + need > usable`): `active_request_refused` (or
  `_deferred`) names the blocking claims, their pages, the shortfall (`need - free`, free being
  the allocator's free pages) and the feasibility. A deferral is bounded (`defer_bound_steps`,
  declared on the first event; R-progress): admitted once a release unblocks it, else refused with
  `defer_attempts` when the bound is reached.
- **Lets soft claims give way** (R-yield): modes that do not protect (spec/modes.toml
  `protects`) never block a request; when a request fits beside the protecting claims but not
  beside the soft ones too, soft claims drop their locks, best_effort first, then lowest
  `claim_priority`, then claim id, until it fits; SGLang then evicts their pages, and a
  soft_priority claim's `resident_claim_harmed` is written just before the loss that breaks its
  predicate (the harness calls :meth:`kvclaims_before_loss` before each victim).
- **Demotes** claims whose `on_conflict` is `demote` and **expires** claims with
  `duration_steps`, announcing it before dropping the lock (so before any page can be lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sglang.srt.mem_cache.base_prefix_cache import MatchPrefixParams
from sglang.srt.mem_cache.radix_cache import RadixCache

from kvclaims.runtime.sglang.harness import SglClaim, page_hashes, radix_key

DEFAULT_DEFER_BOUND_STEPS = 2  # steps a deferral may stay open (R-progress)


@dataclass
class _Claim:
    decl: SglClaim
    hashes: list[int]
    required: int
    state: str = "accepted"
    accepted_step: int = 0
    lock: Any = None  # SGLang TreeLock on the deepest cached node of the prefix
    pages: list[int] = field(default_factory=list)  # page ids the lock holds, by position
    yielded: bool = False
    live: set[int] = field(default_factory=set)  # positions cached when it gave way

    @property
    def id(self) -> str:
        return self.decl.claim_id


class ClaimAwareRadixCache(RadixCache):
    """SGLang's RadixCache plus resident KV claims (see the module docstring)."""

    def __init__(self, params: Any):
        super().__init__(params)
        self._claims: dict[str, _Claim] = {}
        self._sink: Callable[[str, dict[str, Any]], None] | None = None
        self.kvclaims_telemetry: list[tuple[str, dict[str, Any]]] = []
        self._step_no = 0
        self._declared = False
        self._deferred: dict[str, int] = {}
        self.kvclaims_defer_bound = DEFAULT_DEFER_BOUND_STEPS
        self.kvclaims_usable = self.token_to_kv_pool_allocator.size // self.page_size
        from kvclaims import spec as spec_mod
        from kvclaims.check.state import EventNames, RuleIds

        self._spec = spec_mod.load()
        self.E = EventNames(self._spec)
        self._harm_rule = RuleIds(self._spec).harm
        self._responsible = self._spec.responsible

    # ---- configuration and telemetry -----------------------------------------------------
    def kvclaims_configure(self, claims: Sequence[SglClaim],
                           sink: Callable[[str, dict[str, Any]], None], *,
                           usable: int | None = None, options: dict[str, Any] | None = None
                           ) -> None:
        options = options or {}
        self._sink = sink
        if usable is not None:
            self.kvclaims_usable = usable
        self.kvclaims_defer_bound = int(options.get("defer_bound_steps",
                                                    DEFAULT_DEFER_BOUND_STEPS))
        if self.kvclaims_defer_bound < 0:
            raise ValueError("defer_bound_steps must be >= 0")
        for c in claims:
            self.add_claim(c)

    def _emit(self, kind: str, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["scheduler_step"] = self._step_no
        if not self._declared:
            self._declared = True
            fields["defer_bound_steps"] = self.kvclaims_defer_bound
        if self._sink is not None:
            self._sink(kind, fields)
        else:
            self.kvclaims_telemetry.append((kind, fields))

    def _mode(self, c: _Claim) -> Any:
        m = self._spec.canonical_mode(c.decl.mode)
        return None if m is None else self._spec.modes[m]

    def _hard(self, c: _Claim) -> bool:
        m = self._mode(c)
        return m is not None and m.protects

    def _reports_harm(self, c: _Claim) -> bool:
        m = self._mode(c)
        return m is not None and self._harm_rule in m.rules

    def _holding(self, c: _Claim) -> bool:
        return c.state in self._responsible and c.lock is not None

    def kvclaims_is_protected(self, claim_id: str) -> bool:
        c = self._claims.get(claim_id)
        return c is not None and self._hard(c) and c.state in self._responsible

    # ---- claims --------------------------------------------------------------------------
    def add_claim(self, decl: SglClaim) -> None:
        if decl.claim_id in self._claims:
            raise ValueError(f"claim {decl.claim_id} already exists")
        hashes = page_hashes(decl.tokens, self.page_size, decl.cache_salt)
        if not hashes:
            self._emit(self.E.rejected, claim_id=decl.claim_id, reason="no full page to claim")
            return
        c = _Claim(decl, hashes, decl.required_pages or len(hashes),
                   accepted_step=self._step_no)
        self._claims[decl.claim_id] = c
        self._emit(self.E.accepted, claim_id=c.id, protection_mode=decl.mode,
                   prefix_id=decl.prefix, resident_blocks_required=c.required,
                   materialization_predicate=f"leading_prefix_at_least({c.required})",
                   duration_steps=decl.duration_steps, usable_blocks=self.kvclaims_usable,
                   claim_priority=decl.priority)
        self._pin()

    def insert(self, params: Any) -> Any:
        result = super().insert(params)
        self._pin()  # a claimed prefix just cached is held before anything can evict it
        return result

    def _pin(self) -> None:
        for c in self._claims.values():
            if c.state not in self._responsible or c.yielded:
                continue
            tokens = c.decl.tokens[:len(c.hashes) * self.page_size]
            m = self.match_prefix(MatchPrefixParams(key=radix_key(tokens, c.decl.cache_salt)))
            n = m.device_prefix_len // self.page_size
            if n <= len(c.pages):
                continue
            old = c.lock
            c.lock = self.lock(m.last_device_node)
            if old is not None:
                self.unlock(old)
            idx = self.path_device_indices(m.last_device_node)
            c.pages = [int(p) for p in (idx[::self.page_size] // self.page_size).tolist()]
            if c.state == "accepted" and len(c.pages) >= c.required:
                c.state = "materialized"
                self._emit(self.E.materialized, claim_id=c.id, prefix_id=c.decl.prefix,
                           resident_blocks_materialized=len(c.pages),
                           predicate_materialized=True)

    def _drop(self, c: _Claim) -> None:
        if c.lock is not None:
            self.unlock(c.lock)
        c.lock = None
        c.pages = []

    def _release(self, c: _Claim, kind: str, state: str, **fields: Any) -> None:
        """Announce the release first, then drop the lock (pages become evictable only after the
        claim-scoped event)."""
        self._emit(kind, claim_id=c.id, prefix_id=c.decl.prefix, **fields)
        c.state = state
        self._drop(c)

    def demote_claim(self, claim_id: str, reason: str = "owner") -> None:
        c = self._claims[claim_id]
        if c.state in self._responsible:
            self._release(c, self.E.demoted, "demoted", demotion_reason=reason)

    def expire_claim(self, claim_id: str) -> None:
        c = self._claims[claim_id]
        if c.state in self._responsible:
            self._release(c, self.E.expired, "expired", duration_steps=c.decl.duration_steps)

    def release_claim(self, claim_id: str) -> None:
        c = self._claims[claim_id]
        if c.state in self._responsible:
            self._release(c, self.E.released, "released")

    def kvclaims_before_loss(self, claim_id: str, page: int, position: int) -> None:
        """SGLang is about to report `page` (position `position` of the claim) evicted: report
        the loss first (docs/model.md §6 R-harm, R-no-silent-loss)."""
        c = self._claims.get(claim_id)
        if c is None:
            return
        if c.state not in self._responsible:
            self._emit(self.E.lost_after_release, claim_id=c.id, prefix_id=c.decl.prefix,
                       physical_block_id=page, logical_block_position=position)
            return
        live = c.live if c.yielded else set(range(len(c.pages)))
        before = all(p in live for p in range(c.required))
        live.discard(position)
        if before and not all(p in live for p in range(c.required)) and self._reports_harm(c):
            c.state = "harmed"
            self._emit(self.E.harmed, claim_id=c.id, prefix_id=c.decl.prefix,
                       protection_mode=c.decl.mode, physical_block_id=page,
                       logical_block_position=position, predicate_before=True,
                       predicate_after=False, resident_blocks_materialized=len(live),
                       resident_blocks_required=c.required, claim_priority=c.decl.priority)

    # ---- the scheduler's questions -------------------------------------------------------
    def kvclaims_on_step(self, step: int) -> None:
        self._step_no = step
        for c in list(self._claims.values()):
            d = c.decl.duration_steps
            if d is not None and c.state in self._responsible and step - c.accepted_step > d:
                self.expire_claim(c.id)
        self._pin()

    def _shared_pages(self, tokens: Sequence[int]) -> set[int]:
        m = self.match_prefix(MatchPrefixParams(key=radix_key(tokens[:len(tokens) - 1])))
        idx = self.path_device_indices(m.last_device_node)
        return {int(p) for p in (idx[::self.page_size] // self.page_size).tolist()}

    def kvclaims_arbitrate(self, rid: str, tokens: Sequence[int]) -> str:
        """Decide a waiting request before SGLang's allocation (docs/model.md §6 R-explicit,
        R-progress, R-yield): "admit", "deferred" (set aside this step) or "refused"."""
        shared = self._shared_pages(tokens)
        need = -(-len(tokens) // self.page_size) - len(shared)
        blocking = [c for c in self._claims.values()
                    if self._hard(c) and self._holding(c) and set(c.pages) - shared]
        protected_pages = set().union(*(set(c.pages) for c in blocking)) - shared
        protected = len(protected_pages)
        usable = self.kvclaims_usable
        if blocking and protected + len(shared) + need > usable:
            blocking.sort(key=lambda c: c.id)
            if not all(c.decl.on_conflict == "demote" for c in blocking):
                # Its live pages: the ones it reuses stay resident beside its new ones.
                return self._hold(rid, blocking, protected, need + len(shared))
            for c in blocking:
                self._release(c, self.E.demoted, "demoted",
                              demotion_reason="conflict_with_active_request", request_id=rid)
            protected = 0
        self._deferred.pop(rid, None)  # a release unblocked it: the deferral is closed
        self._give_way(shared, protected, need)
        return "admit"

    def _give_way(self, shared: set[int], protected: int, need: int) -> None:
        soft = [c for c in self._claims.values()
                if self._holding(c) and not self._hard(c)]
        held = len(set().union(*(set(c.pages) for c in soft)) - shared) if soft else 0
        order = sorted(soft, key=lambda c: (self._reports_harm(c), c.decl.priority or 0, c.id))
        for c in order:
            if protected + held + len(shared) + need <= self.kvclaims_usable:
                return
            mine = set(c.pages) - shared
            if not mine:
                continue  # the request reuses all of it: no conflict
            c.yielded = True
            c.live = set(range(len(c.pages)))
            self._drop(c)
            held -= len(mine)

    def _hold(self, rid: str, claims: list[_Claim], protected: int, need: int) -> str:
        free = self.token_to_kv_pool_allocator.available_size() // self.page_size
        attribution = dict(
            request_id=rid,
            blocking_claim_ids=[c.id for c in claims],
            blocking_prefix_ids=sorted({c.decl.prefix for c in claims}),
            protected_resident_blocks=protected,
            protected_resident_claims=[{
                "claim_id": c.id, "prefix_id": c.decl.prefix,
                "protection_mode": c.decl.mode,
                "resident_blocks_materialized": len(c.pages),
                "resident_blocks_required": c.required,
                "predicate_materialized": len(c.pages) >= c.required,
            } for c in claims],
            active_live_blocks_required=need,
            resident_plus_active_blocks=protected + need,
            capacity_shortfall_blocks=max(0, need - free),
            feasibility=self._spec.values["infeasible"],
            free_blocks_before_allocate=free,
            usable_blocks=self.kvclaims_usable,
        )
        attempts = None
        if all(c.decl.on_conflict == "defer" for c in claims):
            first = self._deferred.get(rid)
            if first is None:
                self._deferred[rid] = self._step_no
                self._emit(self.E.deferred, arbiter_action="defer_active_request",
                           **attribution)
                if self.kvclaims_defer_bound > 0:
                    return "deferred"
                first = self._step_no
            attempts = self._step_no - first
            if attempts < self.kvclaims_defer_bound:
                return "deferred"
            del self._deferred[rid]
        self._emit(self.E.refused, arbiter_action="refuse_active_request",
                   defer_attempts=attempts, **attribution)
        return "refused"
