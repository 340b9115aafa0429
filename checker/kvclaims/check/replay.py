"""The replay checker: one streaming pass that evaluates every rule of docs/model.md §6 per claim.

The rules themselves are defined once in check/rules/ (one module per rule id, docs/checking.md
"One definition per rule"); this module evaluates them on Python values (`rules.ops.PY`), keeps
the state they read, locates and words their findings, and decides only what is about the input:
stream integrity (R-stream) and unknown vocabulary (R-vocabulary). It replays the pool (physical block -> claim, logical position), each claim's materialization
predicate over surviving positions (§3), its lifecycle and responsibility (§4) and offload
sub-lifecycle, and each active request, and decides identity, acceptance, order, harm, silent
loss, hard exclusion, explicit action, attribution, no-admit, expiry, offload order, release
order, bounded deferral (check/progress.py), claims that give way (check/attribution.py), stream
integrity and vocabulary. Memory is proportional to live claims, blocks and requests, never to
trace length: findings are kept once per (rule, claim, status) and counted beyond that.

Timing rule for loss reports (decided here, documented in docs/checking.md): the reference
runtime writes the claim event for a lost block (`resident_claim_harmed`,
`resident_claim_block_lost_after_release`) just before that block's `allocation_victim_selected`
event, inside the same allocation. A loss report therefore must come *before* the victim event it
reports and within the same group of consecutive block events; likewise `resident_claim_materialized`
may be emitted within the group of `resident_block_materialized` events that makes the predicate
true. Pending reports are settled when the group ends (the first event of another kind) or at the
end of the trace. The rule only orders: a loss's findings are decided at its victim and no later
event withdraws them (R-release-order).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from kvclaims.check import attribution, kvrm, offload
from kvclaims.check.progress import DeferBound, Progress
from kvclaims.check.predicate import declared_predicate
from kvclaims.check.rules.concrete import (
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
from kvclaims.check.rules.concrete import offload as offload_rule
from kvclaims.check.rules.concrete import progress as progress_rule
from kvclaims.check.rules.concrete import yield_ as yield_rule
from kvclaims.check.rules.ops import AT_EVENT, AT_HARM, AT_MATERIALIZED, PY, Filed
from kvclaims.check.state import (
    IDENTITY_FIELDS,
    Claim,
    EventNames,
    Prefix,
    Request,
    RuleIds,
)
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

class Replay:
    """Feed events in order with :meth:`feed`, then :meth:`finish` for the report."""

    def __init__(self, spec: Spec, file: str = "-", *, max_claims: int = DEFAULT_MAX_CLAIMS,
                 observers: Iterable[tuple[frozenset[str], Callable[[Event], None]]] = (),
                 defer_bounds: tuple[DeferBound, ...] = ()):
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
        self.yielding_modes = yield_rule.modes(spec.modes, False)
        self.protecting_modes = yield_rule.modes(spec.modes, True)
        self.host_states = spec.offload_host_states
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
        self._victim_kind = self.E.victim
        self._cached_reason = self.values["cached_victim_reason"]
        self.usable: int | None = None
        self.cached_resident_victims = 0
        self.explicit_owed: Event | None = None
        self.denied_since_owed = False
        self.error: InputProblem | None = None
        self.progress = Progress(self, defer_bounds)
        self._bound_names = tuple(self.progress.fields.values())
        E = self.E
        self._excusing = release_order.excusing_kinds(E.releasing, E.offloaded, E.harmed)
        self._unaccepted_states = (spec.claim.initial, E.submitted_state)
        self._handlers: dict[str, Callable[[Event], None]] = {
            E.block_materialized: self._on_block_materialized,
            E.admitted: self._on_admitted,
            E.deferred: self._on_decision,
            E.refused: self._on_decision,
            E.live_bounded: self._on_live_bounded,
            E.reuse_admitted: self._on_reuse,
            E.reuse_denied: self._on_reuse,
            E.request_initialized: self._on_connector_claim,
        }
        # KV-RM descriptor and pager events (docs/model.md §10): rules K1-K5 in check/kvrm.py
        self.kvrm = kvrm.State()
        for k in (E.kvrm_mapped, E.kvrm_evicted, E.kvrm_committed, E.kvrm_group, E.kvrm_summary,
                  E.kvrm_reused):
            self._handlers[k] = lambda ev: kvrm.on_event(self, ev)

    # ---- findings --------------------------------------------------------------------------
    def _find(self, status: str, rule: str, ev: Event, message: str, claim: Claim | None = None,
              *, claim_id: str | None = None, request_id: str | None = None,
              index: int | None = None) -> None:
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
            event_index=self.index if index is None else index, event=ev.kind, claim_id=claim_id,
            request_id=request_id if request_id is not None else ev.fields.get("request_id"),
            state_before=claim.state if claim is not None else None, quote=quote))

    def _mark(self, claim: Claim, rule: str, status: str) -> None:
        claim.status[rule] = worse(claim.status.get(rule, NOT_EXERCISED), status)

    def _pass(self, claim: Claim, rule: str) -> None:
        if not claim.bundle or rule in claim.bundle:
            if claim.status.get(rule, NOT_EXERCISED) == NOT_EXERCISED:
                claim.status[rule] = PASS

    def _file(self, filed: tuple[Filed, ...], ev: Event | None, c: Claim,
              names: Callable[..., dict[str, Any]] = dict, *args: Any) -> None:
        """File the findings of a rule step (check/rules/steps.py) whose condition holds: the
        wording is the rule module's, filled with `names(*args)` (called only when a finding is
        filed; a function, not a closure, so that the caller's locals stay plain locals); located
        at `ev` or at the event the claim left pending."""
        filled: dict[str, Any] | None = None
        for f in filed:
            if not f.cond:
                continue
            if filled is None:
                filled = names(*args)
            msg = f.message.format(**filled)
            if f.at == AT_EVENT:
                at = ev
            elif f.at == AT_HARM:
                at = c.pending_harm
            elif f.at == AT_MATERIALIZED:
                at = c.pending_materialized
            else:  # AT_LOST_REPORT: one finding per report left unmatched
                for lost in c.pending_lost:
                    self._find(f.status, f.rule, lost, msg, c)
                continue
            assert at is not None
            self._find(f.status, f.rule, at, msg, c)

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
        progress = self.progress
        b0, b1 = self._bound_names
        if b0 in f or b1 in f:
            progress.declare(ev)
        if progress.open:
            progress.advance(ev)
        if kind in self._observed:
            for kinds, obs in self.observers:
                if kind in kinds:
                    obs(ev)
        if kind == self._victim_kind:
            # The hot path: most events of a trace are allocations from the free queue.
            b = f["physical_block_id"]
            self.allocated.add(b)
            rid = f.get("request_id")
            if rid is not None:
                req = self.requests.get(rid)
                if req is None:
                    req = self._request(rid)
                req.allocated += 1
                if progress.open and rid in progress.open:
                    progress.on_decided(rid)  # a block allocated to it: service began
            entry = self.block_map.pop(b, None)
            if entry is not None:
                self._lose(b, entry, ev, cached=f.get("victim_reason") == self._cached_reason)
            return
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
            elif old != v and identity.ambiguous(PY, False, False):  # the call only on a conflict
                self._find(VIOLATION, self.R.identity, ev, identity.AMBIGUOUS.format(
                    field=name, value=v, old=repr(old)), c)

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
        pred, unparsed = declared_predicate(f)
        if unparsed:
            self._find(UNKNOWN, self.R.identity, ev, identity.UNPARSED.format(
                value=f["materialization_predicate"]), c)
        req = f.get("resident_blocks_required")
        if req is not None:
            c.declared_required = req
        if pred is not None and c.positions.pred is None:
            c.positions.pred = pred

    def _on_connector_claim(self, ev: Event) -> None:
        f = ev.fields
        self._on_arrival(ev)
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
        if kind in E.releasing and self.progress.open:
            self.progress.on_release(c.id, before in self.responsible)
        allowed = order.allowed(PY, before, t.sources)
        # The hot path (most claim events are allowed, of claims not silently lost): every finding
        # of the step needs the claim silently lost or the transition disallowed, tested first.
        if c.silent or not allowed:
            self._file(steps.at_claim_event(
                PY, R, c.silent, kind in self._excusing, kind == E.expired, allowed,
                kind == E.harmed, before == E.harmed_state, c.pending_harm is not None,
                before in self._unaccepted_states, c.accepted), ev, c,
                _claim_event_names, self.spec.events[kind].verb, before, c.silent_line)
            if not allowed:
                return
        if kind == E.accepted:
            if acceptance.post_hoc(ev.fields.get("claim_registration"),
                                   self.values["post_hoc_registration"]):
                self._set_mode(c, ev)
                self._find(VIOLATION, R.acceptance, ev, acceptance.POST_HOC, c)
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
            if order.says_not_materialized(ev.fields.get("predicate_materialized")):
                self._find(VIOLATION, R.order, ev, order.SAYS_NOT_MATERIALIZED, c)
            if c.tracked:
                holds = c.positions.holds()
                if order.materialized_unheld(PY, holds is not None, holds):
                    # pending until the group of block events ends (rules/steps.py at_group_end)
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
            offload.on_offload(self, c, ev)
        if kind in self.E.releasing:
            self._on_release(c, ev)
        if t.target != "same":
            c.state = t.target

    def _on_release(self, c: Claim, ev: Event) -> None:
        E, R = self.E, self.R
        self._discharge_explicit(ev)
        self._pass(c, R.explicit)
        if ev.kind == E.expired:
            self._pass(c, R.expiry)
        owed = c.outcome_owed
        if owed is not None and offload_rule.settles(PY, owed[0], self._settling(ev.kind)):
            c.outcome_owed = None
            c.off_state = self.spec.offload.initial
            self._pass(c, R.offload)

    def _on_harm(self, c: Claim, ev: Event) -> None:
        f = ev.fields
        holds = c.positions.holds() if c.tracked else None
        st = steps.at_harm(PY, self.R, f.get("predicate_before") is False,
                           f.get("predicate_after") is True, c.pending_harm is not None,
                           c.tracked, holds is not None, holds)
        self._file(st.filed, ev, c, dict)
        if st.harmed:
            c.state = self.E.harmed_state
        if st.pending:
            c.pending_harm = ev
            self.pending.add(c)
        if st.settled:
            self._pass(c, self.R.harm)
            owed = c.outcome_owed
            if owed is not None and offload_rule.settles(PY, owed[0], self._settling(ev.kind)):
                c.outcome_owed = None
                self._pass(c, self.R.offload)

    # ---- offload sub-lifecycle (R-offload) -------------------------------------------------
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
            if identity.unsubmitted(PY, claim is not None):
                claim = self._claim(cid, ev)
                self._find(VIOLATION, self.R.identity, ev, identity.UNSUBMITTED.format(claim=cid),
                           claim)
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

    def _lose(self, b: int, entry: tuple[Prefix, int, Claim | None], ev: Event,
              *, cached: bool) -> None:
        R = self.R
        prefix, pos, c = entry
        prefix.positions.remove(pos)
        prefix.victims += 1
        prefix.lost[pos] += 1
        if cached:
            prefix.cached_victims += 1
            self.cached_resident_victims += 1
        if c is None:
            return
        c.victims += 1
        c.lost_positions[pos] += 1
        before = c.positions.holds()
        c.positions.remove(pos)
        after = c.positions.holds()
        # The hot path (most lost blocks belong to released claims): `resp` is the first conjunct
        # of rules/loss.py's `offloaded` and `live`, tested before calling them.
        resp = c.state in self.responsible
        if resp and loss.offloaded(PY, True, c.off_state in self.host_states):
            # The claimed KV is in the host tier (docs/model.md §4 offloadable): evicting the GPU copy
            # is not a loss of the claim.
            return
        live = resp and loss.live(PY, True, False, c.silent)
        if live:
            c.had_loss_while_responsible = True
            st = steps.at_loss(PY, R, live, c.pending_harm is not None, before is not None,
                               loss.breaks(PY, before, after), self.explicit_owed is not None,
                               self.denied_since_owed, c.protected)
            self._file(st.filed, ev, c, _loss_names, b, pos, c)
            if st.harm_settled:
                c.pending_harm = None
                c.state = self.E.harmed_state
            if st.harm_kept:
                self._pass(c, R.harm)
                self._pass(c, R.silent)
            if st.silent:
                c.silent = True
                c.silent_line = ev.line
        elif loss.post_release(PY, False, live, c.state in self.released, c.silent):
            if c.silent and c.protected and resp:
                # Another protected block lost: one more R-hard occurrence (finding_counts counts
                # every one; the finding itself is listed once per claim).
                self.counts[R.hard] = self.counts.get(R.hard, 0) + 1
            c.lost_after_release += 1
            if c.pending_lost:
                c.pending_lost.pop(0)

    def _close_group(self, ev: Event | None) -> None:
        """Settle what the run of block events left pending (see the timing rule above)."""
        for c in self.pending:
            holds = c.positions.holds() if c.pending_materialized is not None else None
            st = steps.at_group_end(PY, self.R, c.pending_harm is not None,
                                    c.pending_materialized is not None, holds is not None, holds,
                                    len(c.pending_lost))
            self._file(st.filed, ev, c, dict)
            if st.harmed:
                c.state = self.E.harmed_state
            c.pending_harm = None
            c.pending_materialized = None
            c.pending_lost.clear()
        self.pending = set()

    # ---- requests ----------------------------------------------------------------------------
    def _request(self, rid: str) -> Request:
        r = self.requests.get(rid)
        if r is None:
            r = self.requests[rid] = Request(rid)
        return r

    def _protected_claims(self) -> list[Claim]:
        return [c for c in self.claims.values() if self.protects(c)]

    def protects(self, c: Claim) -> bool:
        """Whether `c`'s blocks count as protected now (the `protected` band of snapshot())."""
        # `c.protected and c.state in resp` first: the rule's first conjuncts, so that claims
        # that cannot qualify cost no call (this runs over every claim at each decision).
        return (c.protected and c.state in self.responsible
                and hard.protected_claim(PY, True, True, c.silent, c.positions.surviving,
                                         c.tracked, c.asserted))

    def _on_arrival(self, ev: Event) -> None:
        """docs/model.md §6 R-progress: a request the trace shows arriving (request_initialized with the
        blocks it needs) while claims hold the blocks it needs, and not yet decided, waits: the
        runtime defers it without saying so until it is admitted, refused, deferred, given
        blocks, or a claim holding them is released, and the same bounds apply."""
        f = ev.fields
        rid = f.get("request_id")
        required = f.get("active_live_blocks_required")
        usable = f.get("usable_blocks", self.usable)
        if not isinstance(rid, str) or not required or usable is None:
            return
        r = self.requests.get(rid)
        if r is not None and (r.outcome != "unknown" or r.allocated):
            return
        resp = self.responsible
        holders = [c for c in self.claims.values()
                   if c.state in resp and progress_rule.holds_blocks(PY, True, self._blocks_of(c))]
        if progress_rule.waits(PY, sum(self._blocks_of(c) for c in holders), required, usable):
            self._request(rid)
            self.progress.on_waiting(ev, rid, [c.id for c in holders])

    def _protecting_claims(self) -> list[Claim]:
        """Claims whose mode may block an active request (docs/model.md §6 R-yield): under
        responsibility, not silently lost, holding blocks, and not offloaded to the host tier."""
        resp, host, prot = self.responsible, self.host_states, self.protecting_modes
        # The rule's first conjuncts first, as in _protected_claims.
        return [c for c in self.claims.values()
                if c.mode in prot and c.state in resp
                and yield_rule.protecting(PY, True, True, c.silent, c.off_state in host,
                                          c.positions.surviving, c.tracked, c.asserted)]

    @staticmethod
    def _blocks_of(c: Claim) -> int:
        if c.tracked:
            return c.positions.surviving
        return c.declared_required or 0

    def _on_admitted(self, ev: Event) -> None:
        f = ev.fields
        r = self._request(f["request_id"])
        self.progress.on_decided(r.id)
        attribution.settle_yield(self, ev, set())
        if r.outcome != "refused":
            r.outcome = "served"
        required = f.get("active_live_blocks_required")
        usable = f.get("usable_blocks", self.usable)
        if required and usable is not None:
            protected = self._protected_claims()
            total = sum(self._blocks_of(c) for c in protected)
            if explicit.owed(PY, bool(protected), total, required, usable):
                self.explicit_owed = ev
                self.denied_since_owed = False

    def _settling(self, kind: str) -> frozenset[str]:
        """The claim-scoped outcomes an event of this kind gives (rules/offload.py `settles`)."""
        return frozenset(name for name, k in self.spec.offload_outcome_events.items() if k == kind)

    def _discharge_explicit(self, ev: Event) -> None:
        self.explicit_owed = None
        self.denied_since_owed = False

    def _on_decision(self, ev: Event) -> None:
        attribution.on_decision(self, ev)
        rid = ev.fields["request_id"]
        if ev.kind == self.E.deferred:
            self.progress.on_deferred(ev, rid)
        else:
            self.progress.on_decided(rid)

    def _on_live_bounded(self, ev: Event) -> None:
        self._discharge_explicit(ev)

    def _on_reuse(self, ev: Event) -> None:
        f = ev.fields
        r = self._request(f["request_id"])
        if ev.kind == self.E.reuse_denied:
            r.reuse = False
            r.denied = True
            self.denied_since_owed = no_admit.denied_since(PY, self.denied_since_owed,
                                                           self.explicit_owed is not None)
            for c in self.claims.values():
                if c.state in self.responsible:
                    self._pass(c, self.R.no_admit)
        else:
            r.reuse = True

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
        if self.kvrm.seen:
            kvrm.finish(self)
        for rid in self.progress.open:
            # docs/model.md §6 R-progress: a deferral still open at the end leaves the outcome unknown.
            self.requests[rid].outcome = "unknown"
        self.progress.finish()
        for c in self.claims.values():
            if offload_rule.outcome_never_followed(PY, c.outcome_owed is not None):
                assert c.outcome_owed is not None
                self._find(VIOLATION, R.offload, c.outcome_owed[1],
                           offload_rule.NEVER_FOLLOWED.format(outcome=c.outcome_owed[0]), c)
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
            prefix_id=p.id, blocks=p.positions.surviving + p.lost.total(), victims=p.victims,
            cached_victims=p.cached_victims, lost_positions=tuple(sorted(p.lost.elements())),
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
            for rule in (R.identity, R.acceptance, R.order, R.no_admit, R.release_order):
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
            harmed_positions=tuple(sorted(c.lost_positions.elements())),
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
            # Blocks were allocated to it: service began (docs/model.md §7).
            outcome = "served"
        if reuse is None and outcome == "served":
            # docs/model.md §2: future-reuse admission is the default; write no-admit must be reported.
            reuse = True
        return RequestResult(
            request_id=r.id, outcome=outcome, blocking_claim_ids=r.blocking,
            capacity_shortfall_blocks=r.shortfall, free_blocks_before_allocate=r.free,
            feasibility=r.feasibility, future_reuse_admitted=reuse, allocated_blocks=r.allocated)


def _claim_event_names(verb: str, before: str, silent_line: int | None) -> dict[str, Any]:
    return {"verb": verb, "state": f"state {before}", "in_state": f" (state {before})",
            "at_line": f" at line {silent_line}"}


def _loss_names(b: int, pos: int, c: Claim) -> dict[str, Any]:
    return {"block": b, "pos": pos, "claim": c.id,
            "pred": c.positions.pred.spelling() if c.positions.pred else "the predicate"}


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
