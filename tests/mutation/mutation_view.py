"""What a conformant seed trace holds, read independently of the checker (docs/model.md §3-§6, §10).

The mutation operators (mutation_ops) need to know, for a conformant trace, where each claim is
accepted, released, harmed and loses blocks, whether a loss breaks its materialization predicate,
which requests are deferred or refused naming which claims, and what the pool holds at the end.
This module replays just that from the events, with the spec's lifecycle table and the model's
predicate (§3), and decides nothing about conformance. It also holds the edit helpers that keep a
mutant's stream intact (sequence numbers renumbered, time fields non-decreasing), so that an
operator breaks its rule and not, by accident, R-stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvclaims import spec as spec_mod
from kvclaims.check.predicate import CONTIGUOUS, Predicate, declared_predicate
from kvclaims.check.state import EventNames, RuleIds
from kvclaims.trace.model import Event

SPEC = spec_mod.load()
R = RuleIds(SPEC)
E = EventNames(SPEC)
V = SPEC.values
CLAIM_KINDS = SPEC.events_of_scope("claim")
RELEASED = SPEC.released
RESPONSIBLE = SPEC.responsible
HOST_STATES = SPEC.offload_host_states
TIME_FIELDS = SPEC.order.time_fields
BATCH_FIELDS = SPEC.order.batch_fields
BLOCK_FIELD = SPEC.order.block_field


def fld(name: str) -> str:
    """A field name, checked to exist in spec/fields.toml (a renamed field fails at import)."""
    if name not in SPEC.fields:
        raise KeyError(f"spec/fields.toml lacks {name}")
    return name


# Field names the operators read or write (each checked against the spec).
CLAIM_ID = fld("claim_id")
REQUEST_ID = fld("request_id")
BLOCK_ID = fld("physical_block_id")
POSITION = fld("logical_block_position")
PREFIX_ID = fld("prefix_id")
MODE = fld("protection_mode")
USABLE = fld("usable_blocks")
BLOCKING = fld("blocking_claim_ids")
PROTECTED_BLOCKS = fld("protected_resident_blocks")
TOTAL = fld("resident_plus_active_blocks")
SHORTFALL = fld("capacity_shortfall_blocks")
FREE = fld("free_blocks_before_allocate")
REQUIRED = fld("active_live_blocks_required")
FEASIBILITY = fld("feasibility")
REGISTRATION = fld("claim_registration")
VICTIM_REASON = fld("victim_reason")
PRED_MATERIALIZED = fld("predicate_materialized")
RESTORE_SOURCE = fld("restoration_source")
FROM_OFFLOAD_TIER = fld("restored_from_offload_tier")
TIER_FROM = fld("cache_tier_from")
TIER_TO = fld("cache_tier_to")
OFFLOAD_GEN = fld("offload_generation")
OUTCOME_TYPE = fld("claim_scoped_outcome_type")
OUTCOME_CLAIM = fld("outcome_claim_id")
BOUND_STEPS = fld("defer_bound_steps")
BOUND_NS = fld("defer_bound_ns")
SCHED_STEP = fld("scheduler_step")
DECODE_STEP = fld("decode_step")
BATCH_REQUESTS = fld("batch_requests")
BLOCK_TABLE = fld("block_table")
WIDTH = fld("max_blocks_per_sequence")
SRC = fld("src_blocks")
DST = fld("dst_slots")
SUMMARY_POSITIONS = fld("summary_positions")
COUNTED = fld("counted_as_materialization")
SOURCE = fld(SPEC.order.source_field)
SEQ_FIELD = fld("event_sequence")

# The releases the model lets a claim's loss follow (docs/model.md §4, §6 R-release-order): every
# lifecycle event leading into a released state, harm excepted (harm is the loss report itself).
RELEASE_KINDS = tuple(sorted(k for k, t in SPEC.claim.transitions.items()
                             if t.target in RELEASED and k != E.harmed
                             and set(t.sources) & set(RESPONSIBLE)))
MUTANT_PREFIX = "mutant"


def mode_of(spelling: Any) -> str | None:
    return SPEC.canonical_mode(spelling) if isinstance(spelling, str) else None


def bundle_of(mode: str | None) -> frozenset[str]:
    return frozenset(SPEC.modes[mode].rules) if mode in SPEC.modes else frozenset()


def holds(pred: Predicate | None, present: set[int]) -> bool | None:
    """docs/model.md §3 over the surviving logical positions."""
    if pred is None:
        return None
    if pred.kind == CONTIGUOUS:
        return all(p in present for p in range(pred.start, pred.start + pred.n))
    k = 0
    while k in present:
        k += 1
    return k >= pred.n


def breaking_position(pred: Predicate, present: set[int]) -> int | None:
    """A surviving position whose loss makes the predicate false (it holds now), else None."""
    if not holds(pred, present):
        return None
    first = pred.start if pred.kind == CONTIGUOUS else 0
    return first if pred.n > 0 and first in present else None


def spare_position(pred: Predicate, present: set[int]) -> int | None:
    """A surviving position the predicate does not need (its loss keeps it true), else None."""
    need = set(range(pred.start, pred.start + pred.n))
    spare = sorted(p for p in present if p not in need)
    return spare[-1] if spare and holds(pred, present) else None


@dataclass
class Loss:
    index: int
    claim_id: str
    block: int
    position: int
    state: str  # claim state when the block was lost
    breaks: bool  # the predicate went true -> false
    host: bool  # the claimed KV was in the host tier (not a loss of the claim)


@dataclass
class ClaimView:
    id: str
    mode: str | None
    accept: int
    pred: Predicate | None
    state: str = ""
    off_state: str = ""
    events: list[int] = field(default_factory=list)  # claim-kind events naming it
    harms: list[int] = field(default_factory=list)
    releases: list[int] = field(default_factory=list)
    lost_reports: list[int] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    blocks: dict[int, int] = field(default_factory=dict)  # live block -> position
    present: set[int] = field(default_factory=set)
    materialized_at: int | None = None

    @property
    def bundle(self) -> frozenset[str]:
        return bundle_of(self.mode)

    @property
    def protects(self) -> bool:
        return self.mode in SPEC.modes and SPEC.modes[self.mode].protects

    @property
    def responsible(self) -> bool:
        return self.state in RESPONSIBLE


@dataclass
class Decision:
    index: int
    kind: str
    request_id: str
    blocking: tuple[str, ...]


class View:
    """The seed's claims, losses, decisions and end state, replayed from its events."""

    def __init__(self, events: tuple[Event, ...] | list[Event]):
        self.events = tuple(events)
        self.claims: dict[str, ClaimView] = {}
        self.decisions: list[Decision] = []
        self.admissions: list[int] = []
        self.block_owner: dict[int, str] = {}
        self.usable: int | None = None
        self.has_seq = any(SEQ_FIELD in e.fields for e in self.events)
        self.has_time = any(t in e.fields for e in self.events for t in TIME_FIELDS)
        self.request_ids: set[str] = set()
        self.claim_ids: set[str] = set()
        self.commits: list[int] = []
        by_prefix: dict[str, str] = {}
        tr = SPEC.claim.transitions
        for i, e in enumerate(self.events):
            f = e.fields
            if f.get(USABLE) is not None:
                self.usable = f[USABLE]
            rid = f.get(REQUEST_ID)
            if isinstance(rid, str):
                self.request_ids.add(rid)
            cid = f.get(CLAIM_ID)
            if isinstance(cid, str):
                self.claim_ids.add(cid)
            k = e.kind
            if k == E.kvrm_committed:
                self.commits.append(i)
            if k == E.accepted and isinstance(cid, str) and cid not in self.claims:
                pred, _ = declared_predicate(f)
                self.claims[cid] = ClaimView(cid, mode_of(f.get(MODE)), i, pred,
                                             state=SPEC.claim.initial,
                                             off_state=SPEC.offload.initial)
                if isinstance(f.get(PREFIX_ID), str):
                    by_prefix.setdefault(f[PREFIX_ID], cid)
            c = self.claims.get(cid) if isinstance(cid, str) else None
            if k in CLAIM_KINDS and c is not None:
                c.events.append(i)
                t = tr[k]
                if t.target != "same":
                    c.state = t.target
                if k == E.harmed:
                    c.harms.append(i)
                elif k in RELEASE_KINDS:
                    c.releases.append(i)
                elif k == E.lost_after_release:
                    c.lost_reports.append(i)
                elif k == E.materialized and c.materialized_at is None:
                    c.materialized_at = i
                if k in SPEC.offload.transitions:
                    ot = SPEC.offload.transitions[k]
                    if ot.target != "same":
                        c.off_state = ot.target
                    if k == E.reuse_after_restore:
                        c.off_state = SPEC.offload.initial
            if k == E.block_materialized:
                owner = cid if isinstance(cid, str) else by_prefix.get(f.get(PREFIX_ID))
                b = f[BLOCK_ID]
                old = self.block_owner.pop(b, None)
                if old in self.claims:
                    oc = self.claims[old]
                    oc.present.discard(oc.blocks.pop(b, -1))
                if owner in self.claims:
                    oc = self.claims[owner]
                    oc.blocks[b] = f[POSITION]
                    oc.present.add(f[POSITION])
                    self.block_owner[b] = owner
            elif k == E.victim:
                b = f[BLOCK_ID]
                owner = self.block_owner.pop(b, None)
                if owner in self.claims:
                    oc = self.claims[owner]
                    pos = oc.blocks.pop(b)
                    before = holds(oc.pred, oc.present)
                    oc.present.discard(pos)
                    after = holds(oc.pred, oc.present)
                    oc.losses.append(Loss(i, owner, b, pos, oc.state, bool(before and not after),
                                          oc.off_state in HOST_STATES))
            elif k in (E.deferred, E.refused):
                self.decisions.append(Decision(i, k, f[REQUEST_ID],
                                               tuple(f.get(BLOCKING) or ())))
            elif k == E.admitted:
                self.admissions.append(i)

    # ---- questions the operators ask ---------------------------------------------------------
    def with_rule(self, rule: str) -> list[ClaimView]:
        """Claims whose mode's bundle contains `rule` (the rule applies to them)."""
        return [c for c in self.claims.values() if rule in c.bundle]

    def profile(self) -> str:
        """The mode label of a trace-level mutant: the one mode of its claims, or none/mixed."""
        modes = {c.mode or "unknown" for c in self.claims.values()}
        return modes.pop() if len(modes) == 1 else ("no claim" if not modes else "mixed")

    def fresh(self, stem: str) -> str:
        taken = self.request_ids | self.claim_ids
        n = 0
        while f"{MUTANT_PREFIX}:{stem}{n}" in taken:
            n += 1
        return f"{MUTANT_PREFIX}:{stem}{n}"

    def group_end(self, i: int) -> int:
        """The index after the run of block events that contains event i."""
        j = i + 1
        while j < len(self.events) and self.events[j].kind in E.block_group:
            j += 1
        return j

    def protecting_blocks(self) -> int:
        return sum(len(c.present) for c in self.claims.values()
                   if c.protects and c.responsible)

    def yielding_blocks(self) -> int:
        return sum(len(c.present) for c in self.claims.values()
                   if R.yield_ in c.bundle and c.responsible)


