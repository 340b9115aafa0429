"""Replay state and the names it dispatches on, checked against spec/ at start-up (docs/model.md §4-§6).

Decides nothing: the per-claim, per-prefix and per-request records the replay checker keeps, and
the rule ids and event names it uses, each looked up in the spec tables so that a renamed entry
fails when the checker starts, not in the middle of a trace.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kvclaims.check.predicate import LEADING, Positions, Predicate
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

# Identity fields that must take one value per claim (docs/model.md §6 R-identity).
IDENTITY_FIELDS = (
    "predicate_id",
    "prefix_id",
    "reusable_object_id",
    "cache_identity",
    "request_token_map_id",
    "materialization_predicate",
)


class RuleIds:
    """Rule ids looked up in spec/rules.toml once; a missing id fails at start-up, not mid-trace."""

    def __init__(self, spec: Spec):
        r = spec.rules
        get = lambda k: r[k].id  # noqa: E731 - KeyError here means the spec lost a rule
        self.identity = get("R-identity")
        self.acceptance = get("R-acceptance")
        self.order = get("R-order")
        self.harm = get("R-harm")
        self.silent = get("R-no-silent-loss")
        self.hard = get("R-hard")
        self.explicit = get("R-explicit")
        self.attribution = get("R-attribution")
        self.no_admit = get("R-no-admit")
        self.expiry = get("R-expiry")
        self.offload = get("R-offload")
        self.stream = get("R-stream")
        self.vocabulary = get("R-vocabulary")
        self.release_order = get("R-release-order")
        self.progress = get("R-progress")
        self.yield_ = get("R-yield")
        # KV-RM obligations (docs/model.md §10), decided by kvclaims.check.kvrm
        self.k_descriptor = get("K1-one-descriptor")
        self.k_live = get("K2-live-mapping")
        self.k_groups = get("K3-transfer-groups")
        self.k_prefix = get("K4-whole-prefix")
        self.k_summary = get("K5-summary-not-materialization")


class EventNames:
    """Event names the checker dispatches on, each checked to exist in spec/events.toml."""

    def __init__(self, spec: Spec):
        names = spec.events
        lifecycle = spec.claim.transitions

        def ev(name: str) -> str:
            if name not in names:
                raise KeyError(f"spec/events.toml lacks {name}")
            return name

        self.submitted = ev("resident_claim_submitted")
        self.created = ev("resident_claim_created")
        self.accepted = ev("resident_claim_accepted")
        self.rejected = ev("resident_claim_rejected")
        self.claim_refused = ev("resident_claim_refused")
        self.materialized = ev("resident_claim_materialized")
        self.preserved = ev("resident_claim_preserved")
        self.relaxed = ev("resident_claim_relaxed")
        self.demoted = ev("resident_claim_demoted")
        self.expired = ev("resident_claim_expired")
        self.released = ev("resident_claim_released")
        self.harmed = ev("resident_claim_harmed")
        self.lost_after_release = ev("resident_claim_block_lost_after_release")
        self.offloaded = ev("resident_claim_offloaded")
        self.restore_required = ev("resident_claim_restore_required")
        self.restored = ev("resident_claim_restored")
        self.reuse_after_restore = ev("resident_claim_reuse_after_restore")
        self.restoration_failed = ev("resident_claim_restoration_failed")
        self.admitted = ev("active_request_admitted")
        self.deferred = ev("active_request_deferred")
        self.refused = ev("active_request_refused")
        self.live_bounded = ev("active_live_bounded")
        self.reuse_admitted = ev("future_reuse_admitted")
        self.reuse_denied = ev("future_reuse_denied")
        self.block_materialized = ev("resident_block_materialized")
        self.victim = ev("allocation_victim_selected")
        self.request_initialized = ev("request_initialized")
        self.stream_gap = ev("kv_stream_gap")  # KV stream importer's gap marker (R-stream)
        # KV-RM descriptor and pager events (docs/model.md §10), dispatched to kvclaims.check.kvrm
        self.kvrm_mapped = ev("kvrm_block_mapped")
        self.kvrm_evicted = ev("kvrm_block_evicted")
        self.kvrm_committed = ev("kvrm_descriptor_committed")
        self.kvrm_group = ev("kvrm_transfer_group")
        self.kvrm_summary = ev("kvrm_summary_used")
        self.kvrm_reused = ev("kvrm_claim_reused")
        self.opening = frozenset(
            e for e, t in lifecycle.items() if spec.claim.initial in t.sources
        )
        self.releasing = frozenset(
            e for e, t in lifecycle.items() if t.target in spec.released
        )
        self.harmed_state = lifecycle[self.harmed].target
        self.submitted_state = lifecycle[self.submitted].target
        self.block_group = frozenset(
            {self.victim, self.harmed, self.lost_after_release, self.block_materialized,
             self.materialized}
        )


class Claim:
    __slots__ = (
        "id", "state", "mode_spelling", "mode", "bundle", "identity", "positions", "tracked",
        "declared_required", "pending_harm", "pending_materialized", "pending_lost", "status",
        "victims", "lost_positions", "lost_after_release", "silent", "asserted", "off_state",
        "off_gen", "failed_gens", "outcome_owed", "first_line", "accepted", "protected",
        "had_loss_while_responsible", "silent_line",
    )

    def __init__(self, cid: str, initial: str, line: int):
        self.id = cid
        self.state = initial
        self.mode_spelling: str | None = None
        self.mode: str | None = None
        self.bundle: frozenset[str] = frozenset()
        self.identity: dict[str, Any] = {}
        self.positions = Positions(None)
        self.tracked = False
        self.declared_required: int | None = None
        self.pending_harm: Event | None = None
        self.pending_materialized: Event | None = None
        self.pending_lost: list[Event] = []
        self.status: dict[str, str] = {}
        self.victims = 0
        # position -> times lost: bounded by the claim's blocks however often they come and go
        # (a long stream's memory, docs/watch-nats.md "Memory"); reported as a sorted list
        self.lost_positions: Counter[int] = Counter()
        self.lost_after_release = 0
        self.silent = False
        self.asserted = False
        self.off_state: str = ""
        self.off_gen: int | None = None
        self.failed_gens: set[Any] = set()
        self.outcome_owed: tuple[str, Event] | None = None
        self.first_line = line
        self.accepted = False
        self.protected = False
        self.had_loss_while_responsible = False
        self.silent_line = 0  # line of the predicate-breaking loss that made it silent


class Prefix:
    __slots__ = ("id", "positions", "victims", "cached_victims", "lost")

    def __init__(self, pid: str):
        self.id = pid
        self.positions = Positions(Predicate(LEADING, 0, 0))
        self.victims = 0
        self.cached_victims = 0
        self.lost: Counter[int] = Counter()  # position -> times lost (see Claim.lost_positions)


class Request:
    __slots__ = ("id", "outcome", "blocking", "shortfall", "free", "feasibility", "reuse",
                 "allocated", "first_decision", "denied")

    def __init__(self, rid: str):
        self.id = rid
        self.outcome = "unknown"
        self.blocking: tuple[str, ...] = ()
        self.shortfall: int | None = None
        self.free: int | None = None
        self.feasibility: str | None = None
        self.reuse: bool | None = None
        self.allocated = 0
        self.first_decision = False
        self.denied = False
