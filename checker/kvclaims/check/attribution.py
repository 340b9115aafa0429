"""Refusals and deferrals: outcome bookkeeping and attribution (docs/model.md §6 R-attribution, §7).

Decides whether a claim-caused refusal or deferral names exactly the blocking claims (no smear) and
carries numbers consistent with the replayed pool: protected blocks, resident + active, free
blocks within the interval the trace determines, shortfall, feasibility. On the restore path it
settles the claim-scoped refusal a restoration failure promised. Functions of the replay
checker: they read and update its state (passed as `rp`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvclaims.check.rules.concrete import attribution as rule
from kvclaims.check.rules.concrete import yield_ as yield_rule
from kvclaims.check.rules.ops import PY
from kvclaims.check.state import Claim, Request
from kvclaims.check.verdict import VIOLATION
from kvclaims.trace.model import Event

if TYPE_CHECKING:
    from kvclaims.check.context import ReplayContext


def on_decision(rp: ReplayContext, ev: Event) -> None:
    E = rp.E
    f = ev.fields
    r = rp._request(f["request_id"])
    r.outcome = (
        "refused" if ev.kind == E.refused else ("deferred" if r.outcome != "refused" else r.outcome)
    )
    if not r.first_decision:
        r.first_decision = True
        r.blocking = tuple(f.get("blocking_claim_ids") or ())
        r.shortfall = f.get("capacity_shortfall_blocks")
        r.free = f.get("free_blocks_before_allocate")
        r.feasibility = f.get("feasibility")
    if r.reuse is None or f.get("future_reuse_admitted") is False:
        r.reuse = False
    _over_protection(rp, ev, r)
    _attribution(rp, ev, r)
    rp._discharge_explicit(ev)


def gives_way(rp: ReplayContext, c: Claim) -> bool:
    """The claim's mode does not protect (docs/model.md §6 R-yield): best_effort, soft_priority."""
    return yield_rule.gives_way(PY, c.mode, rp.yielding_modes)


def settle_yield(rp: ReplayContext, ev: Event, over: set[str]) -> None:
    """An active decision that named no yielding claim: those under responsibility passed R-yield
    here (a later finding at this event still makes them fail)."""
    for c in rp.claims.values():
        if c.state in rp.responsible and c.id not in over and gives_way(rp, c):
            rp._pass(c, rp.R.yield_)


def _over_protection(rp: ReplayContext, ev: Event, r: Request) -> set[str]:
    """docs/model.md §6 R-yield: a refusal or deferral never names, nor is caused only by, claims whose
    mode gives way. Returns the ids of the named claims found over-protected."""
    R = rp.R
    f = ev.fields
    verb = rp.spec.events[ev.kind].verb
    named: set[str] = set()
    for bid in f.get("blocking_claim_ids") or ():
        c = rp.claims.get(bid) if isinstance(bid, str) else None
        if yield_rule.named(PY, c is not None, c is not None and gives_way(rp, c)):
            assert c is not None
            named.add(bid)
            rp._find(VIOLATION, R.yield_, ev, yield_rule.NAMED.format(
                request=r.id, verb=verb, claim=bid, in_mode=f" in mode {c.mode}"), c,
                request_id=r.id)
    settle_yield(rp, ev, named)
    required = f.get("active_live_blocks_required")
    usable = f.get("usable_blocks", rp.usable)
    if not required or usable is None:
        return named
    resp = rp.responsible
    # The rule's conjuncts on plain attributes first: this runs over every claim per decision.
    soft = [c for c in rp.claims.values() if c.state in resp and c.tracked
            and yield_rule.soft_holder(PY, gives_way(rp, c), True, True, c.positions.surviving)]
    if not soft:
        return named
    held = sum(rp._blocks_of(c) for c in rp._protecting_claims())
    yielded = sum(c.positions.surviving for c in soft)
    cause = yield_rule.only_yielding_cause(PY, held, yielded, required, usable)
    if cause:
        for c in soft:
            if yield_rule.unnamed_cause(PY, cause, True, c.id in named):
                rp._find(VIOLATION, R.yield_, ev, yield_rule.UNNAMED_CAUSE.format(
                    request=r.id, verb=verb, claim=c.id,
                    numbers=f" (protected {held} + required {required} <= usable {usable})",
                    held=f" ({c.mode}, {c.positions.surviving} blocks)"), c, request_id=r.id)
    return named