# ---- edits ----------------------------------------------------------------------------------
def with_fields(e: Event, **fields: Any) -> Event:
    return Event(e.kind, {**e.fields, **fields}, e.line, e.column)


def event(kind: str, **fields: Any) -> Event:
    """A new event of the spec vocabulary, with every field the spec requires for it."""
    es = SPEC.events[kind]
    missing = [r for r in es.required if r not in fields]
    if missing:
        raise ValueError(f"{kind} needs {missing}")
    return Event(kind, {k: v for k, v in fields.items() if v is not None})


def tidy(events: list[Event] | tuple[Event, ...], like: View) -> tuple[Event, ...]:
    """Keep the stream of a mutant whole: event_sequence 1..n from the seed's first number when
    the seed is sequenced; time fields made non-decreasing where the seed carries them (an
    inserted event takes the time of the event before it)."""
    out: list[Event] = []
    start = next((e.fields[SEQ_FIELD] for e in like.events if SEQ_FIELD in e.fields), 1)
    timed = [t for t in TIME_FIELDS if any(t in x.fields for x in like.events)]
    last: dict[str, int] = {}
    for n, e in enumerate(events):
        f = dict(e.fields)
        if like.has_seq:
            f[SEQ_FIELD] = start + n
        for t in timed:
            v = f.get(t)
            if t in last and (v is None or v < last[t]):
                f[t] = last[t]
            if f.get(t) is not None:
                last[t] = f[t]
        out.append(Event(e.kind, f, n + 1, 1))
    return tuple(out)


def insert(events: tuple[Event, ...], at: int, *new: Event) -> list[Event]:
    return [*events[:at], *new, *events[at:]]


def drop(events: tuple[Event, ...], *indices: int) -> list[Event]:
    gone = set(indices)
    return [e for i, e in enumerate(events) if i not in gone]


def move(events: tuple[Event, ...], i: int, to: int) -> list[Event]:
    """Move event i so that it sits before the event now at index `to` (to may be len)."""
    ev = events[i]
    rest = [e for k, e in enumerate(events) if k != i]
    at = to if to <= i else to - 1
    return [*rest[:at], ev, *rest[at:]]


def replace_at(events: tuple[Event, ...], i: int, ev: Event) -> list[Event]:
    return [*events[:i], ev, *events[i + 1:]]
