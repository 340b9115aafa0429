"""The replay checker: one streaming pass that decides every rule of MODEL.md §6 per claim.

It replays the pool (physical block -> claim, logical position), each claim's materialization
predicate over surviving positions (§3), its lifecycle and responsibility (§4) and offload
sub-lifecycle, and each active request, and decides identity, acceptance, order, harm, silent
loss, hard exclusion, explicit action, attribution, no-admit, expiry, offload order, stream
integrity and vocabulary. Memory is proportional to live claims, blocks and requests, never to
trace length: findings are kept once per (rule, claim, status) and counted beyond that.

Timing rule for loss reports (decided here, documented in docs/checking.md): the reference
runtime writes the claim event for a lost block (`resident_claim_harmed`,
`resident_claim_block_lost_after_release`) just before that block's `allocation_victim_selected`
event, inside the same allocation. A loss report therefore must come *before* the victim event it
reports and within the same group of consecutive block events; likewise `resident_claim_materialized`
may be emitted within the group of `resident_block_materialized` events that makes the predicate
true. Pending reports are settled when the group ends (the first event of another kind) or at the
end of the trace.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from kvclaims.check.predicate import Positions, Predicate, parse_predicate, LEADING
from kvclaims.check.verdict import (
    CONFORMANT,
    INCONCLUSIVE,
    INPUT_ERROR,
    NOT_EXERCISED,
    PASS,
    UNKNOWN,
    VIOLATION,
    ClaimResult,
    Finding,
    InputProblem,
    PrefixResult,
    Report,
    RequestResult,
    worse,
)
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

DEFAULT_MAX_CLAIMS = 100_000
_QUOTE_CHARS = 400

# Identity fields that must take one value per claim (MODEL §6 R-identity).
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
        "had_loss_while_responsible",
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
        self.lost_positions: list[int] = []
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


class Prefix:
    __slots__ = ("id", "positions", "victims", "cached_victims", "lost")

    def __init__(self, pid: str):
        self.id = pid
        self.positions = Positions(Predicate(LEADING, 0, 0))
        self.victims = 0
        self.cached_victims = 0
        self.lost: list[int] = []


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


class Replay:
    """Feed events in order with :meth:`feed`, then :meth:`finish` for the report."""

    def __init__(self, spec: Spec, file: str = "-", *, max_claims: int = DEFAULT_MAX_CLAIMS,
                 observers: Iterable[tuple[frozenset[str], Callable[[Event], None]]] = ()):
        self.spec = spec
        self.file = file
        self.R = RuleIds(spec)
        self.E = EventNames(spec)
        self.values = spec.values
        self.max_claims = max_claims
        # Observers see only the event kinds they ask for, so block events cost no extra call.
        self.observers = tuple(observers)
        self._observed = frozenset().union(*(k for k, _ in self.observers))
        self.claim_tr = spec.claim.transitions
        self.off_tr = spec.offload.transitions
        self.responsible = spec.responsible
        self.released = spec.released
        self.known = spec.events
        self.stream_kinds = spec.events_of_scope("stream")
        self.claim_kinds = spec.events_of_scope("claim")
        self.claims: dict[str, Claim] = {}
        self.claim_by_prefix: dict[str, Claim] = {}
        self.prefixes: dict[str, Prefix] = {}
        self.requests: dict[str, Request] = {}
        self.block_map: dict[int, tuple[Prefix, int, Claim | None]] = {}
        self.allocated: set[int] = set()
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}
        self._seen: set[tuple[str, str | None, str]] = set()
        self.index = -1
        self.last_seq: int | None = None
        self.last_ts: float = float("-inf")
        self.order_evidence = False
        self.stream_broken: Finding | None = None
        self.unknown_event = False
        self.unjoined_stream: Event | None = None
        self.pending: set[Claim] = set()
        self._block_group = self.E.block_group
        self.usable: int | None = None
        self.cached_resident_victims = 0
        self.explicit_owed: Event | None = None
        self.denied_since_owed = False
        self.error: InputProblem | None = None
        E = self.E
        self._handlers: dict[str, Callable[[Event], None]] = {
            E.victim: self._on_victim,
            E.block_materialized: self._on_block_materialized,
            E.admitted: self._on_admitted,
            E.deferred: self._on_decision,
            E.refused: self._on_decision,
            E.live_bounded: self._on_live_bounded,
            E.reuse_admitted: self._on_reuse,
            E.reuse_denied: self._on_reuse,
            E.request_initialized: self._on_connector_claim,
        }

    # ---- findings --------------------------------------------------------------------------
    def _find(self, status: str, rule: str, ev: Event, message: str, claim: Claim | None = None,
              *, claim_id: str | None = None, request_id: str | None = None) -> None:
        if claim is not None:
            if claim.bundle and rule not in claim.bundle:
                return
            claim_id = claim.id
        if status == VIOLATION and self.stream_broken is not None and rule != self.R.stream:
            status = UNKNOWN
            message += (f" (after the stream gap at line {self.stream_broken.line}, "
                        "so it may be explained by missing events)")
        self.counts[rule] = self.counts.get(rule, 0) + 1
        if claim is not None:
            prev = claim.status.get(rule, NOT_EXERCISED)
            claim.status[rule] = worse(prev, status)
        key = (rule, claim_id, status)
        if key in self._seen:
            return
        self._seen.add(key)
        quote = ev.text
        if isinstance(quote, (bytes, bytearray)):
            quote = bytes(quote[:_QUOTE_CHARS]).decode("utf-8", "replace")
        if quote is not None:
            quote = quote.rstrip("\r\n")[:_QUOTE_CHARS]
        self.findings.append(Finding(
            status=status, rule=rule, message=message, line=ev.line, column=ev.column,
            event_index=self.index, event=ev.kind, claim_id=claim_id,
            request_id=request_id if request_id is not None else ev.fields.get("request_id"),
            state_before=claim.state if claim is not None else None, quote=quote))

    def _pass(self, claim: Claim, rule: str) -> None:
        if not claim.bundle or rule in claim.bundle:
            if claim.status.get(rule, NOT_EXERCISED) == NOT_EXERCISED:
                claim.status[rule] = PASS

    # ---- main loop -------------------------------------------------------------------------
    def feed(self, ev: Event) -> None:
        self.index += 1
        kind = ev.kind
        f = ev.fields
        if self.pending and kind not in self._block_group:
            self._close_group(ev)
        seq = f.get("event_sequence")
        if seq is not None:
            self._sequence(ev, seq)
        else:
            ts = f.get("timestamp_ns")
            if ts is None:
                ts = f.get("monotonic_ns")
            if ts is not None:
                self.order_evidence = True
                if ts < self.last_ts:
                    self._broken(ev, f"timestamp decreases from {self.last_ts} to {ts}: "
                                 "order unknown")
                self.last_ts = ts
        u = f.get("usable_blocks")
        if u is not None:
            self.usable = u
        if kind in self._observed:
            for kinds, obs in self.observers:
                if kind in kinds:
                    obs(ev)
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(ev)
        elif kind in self.claim_kinds:
            self._on_claim(ev)
        elif kind not in self.known:
            self._on_unknown(ev)
        elif kind in self.stream_kinds:
            if self.unjoined_stream is None:
                self.unjoined_stream = ev
        else:
            cid = f.get("claim_id")
            if cid is not None and cid in self.claims:
                self._identity(self.claims[cid], ev)

    def feed_all(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.feed(ev)

    # ---- stream integrity (R-stream) -------------------------------------------------------
    def _sequence(self, ev: Event, seq: int) -> None:
        self.order_evidence = True
        last = self.last_seq
        if last is not None and seq != last + 1:
            what = (f"sequence jumps from {last} to {seq}: {seq - last - 1} events missing"
                    if seq > last else f"sequence goes back from {last} to {seq}")
            self._broken(ev, what)
        if last is None or seq > last:
            self.last_seq = seq

    def _broken(self, ev: Event, what: str) -> None:
        self._find(UNKNOWN, self.R.stream, ev, what + "; verdicts after this point are unknown")
        if self.stream_broken is None:
            self.stream_broken = self.findings[-1] if self.findings else None

    # ---- vocabulary (R-vocabulary) ---------------------------------------------------------
    def _on_unknown(self, ev: Event) -> None:
        self.unknown_event = True
        cid = ev.fields.get("claim_id")
        claim = self.claims.get(cid) if isinstance(cid, str) else None
        msg = (f"unknown event {ev.kind!r}: not in the closed vocabulary, so what it could "
               "affect is unknown")
        if claim is not None:
            self._find(UNKNOWN, self.R.vocabulary, ev, msg, claim)
        else:
            self._find(UNKNOWN, self.R.vocabulary, ev, msg)
            for c in self.claims.values():
                if c.state in self.responsible:
                    c.status[self.R.vocabulary] = UNKNOWN

    # ---- claims ----------------------------------------------------------------------------
    def _claim(self, cid: str, ev: Event) -> Claim:
        c = self.claims.get(cid)
        if c is None:
            if len(self.claims) >= self.max_claims:
                self.index -= 1  # the rejected event is not checked
                raise ClaimLimit(ev, self.max_claims)
            c = Claim(cid, self.spec.claim.initial, ev.line)
            self.claims[cid] = c
        return c

    def _identity(self, c: Claim, ev: Event) -> None:
        f = ev.fields
        ident = c.identity
        for name in IDENTITY_FIELDS:
            v = f.get(name)
            if v is None:
                continue
            old = ident.get(name)
            if old is None:
                ident[name] = v
            elif old != v:
                self._find(VIOLATION, self.R.identity, ev,
                           f"ambiguous identity: {name} is {v!r} here but {old!r} before", c)

    def _set_mode(self, c: Claim, ev: Event) -> None:
        spelling = ev.fields.get("protection_mode")
        if spelling is None and c.mode_spelling is not None:
            return
        c.mode_spelling = spelling
        c.mode = self.spec.canonical_mode(spelling)
        if c.mode is None:
            c.bundle = frozenset(self.spec.modes["best_effort"].rules)
            self._find(UNKNOWN, self.R.vocabulary, ev,
                       f"protection mode {spelling!r} is not a known mode, so the claim's "
                       "obligations are unknown", c)
            c.status[self.R.vocabulary] = UNKNOWN
            return
        mode = self.spec.modes[c.mode]
        c.bundle = frozenset(mode.rules)
        c.protected = self.R.hard in c.bundle
        if mode.undecidable:
            c.status[self.R.vocabulary] = UNKNOWN
            self._find(UNKNOWN, self.R.vocabulary, ev,
                       f"mode {c.mode} cannot be witnessed from the reference vocabulary", c)

    def _set_predicate(self, c: Claim, ev: Event) -> None:
        f = ev.fields
        text = f.get("materialization_predicate")
        pred = parse_predicate(text) if text else None
        if text and pred is None:
            self._find(UNKNOWN, self.R.identity, ev,
                       f"materialization predicate {text!r} is not understood", c)
        if pred is None:
            n = f.get("resident_blocks_required")
            if n is None:
                n = f.get("useful_threshold_blocks")
            kind = f.get("predicate") or LEADING
            if n is not None and kind == LEADING:
                pred = Predicate(LEADING, 0, n)
        req = f.get("resident_blocks_required")
        if req is not None:
            c.declared_required = req
        if pred is not None and c.positions.pred is None:
            c.positions.pred = pred

    def _on_connector_claim(self, ev: Event) -> None:
        f = ev.fields
        if f.get(self.values["connector_claim_flag"]) is True:
            cid = f.get(self.values["connector_claim_id"]) or f.get("claim_id")
            if isinstance(cid, str):
                c = self._claim(cid, ev)
                if c.state == self.spec.claim.initial:
                    c.state = self.spec.claim.transitions[self.E.submitted].target
                self._identity(c, ev)

    def _on_claim(self, ev: Event) -> None:
        E, R = self.E, self.R
        kind = ev.kind
        cid = ev.fields["claim_id"]
        c = self._claim(cid, ev)
        self._identity(c, ev)
        t = self.claim_tr[kind]
        before = c.state
        if before not in t.sources or (c.silent and kind in self.E.releasing
                                          and kind != self.E.harmed):
            self._bad_transition(c, ev, before)
            return
        if kind == E.accepted:
            if ev.fields.get("claim_registration") == self.values["post_hoc_registration"]:
                self._set_mode(c, ev)
                self._find(VIOLATION, R.acceptance, ev,
                           "acceptance is post hoc: the claim was named after the fact", c)
            else:
                self._set_mode(c, ev)
            self._set_predicate(c, ev)
            c.accepted = True
            pid = ev.fields.get("prefix_id")
            if pid is not None:
                self.claim_by_prefix.setdefault(pid, c)
            for rule in (R.identity, R.acceptance, R.order):
                self._pass(c, rule)
        elif kind in (E.submitted, E.created):
            self._set_mode(c, ev)
            self._set_predicate(c, ev)
        elif kind == E.materialized:
            self._set_predicate(c, ev)
            if ev.fields.get("predicate_materialized") is False:
                self._find(VIOLATION, R.order, ev,
                           "materialized event says the predicate does not hold", c)
            if c.tracked:
                if not c.positions.holds():
                    c.pending_materialized = ev
                    self.pending.add(c)
            else:
                c.asserted = True
        elif kind == E.harmed:
            self._on_harm(c, ev)
            return
        elif kind == E.lost_after_release:
            c.pending_lost.append(ev)
            self.pending.add(c)
        elif kind in (E.offloaded, E.restore_required, E.restored, E.reuse_after_restore,
                      E.restoration_failed):
            self._on_offload(c, ev)
        if kind in self.E.releasing:
            self._on_release(c, ev)
        if t.target != "same":
            c.state = t.target

    def _bad_transition(self, c: Claim, ev: Event, before: str) -> None:
        E, R = self.E, self.R
        verb = self.spec.events[ev.kind].verb
        if ev.kind == E.harmed and before == E.harmed_state or (
                ev.kind == E.harmed and c.pending_harm is not None):
            self._find(VIOLATION, R.harm, ev, "harm reported twice for the same claim", c)
        elif ev.kind == E.harmed:
            self._find(VIOLATION, R.harm, ev,
                       f"harm reported for a claim that is not under responsibility "
                       f"(state {before}): no accepted claim, no harm", c)
        elif before in (self.spec.claim.initial, E.submitted_state) and not c.accepted:
            rule = R.acceptance
            self._find(VIOLATION, rule, ev,
                       f"'{verb}' before the claim was accepted (state {before})", c)
        elif c.silent and ev.kind in E.releasing:
            rule = R.expiry if ev.kind == E.expired else R.order
            self._find(VIOLATION, rule, ev,
                       f"'{verb}' after the claim's predicate-breaking loss: a release cannot "
                       "excuse a loss that already happened", c)
        else:
            self._find(VIOLATION, R.order, ev,
                       f"'{verb}' is not allowed in state {before}", c)

    def _on_release(self, c: Claim, ev: Event) -> None:
        E, R = self.E, self.R
        self._discharge_explicit(ev)
        self._pass(c, R.explicit)
        if ev.kind == E.expired:
            self._pass(c, R.expiry)
        owed = c.outcome_owed
        if owed is not None and self.spec.offload_outcome_events.get(owed[0]) == ev.kind:
            c.outcome_owed = None
            c.off_state = self.spec.offload.initial
            self._pass(c, R.offload)

    def _on_harm(self, c: Claim, ev: Event) -> None:
        R = self.R
        f = ev.fields
        if f.get("predicate_before") is False or f.get("predicate_after") is True:
            self._find(VIOLATION, R.harm, ev,
                       "harm event states that the predicate did not go true to false", c)
        if c.pending_harm is not None:
            self._find(VIOLATION, R.harm, ev, "harm reported twice for the same claim", c)
            return
        if c.tracked:
            holds = c.positions.holds()
            if holds is None:
                self._find(UNKNOWN, R.harm, ev,
                           "harm cannot be checked: the claim has no materialization predicate", c)
                c.state = self.E.harmed_state
                return
            if not holds:
                self._find(VIOLATION, R.harm, ev,
                           "harm reported after the predicate had already broken: it must come "
                           "before the loss", c)
                c.state = self.E.harmed_state
                return
            c.pending_harm = ev
            self.pending.add(c)
        else:
            c.state = self.E.harmed_state
            self._pass(c, R.harm)
            owed = c.outcome_owed
            if owed is not None and self.spec.offload_outcome_events.get(owed[0]) == ev.kind:
                c.outcome_owed = None
                self._pass(c, R.offload)

    # ---- offload sub-lifecycle (R-offload) -------------------------------------------------
    def _on_offload(self, c: Claim, ev: Event) -> None:
        E, R = self.E, self.R
        f = ev.fields
        consts = self.spec.offload_constants
        if not c.off_state:
            c.off_state = self.spec.offload.initial
        t = self.off_tr[ev.kind]
        verb = self.spec.events[ev.kind].verb
        gen = f.get("offload_generation")
        if ev.kind == E.offloaded:
            if gen is not None and c.off_gen is not None and gen <= c.off_gen:
                self._find(VIOLATION, R.offload, ev,
                           f"offload generation {gen} does not follow generation {c.off_gen}", c)
            if f.get("cache_tier_from") not in (None, consts["gpu_tier"]) or \
                    f.get("cache_tier_to") not in (None, consts["host_tier"]):
                self._find(VIOLATION, R.offload, ev,
                           f"offload must move {consts['gpu_tier']} -> {consts['host_tier']}", c)
            c.off_gen = gen
            self._discharge_explicit(ev)
            self._pass(c, R.explicit)
        elif gen is not None and c.off_gen is not None and gen != c.off_gen:
            self._find(VIOLATION, R.offload, ev,
                       f"'{verb}' names generation {gen} but generation {c.off_gen} is open", c)
        if ev.kind == E.restored and (gen if gen is not None else c.off_gen) in c.failed_gens:
            self._find(VIOLATION, R.offload, ev,
                       "restored after the restoration of this generation failed: recompute "
                       "after a failure is not restoration", c)
            return
        if c.off_state not in t.sources:
            self._find(VIOLATION, R.offload, ev,
                       f"'{verb}' in offload state {c.off_state}: the order is offloaded, "
                       "restore_required, restored, reuse_after_restore", c)
            return
        if ev.kind == E.restored:
            src = f.get("restoration_source")
            if (src is not None and src != consts["restore_source"]) or \
                    f.get("restored_from_offload_tier") is False or \
                    f.get("cache_tier_from") not in (None, consts["host_tier"]):
                self._find(VIOLATION, R.offload, ev,
                           f"restored from {src or f.get('cache_tier_from')!r}, not from the "
                           "offload tier: fallback recompute is not restoration", c)
                return
        if ev.kind == E.restoration_failed:
            outcome = f.get("claim_scoped_outcome_type")
            target = f.get("outcome_claim_id")
            if outcome not in self.spec.offload_outcome_events:
                self._find(VIOLATION, R.offload, ev,
                           f"restoration failure outcome {outcome!r} is not one of "
                           f"{sorted(self.spec.offload_outcome_events)}", c)
            if target is not None and target != c.id:
                self._find(VIOLATION, R.offload, ev,
                           f"restoration failure outcome names claim {target!r}, not {c.id!r}",
                           c)
            c.failed_gens.add(gen if gen is not None else c.off_gen)
            if outcome in self.spec.offload_outcome_events:
                c.outcome_owed = (outcome, ev)
        c.off_state = t.target if t.target != "same" else c.off_state
        self._pass(c, R.offload)

    # ---- blocks ----------------------------------------------------------------------------
    def _prefix(self, pid: str) -> Prefix:
        p = self.prefixes.get(pid)
        if p is None:
            p = self.prefixes[pid] = Prefix(pid)
        return p

    def _on_block_materialized(self, ev: Event) -> None:
        f = ev.fields
        b = f["physical_block_id"]
        pos = f["logical_block_position"]
        cid = f.get("claim_id")
        pid = f.get("prefix_id")
        claim: Claim | None = None
        if cid is not None:
            claim = self.claims.get(cid)
            if claim is None:
                claim = self._claim(cid, ev)
                self._find(VIOLATION, self.R.identity, ev,
                           f"block names claim {cid!r}, which was never submitted", claim)
        elif pid is not None:
            claim = self.claim_by_prefix.get(pid)
        if claim is not None:
            self._identity(claim, ev)
        prefix = self._prefix(pid if pid is not None else (cid or "?"))
        old = self.block_map.get(b)
        if old is not None and (old[0] is not prefix or old[1] != pos):
            self._lose(b, old, ev, cached=False)
        self.block_map[b] = (prefix, pos, claim)
        prefix.positions.add(pos)
        if claim is not None:
            claim.tracked = True
            claim.positions.add(pos)
            if claim.pending_materialized is not None and claim.positions.holds():
                claim.pending_materialized = None

    def _on_victim(self, ev: Event) -> None:
        f = ev.fields
        b = f["physical_block_id"]
        self.allocated.add(b)
        rid = f.get("request_id")
        if rid is not None:
            req = self.requests.get(rid)
            if req is None:
                req = self._request(rid)
            req.allocated += 1
        entry = self.block_map.pop(b, None)
        if entry is None:
            return
        cached = f.get("victim_reason") == self.values["cached_victim_reason"]
        self._lose(b, entry, ev, cached=cached)

    def _lose(self, b: int, entry: tuple[Prefix, int, Claim | None], ev: Event,
              *, cached: bool) -> None:
        R = self.R
        prefix, pos, c = entry
        prefix.positions.remove(pos)
        prefix.victims += 1
        prefix.lost.append(pos)
        if cached:
            prefix.cached_victims += 1
            self.cached_resident_victims += 1
        if c is None:
            return
        c.victims += 1
        c.lost_positions.append(pos)
        before = c.positions.holds()
        c.positions.remove(pos)
        after = c.positions.holds()
        if c.state in self.responsible and not c.silent:
            c.had_loss_while_responsible = True
            if c.protected:
                self._find(VIOLATION, R.hard, ev,
                           f"protected block {b} (position {pos}) of hard claim {c.id} was an "
                           "allocation victim while the claim was under responsibility", c)
            if before is None:
                self._find(UNKNOWN, R.silent, ev,
                           f"block {b} of claim {c.id} was lost but the claim has no "
                           "materialization predicate, so harm cannot be decided", c)
            elif before and not after:
                if c.pending_harm is not None:
                    c.pending_harm = None
                    c.state = self.E.harmed_state
                    self._pass(c, R.harm)
                    self._pass(c, R.silent)
                else:
                    if self.explicit_owed is not None and self.denied_since_owed:
                        self._find(VIOLATION, R.no_admit, ev,
                                   "write no-admit was the only action before this loss: "
                                   "future_reuse_denied protects nobody", c)
                    elif self.explicit_owed is not None and c.protected:
                        self._find(VIOLATION, R.explicit, ev,
                                   "protected + active live exceeded usable, and no explicit "
                                   "action was reported before this loss", c)
                    self._find(VIOLATION, R.silent, ev,
                               f"unreported resident loss: block {b} (position {pos}) broke "
                               f"{c.positions.pred.spelling() if c.positions.pred else 'the predicate'}"
                               f" of claim {c.id} with no harm event and no prior release", c)
                    c.silent = True
        elif c.state in self.released or c.silent:
            c.lost_after_release += 1
            if c.pending_lost:
                c.pending_lost.pop(0)

    def _close_group(self, ev: Event | None) -> None:
        R = self.R
        for c in list(self.pending):
            if c.pending_harm is not None:
                h = c.pending_harm
                c.pending_harm = None
                self._find(VIOLATION, R.harm, h,
                           "harm reported but no loss in the same allocation broke the predicate",
                           c)
                c.state = self.E.harmed_state
            if c.pending_materialized is not None:
                m = c.pending_materialized
                c.pending_materialized = None
                if not c.positions.holds():
                    self._find(VIOLATION, R.order, m,
                               "claim declared materialized but its predicate does not hold "
                               "over the materialized positions", c)
            for lost in c.pending_lost:
                self._find(VIOLATION, R.order, lost,
                           "post-release loss reported but no block of the claim was lost in "
                           "the same allocation", c)
            c.pending_lost.clear()
        self.pending.clear()

    # ---- requests ----------------------------------------------------------------------------
    def _request(self, rid: str) -> Request:
        r = self.requests.get(rid)
        if r is None:
            r = self.requests[rid] = Request(rid)
        return r

    def _protected_claims(self) -> list[Claim]:
        return [c for c in self.claims.values()
                if c.protected and c.state in self.responsible and not c.silent
                and (c.positions.surviving > 0 or (not c.tracked and c.asserted))]

    @staticmethod
    def _blocks_of(c: Claim) -> int:
        if c.tracked:
            return c.positions.surviving
        return c.declared_required or 0

    def _on_admitted(self, ev: Event) -> None:
        f = ev.fields
        r = self._request(f["request_id"])
        if r.outcome != "refused":
            r.outcome = "served"
        required = f.get("active_live_blocks_required")
        usable = f.get("usable_blocks", self.usable)
        if required and usable is not None:
            protected = self._protected_claims()
            total = sum(self._blocks_of(c) for c in protected)
            if protected and total + required > usable:
                self.explicit_owed = ev
                self.denied_since_owed = False

    def _discharge_explicit(self, ev: Event) -> None:
        self.explicit_owed = None
        self.denied_since_owed = False

    def _on_live_bounded(self, ev: Event) -> None:
        self._discharge_explicit(ev)

    def _on_reuse(self, ev: Event) -> None:
        f = ev.fields
        r = self._request(f["request_id"])
        if ev.kind == self.E.reuse_denied:
            r.reuse = False
            r.denied = True
            if self.explicit_owed is not None:
                self.denied_since_owed = True
            for c in self.claims.values():
                if c.state in self.responsible:
                    self._pass(c, self.R.no_admit)
        else:
            r.reuse = True

    def _on_decision(self, ev: Event) -> None:
        E = self.E
        f = ev.fields
        r = self._request(f["request_id"])
        r.outcome = "refused" if ev.kind == E.refused else (
            "deferred" if r.outcome != "refused" else r.outcome)
        if not r.first_decision:
            r.first_decision = True
            r.blocking = tuple(f.get("blocking_claim_ids") or ())
            r.shortfall = f.get("capacity_shortfall_blocks")
            r.free = f.get("free_blocks_before_allocate")
            r.feasibility = f.get("feasibility")
        if r.reuse is None or f.get("future_reuse_admitted") is False:
            r.reuse = False
        self._attribution(ev, r)
        self._discharge_explicit(ev)

    def _attribution(self, ev: Event, r: Request) -> None:
        R, V = self.R, self.values
        f = ev.fields
        blocking = f.get("blocking_claim_ids")
        feas = f.get("feasibility")
        restore_path = feas == V["restore_infeasible"]
        if restore_path:
            eligible = {c.id: c for c in self.claims.values()
                        if c.outcome_owed is not None and c.outcome_owed[0] in
                        self._refusal_outcomes()}
        else:
            eligible = {c.id: c for c in self._protected_claims()}
        shortfall = f.get("capacity_shortfall_blocks")
        claim_caused = bool(blocking) or feas == V["infeasible"] or (shortfall or 0) > 0
        if not claim_caused:
            return
        if not blocking:
            for c in eligible.values():
                self._find(VIOLATION, R.attribution, ev,
                           f"refusal under claim pressure does not name blocking claim {c.id}",
                           c, request_id=r.id)
            return
        first = next(iter(eligible.values()), None)
        if list(blocking) != sorted(set(blocking)):
            self._find(VIOLATION, R.attribution, ev,
                       f"blocking_claim_ids {blocking} must be sorted and without duplicates",
                       first, request_id=r.id)
        for bid in blocking:
            if bid not in eligible:
                known = self.claims.get(bid)
                why = ("is not a known claim" if known is None else
                       f"is in state {known.state}" if known.state not in self.responsible else
                       "holds no protected blocks")
                target = known if known is not None and known.bundle else first
                self._find(VIOLATION, R.attribution, ev,
                           f"blocking-claim smear: {bid} {why}, so it cannot block this request",
                           target, claim_id=bid, request_id=r.id)
        if not restore_path:
            for cid, c in eligible.items():
                if cid not in blocking:
                    self._find(VIOLATION, R.attribution, ev,
                               f"refusal does not name blocking claim {cid}", c, request_id=r.id)
            self._numbers(ev, r, eligible)
        else:
            for bid in blocking:
                c = eligible.get(bid)
                if c is not None:
                    c.outcome_owed = None
                    c.off_state = self.spec.offload.initial
                    self._pass(c, R.offload)
        for bid in blocking:
            c = eligible.get(bid)
            if c is not None:
                self._pass(c, R.attribution)
                self._pass(c, R.explicit)

    def _refusal_outcomes(self) -> frozenset[str]:
        refused = self.E.refused
        return frozenset(k for k, v in self.spec.offload_outcome_events.items() if v == refused)

    def _numbers(self, ev: Event, r: Request, eligible: dict[str, Claim]) -> None:
        R, V = self.R, self.values
        f = ev.fields
        first = next(iter(eligible.values()), None)
        protected = sum(self._blocks_of(c) for c in eligible.values())

        def bad(msg: str) -> None:
            self._find(VIOLATION, R.attribution, ev, msg, first, request_id=r.id)

        p = f.get("protected_resident_blocks")
        if p is not None and p != protected:
            bad(f"protected_resident_blocks is {p} but the replayed pool holds {protected} "
                "protected blocks")
        req = f.get("active_live_blocks_required")
        total = f.get("resident_plus_active_blocks")
        if total is not None and req is not None and total != protected + req:
            bad(f"resident_plus_active_blocks is {total}, not protected {protected} + "
                f"required {req}")
        usable = f.get("usable_blocks", self.usable)
        free = f.get("free_blocks_before_allocate")
        if free is not None and usable is not None:
            upper = usable - protected
            lower = usable - len(self.allocated)
            if free > upper:
                bad(f"free_blocks_before_allocate is {free}, but at most {upper} "
                    f"(usable {usable} - protected {protected}) can be free")
            elif free < lower:
                bad(f"free_blocks_before_allocate is {free}, but at least {lower} are free "
                    f"(usable {usable} - {len(self.allocated)} blocks ever allocated)")
        shortfall = f.get("capacity_shortfall_blocks")
        if shortfall is not None and req is not None:
            if free is not None and shortfall != max(0, req - free):
                bad(f"capacity_shortfall_blocks is {shortfall}, not max(0, required {req} - "
                    f"free {free}) = {max(0, req - free)}")
            elif usable is not None and shortfall < max(0, protected + req - usable):
                bad(f"capacity_shortfall_blocks is {shortfall}, below protected {protected} + "
                    f"required {req} - usable {usable}")
        feas = f.get("feasibility")
        if feas is not None and shortfall is not None:
            infeasible = feas == V["infeasible"]
            if (shortfall > 0) != infeasible or (
                    not infeasible and not feas.startswith(V["feasible_prefix"])):
                bad(f"feasibility {feas!r} does not match shortfall {shortfall}")
        claims_listed = f.get("protected_resident_claims")
        if claims_listed is not None:
            ids = sorted(x.get("claim_id") for x in claims_listed if isinstance(x, dict))
            if ids != sorted(eligible):
                bad(f"protected_resident_claims names {ids}, the replayed pool protects "
                    f"{sorted(eligible)}")

    # ---- state for pictures (kvclaims explain) ----------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The replayed state after the last event fed, as plain data (no findings decided here).

        Pool bands are what a trace determines: `resident` blocks are bound to a prefix,
        `protected` are the bound blocks of claims under responsibility in a hard mode,
        `active` are blocks ever allocated that are not resident, `free` is the rest of `usable`.
        """
        protected = sum(self._blocks_of(c) for c in self._protected_claims())
        resident = len(self.block_map)
        usable = self.usable or 0
        active = max(0, len(self.allocated) - resident)
        return {
            "index": self.index,
            "usable": usable,
            "resident": resident,
            "protected": protected,
            "active": active,
            "free": max(0, usable - resident - active),
            "cached_resident_victims": self.cached_resident_victims,
            "claims": {c.id: {"state": c.state, "silent": c.silent,
                              "leading": c.positions.leading if c.tracked else None,
                              "surviving": c.positions.surviving if c.tracked else None,
                              "required": c.positions.pred.n if c.positions.pred else
                              c.declared_required,
                              "holds": c.positions.holds() if c.tracked else None}
                       for c in self.claims.values()},
            "requests": {r.id: {"outcome": r.outcome, "allocated": r.allocated}
                         for r in self.requests.values()},
        }

    # ---- the end ---------------------------------------------------------------------------
    def fail_input(self, problem: InputProblem) -> None:
        self.error = problem

    def finish(self) -> Report:
        R = self.R
        end = Event("end_of_trace", {}, 0)
        if self.pending:
            self._close_group(None)
        for c in self.claims.values():
            if c.outcome_owed is not None:
                self._find(VIOLATION, R.offload, c.outcome_owed[1],
                           f"restoration failure promised a {c.outcome_owed[0]} outcome that "
                           "never followed", c)
        if self.unjoined_stream is not None and self.claims:
            self._find(UNKNOWN, R.vocabulary, self.unjoined_stream,
                       "runtime KV stream events cannot be joined to claims without a claim "
                       "manifest")
            for c in self.claims.values():
                c.status[R.vocabulary] = UNKNOWN
        del end
        claims = tuple(self._claim_result(c) for c in self.claims.values())
        requests = tuple(self._request_result(r) for r in self.requests.values())
        prefixes = tuple(PrefixResult(
            prefix_id=p.id, blocks=p.positions.surviving + len(p.lost), victims=p.victims,
            cached_victims=p.cached_victims, lost_positions=tuple(sorted(p.lost)),
            leading_blocks_survived=p.positions.leading, remaining_blocks=p.positions.surviving)
            for p in self.prefixes.values())
        statuses = {f.status for f in self.findings}
        if self.error is not None:
            verdict = INPUT_ERROR
        elif VIOLATION in statuses:
            verdict = VIOLATION
        elif UNKNOWN in statuses or any(c.verdict == INCONCLUSIVE for c in claims):
            verdict = INCONCLUSIVE
        else:
            verdict = CONFORMANT
        findings = tuple(sorted(self.findings, key=lambda x: (x.event_index, x.rule)))
        return Report(
            file=self.file, verdict=verdict, events=self.index + 1, findings=findings,
            finding_counts=dict(self.counts), claims=claims, requests=requests,
            prefixes=prefixes, cached_resident_victims=self.cached_resident_victims,
            resident_preserved=self.cached_resident_victims == 0,
            protected_resident_blocks=sum(self._blocks_of(c) for c in self._protected_claims()),
            error=self.error)

    def _claim_result(self, c: Claim) -> ClaimResult:
        R = self.R
        status = dict(c.status)
        bundle = c.bundle or frozenset(self.spec.modes["best_effort"].rules)
        if c.accepted:
            for rule in (R.identity, R.acceptance, R.order, R.no_admit):
                if status.get(rule, NOT_EXERCISED) == NOT_EXERCISED:
                    status[rule] = PASS
            if c.tracked:
                # A silently lost claim leaves R-harm undecided: R-no-silent-loss carries it.
                for rule in ((R.silent, R.hard) if c.silent else (R.harm, R.silent, R.hard)):
                    if rule in bundle and status.get(rule, NOT_EXERCISED) == NOT_EXERCISED:
                        status[rule] = PASS
        stream = (UNKNOWN if self.stream_broken is not None else
                  PASS if self.order_evidence else NOT_EXERCISED)
        status[R.stream] = worse(status.get(R.stream, NOT_EXERCISED), stream)
        if status.get(R.vocabulary, NOT_EXERCISED) == NOT_EXERCISED:
            status[R.vocabulary] = UNKNOWN if self.unknown_event else PASS
        rules = {rid: status.get(rid, NOT_EXERCISED) if rid in bundle else NOT_EXERCISED
                 for rid in self.spec.rules}
        for rid, st in status.items():
            if st == VIOLATION:
                rules[rid] = VIOLATION
        worst = NOT_EXERCISED
        for st in rules.values():
            worst = worse(worst, st)
        if c.mode is None and c.accepted:
            worst = worse(worst, UNKNOWN)
        verdict = (VIOLATION if worst == VIOLATION else
                   INCONCLUSIVE if worst == UNKNOWN else CONFORMANT)
        pos = c.positions
        holds = pos.holds() if (c.tracked or c.asserted) else None
        if not c.tracked and c.asserted:
            holds = c.state in self.responsible
        return ClaimResult(
            claim_id=c.id, mode=c.mode, mode_spelling=c.mode_spelling,
            final_state=c.state,
            verdict=verdict, rules=rules, victims=c.victims,
            harmed_positions=tuple(sorted(c.lost_positions)),
            leading_blocks_survived=pos.leading if c.tracked else None,
            surviving_blocks=pos.surviving if c.tracked else None,
            required_blocks=pos.pred.n if pos.pred is not None else c.declared_required,
            materialized=holds, lost_after_release=c.lost_after_release,
            protected_blocks=self._blocks_of(c) if c.protected and c.state in self.responsible
            else 0)

    @staticmethod
    def _request_result(r: Request) -> RequestResult:
        reuse = r.reuse
        outcome = r.outcome
        if outcome == "unknown" and r.allocated > 0:
            # Blocks were allocated to it: service began (MODEL §7).
            outcome = "served"
        if reuse is None and outcome == "served":
            # MODEL §2: future-reuse admission is the default; write no-admit must be reported.
            reuse = True
        return RequestResult(
            request_id=r.id, outcome=outcome, blocking_claim_ids=r.blocking,
            capacity_shortfall_blocks=r.shortfall, free_blocks_before_allocate=r.free,
            feasibility=r.feasibility, future_reuse_admitted=reuse, allocated_blocks=r.allocated)


class ClaimLimit(Exception):
    """More live claims than --max-claims: an input error at this event, not a silent cap."""

    def __init__(self, ev: Event, limit: int):
        super().__init__(f"more than {limit} claims (raise --max-claims to check this trace)")
        self.event = ev
        self.limit = limit


def check_events(spec: Spec, events: Iterable[Event], file: str = "-", **kw: Any) -> Report:
    """Decide a whole event stream (convenience for tests and library users)."""
    replay = Replay(spec, file, **kw)
    replay.feed_all(events)
    return replay.finish()