def _attribution(rp: ReplayContext, ev: Event, r: Request) -> None:
    R, V = rp.R, rp.values
    f = ev.fields
    blocking = f.get("blocking_claim_ids")
    feas = f.get("feasibility")
    restore_path = feas == V["restore_infeasible"]
    if restore_path:
        refusals = _refusal_outcomes(rp)
        eligible = {
            c.id: c
            for c in rp.claims.values()
            if rule.restore_eligible(PY, True, c.outcome_owed[0] if c.outcome_owed else None,
                                     refusals)
        }
    else:
        eligible = {c.id: c for c in rp._protected_claims()}
    shortfall = f.get("capacity_shortfall_blocks")
    if not rule.claim_caused(blocking, feas == V["infeasible"], shortfall):
        return
    if not blocking:
        for c in eligible.values():  # rules/attribution.py `unnamed`: every eligible claim
            rp._find(
                VIOLATION,
                R.attribution,
                ev,
                rule.UNNAMED.format(claim=c.id),
                c,
                request_id=r.id,
            )
        return
    first = next(iter(eligible.values()), None)
    if rule.unsorted(blocking):
        rp._find(
            VIOLATION,
            R.attribution,
            ev,
            rule.UNSORTED.format(blocking=blocking),
            first,
            request_id=r.id,
        )
    for bid in blocking:
        if rule.smear(PY, bid in eligible):
            known = rp.claims.get(bid)
            why = (
                "is not a known claim"
                if known is None
                else f"is in state {known.state}"
                if known.state not in rp.responsible
                else "holds no protected blocks"
            )
            # Filed against the refused request, not the bystander claim, whose own bundle
            # may not include R-attribution (the smear is the runtime's report, not the claim's).
            rp._find(
                VIOLATION,
                R.attribution,
                ev,
                rule.SMEAR.format(claim=bid, why=why),
                None,
                claim_id=bid,
                request_id=r.id,
            )
    if not restore_path:
        # docs/model.md §6: blocking ids name *only* claims under responsibility that hold protected
        # blocks. A protected claim left out (e.g. one whose blocks the request would reuse)
        # is not a smear; the numbers must then be those of the claims named.
        named = {bid: eligible[bid] for bid in blocking if bid in eligible}
        _numbers(rp, ev, r, named, eligible)
    else:
        for bid in blocking:
            owed = eligible.get(bid)
            if owed is not None:
                owed.outcome_owed = None
                owed.off_state = rp.spec.offload.initial
                rp._pass(owed, R.offload)
    for bid in blocking:
        claim = eligible.get(bid)
        if claim is not None:
            rp._pass(claim, R.attribution)
            rp._pass(claim, R.explicit)


def _refusal_outcomes(rp: ReplayContext) -> frozenset[str]:
    refused = rp.E.refused
    return frozenset(k for k, v in rp.spec.offload_outcome_events.items() if v == refused)


def _numbers(
    rp: ReplayContext, ev: Event, r: Request, named: dict[str, Claim], eligible: dict[str, Claim]
) -> None:
    """Numbers of the named claims; the free count is bounded by every protected block."""
    R, V = rp.R, rp.values
    f = ev.fields
    first = next(iter(named.values()), None)
    protected = sum(rp._blocks_of(c) for c in named.values())
    protected_all = sum(rp._blocks_of(c) for c in eligible.values())

    def bad(msg: str) -> None:
        rp._find(VIOLATION, R.attribution, ev, msg, first, request_id=r.id)

    p = f.get("protected_resident_blocks")
    if p is not None and rule.protected_mismatch(PY, p, protected):
        bad(rule.PROTECTED_MISMATCH.format(declared=p, protected=protected))
    req = f.get("active_live_blocks_required")
    total = f.get("resident_plus_active_blocks")
    if total is not None and req is not None and rule.total_mismatch(PY, total, protected, req):
        bad(rule.TOTAL_MISMATCH.format(total=total, protected_n=f" {protected}", required=req))
    usable = f.get("usable_blocks", rp.usable)
    free = f.get("free_blocks_before_allocate")
    if free is not None and usable is not None:
        upper = usable - protected_all
        lower = usable - len(rp.allocated)
        over = rule.free_over(PY, free, usable, protected_all)
        if over:
            bad(rule.FREE_OVER.format(
                free=free, upper=f"{upper} (usable {usable} - protected {protected_all})"))
        elif rule.free_under(PY, free, usable, len(rp.allocated), over):
            bad(rule.FREE_UNDER.format(
                free=free,
                lower=f"{lower} (usable {usable} - {len(rp.allocated)} blocks ever allocated)"))
    shortfall = f.get("capacity_shortfall_blocks")
    if shortfall is not None and req is not None:
        if rule.shortfall_not_free(shortfall, req, free):
            bad(rule.SHORTFALL_NOT_FREE.format(shortfall=shortfall, required=req, free=free,
                                               result=f" = {max(0, req - free)}"))
        elif usable is not None and rule.shortfall_low(PY, shortfall, protected, req, usable):
            bad(rule.SHORTFALL_LOW.format(shortfall=shortfall, protected_n=f" {protected}",
                                          required=req, usable_n=f" {usable}"))
    feas = f.get("feasibility")
    if feas is not None and shortfall is not None:
        if rule.feasibility_mismatch(feas, shortfall, V["infeasible"], V["feasible_prefix"]):
            bad(rule.FEASIBILITY_MISMATCH.format(feasibility=feas, shortfall=shortfall))
    claims_listed = f.get("protected_resident_claims")
    if claims_listed is not None:
        ids = sorted(str(x.get("claim_id")) for x in claims_listed if isinstance(x, dict))
        blocking = list(f.get("blocking_claim_ids") or ())
        if rule.listed_mismatch(PY, ids, blocking, named.__contains__):
            bad(rule.LISTED_MISMATCH.format(listed=ids, named=sorted(named)))
