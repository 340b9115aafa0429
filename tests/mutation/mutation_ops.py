"""Mutation operators, each written from the rule it breaks (docs/model.md §6, §10; issue 15 item 3).

`OPERATORS` maps every rule id of spec/rules.toml (looked up through RuleIds, never typed here) to
the trace edits that rule forbids. An operator reads a conformant seed through
:class:`mutation_view.View` and yields mutants only where its rule applies: the targeted claim's
mode bundle contains the rule (per-claim rules), or the trace has what the rule speaks about
(per-request rules R-progress and R-yield's unnamed form, stream rules, the KV-RM rules K1-K5).
Each mutant names the rule it targets, the operator, the seed, the mode it was made under and
where the edit is. Edits keep the stream whole (mutation_view.tidy) unless breaking the stream
is the point (R-stream).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kvclaims.check.state import IDENTITY_FIELDS
from kvclaims.trace.model import Event, PartialTrace, Skew
from mutation_view import (
    BATCH_FIELDS,
    BLOCK_FIELD,
    BLOCK_ID,
    BLOCKING,
    BOUND_NS,
    BOUND_STEPS,
    CLAIM_ID,
    COUNTED,
    DECODE_STEP,
    DST,
    FEASIBILITY,
    FREE,
    FROM_OFFLOAD_TIER,
    MODE,
    OFFLOAD_GEN,
    OUTCOME_CLAIM,
    OUTCOME_TYPE,
    PRED_MATERIALIZED,
    PROTECTED_BLOCKS,
    REGISTRATION,
    RELEASE_KINDS,
    REQUEST_ID,
    REQUIRED,
    RESTORE_SOURCE,
    SCHED_STEP,
    SEQ_FIELD,
    SHORTFALL,
    SOURCE,
    SPEC,
    SUMMARY_POSITIONS,
    TIER_FROM,
    TIME_FIELDS,
    TOTAL,
    USABLE,
    VICTIM_REASON,
    BLOCK_TABLE,
    BATCH_REQUESTS,
    ClaimView,
    E,
    R,
    V,
    View,
    breaking_position,
    drop,
    event,
    insert,
    move,
    replace_at,
    spare_position,
    tidy,
    with_fields,
)


# The mode label of a mutant whose targeted claim was never accepted (so has no mode).
NO_MODE = "no claim"


@dataclass(frozen=True, slots=True)
class Mutant:
    rule: str
    operator: str
    seed: str
    mode: str
    where: str
    events: tuple[Event, ...]
    skews: tuple[Skew, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.rule}|{self.operator}|{self.seed}|{self.where}"


@dataclass(frozen=True, slots=True)
class Cut:
    """What an operator yields: the mode it was made under, where, and the edited events."""

    mode: str
    where: str
    events: tuple[Event, ...]


Operator = Callable[[View], Iterator[Cut]]


@dataclass(frozen=True, slots=True)
class Op:
    rule: str
    name: str
    what: str
    fn: Operator


# ---- small builders ---------------------------------------------------------------------------
def _loss_of(v: View, c: ClaimView, block: int, rid: str) -> Event:
    """An allocation that takes block `block` of claim c from the cache (a resident loss)."""
    return event(E.victim, **{BLOCK_ID: block, REQUEST_ID: rid,
                              VICTIM_REASON: V["cached_victim_reason"], USABLE: v.usable})


def _block_at(c: ClaimView, pos: int) -> int:
    return next(b for b, p in c.blocks.items() if p == pos)


def _end_breakable(v: View, c: ClaimView) -> int | None:
    """A block whose loss at the end of the trace breaks c's predicate while c is responsible
    and its KV is on the GPU; None when there is none."""
    if not c.responsible or c.pred is None or c.off_state in SPEC.offload_host_states:
        return None
    pos = breaking_position(c.pred, c.present)
    return None if pos is None else _block_at(c, pos)


def _claim_event(kind: str, c: ClaimView, **extra: Any) -> Event:
    return event(kind, **{CLAIM_ID: c.id, **extra})


def _first_breaking(c: ClaimView, responsible_only: bool = False) -> Any:
    for loss in c.losses:
        if loss.breaks and not loss.host and (not responsible_only or loss.state in
                                              SPEC.responsible):
            return loss
    return None


def _release_before_loss(v: View, c: ClaimView) -> tuple[int, Any] | None:
    """(release index, the first predicate-breaking loss it excused), if c has one."""
    for r in c.releases:
        if v.events[r].kind == E.offloaded:
            continue
        loss = next((x for x in c.losses if x.index > r and x.breaks and not x.host), None)
        if loss is not None:
            return r, loss
    return None


def _fresh_deferral(v: View, rid: str, **extra: Any) -> Event:
    return event(E.deferred, **{REQUEST_ID: rid, USABLE: v.usable, **extra})


# ---- R-identity ---------------------------------------------------------------------------------
def identity_value_changed(v: View) -> Iterator[Cut]:
    """An identity field of a later event of the claim (predicate, prefix, object, cache
    identity, token map) takes another value."""
    for c in v.with_rule(R.identity):
        for i in c.events + [k for k, e in enumerate(v.events)
                             if e.kind == E.block_materialized and e.get(CLAIM_ID) == c.id]:
            e = v.events[i]
            if i <= c.accept:
                continue
            name = next((n for n in IDENTITY_FIELDS if isinstance(e.get(n), str)), None)
            if name is None:
                continue
            ev = with_fields(e, **{name: f"{e.get(name)}:other"})
            yield Cut(c.mode, f"{name} of event {i} changed",
                      tidy(replace_at(v.events, i, ev), v))
            break


def claim_id_swapped(v: View) -> Iterator[Cut]:
    """A block or lifecycle event of the claim names a claim that was never submitted."""
    for c in v.with_rule(R.identity):
        blocks = [k for k, e in enumerate(v.events)
                  if e.kind == E.block_materialized and e.get(CLAIM_ID) == c.id]
        later = [i for i in c.events if i > c.accept]
        for label, idx in (("block", blocks[:1]), ("lifecycle event", later[:1])):
            for i in idx:
                ev = with_fields(v.events[i], **{CLAIM_ID: v.fresh("claim")})
                yield Cut(c.mode, f"{label} {i} names a never-submitted claim",
                          tidy(replace_at(v.events, i, ev), v))


# ---- R-acceptance -------------------------------------------------------------------------------
def _named_later(v: View, c: ClaimView) -> bool:
    return any(e.get(CLAIM_ID) == c.id for e in v.events[c.accept + 1:])


def acceptance_dropped(v: View) -> Iterator[Cut]:
    """The claim's acceptance is removed; its later events stay."""
    for c in v.with_rule(R.acceptance):
        if _named_later(v, c):
            yield Cut(c.mode, f"acceptance {c.accept} removed", tidy(drop(v.events, c.accept), v))


def acceptance_post_hoc(v: View) -> Iterator[Cut]:
    """The acceptance says claim_registration post_hoc."""
    for c in v.with_rule(R.acceptance):
        ev = with_fields(v.events[c.accept], **{REGISTRATION: V["post_hoc_registration"]})
        yield Cut(c.mode, f"acceptance {c.accept} post hoc",
                  tidy(replace_at(v.events, c.accept, ev), v))


def acceptance_after_transition(v: View) -> Iterator[Cut]:
    """The acceptance is moved after the claim's first lifecycle transition."""
    for c in v.with_rule(R.acceptance):
        later = [i for i in c.events if i > c.accept]
        if later:
            yield Cut(c.mode, f"acceptance {c.accept} moved after event {later[0]}",
                      tidy(move(v.events, c.accept, later[0] + 1), v))


# ---- R-order ------------------------------------------------------------------------------------
def lifecycle_after_release(v: View) -> Iterator[Cut]:
    """A materialization of the claim is written after its release."""
    for c in v.with_rule(R.order):
        if c.state in SPEC.released and c.state not in SPEC.claim.transitions[
                E.materialized].sources:
            ev = _claim_event(E.materialized, c)
            yield Cut(c.mode, f"materialized after release ({c.state})",
                      tidy([*v.events, ev], v))


def accepted_twice(v: View) -> Iterator[Cut]:
    """The acceptance is repeated after the claim materialized."""
    for c in v.with_rule(R.order):
        if c.materialized_at is not None:
            at = v.group_end(c.materialized_at)
            yield Cut(c.mode, f"acceptance repeated at {at}",
                      tidy(insert(v.events, at, v.events[c.accept]), v))


def materialized_false(v: View) -> Iterator[Cut]:
    """The materialization event says the predicate does not hold."""
    for c in v.with_rule(R.order):
        if c.materialized_at is not None:
            ev = with_fields(v.events[c.materialized_at], **{PRED_MATERIALIZED: False})
            yield Cut(c.mode, f"materialized {c.materialized_at} says predicate false",
                      tidy(replace_at(v.events, c.materialized_at, ev), v))


def release_twice(v: View) -> Iterator[Cut]:
    """The claim's release is written twice."""
    for c in v.with_rule(R.order):
        for r in c.releases[:1]:
            yield Cut(c.mode, f"release {r} repeated",
                      tidy(insert(v.events, r + 1, v.events[r]), v))


# ---- R-harm -------------------------------------------------------------------------------------
def harm_twice(v: View) -> Iterator[Cut]:
    """The harm is reported twice."""
    for c in v.with_rule(R.harm):
        for h in c.harms[:1]:
            yield Cut(c.mode, f"harm {h} repeated", tidy(insert(v.events, h + 1, v.events[h]), v))


def harm_without_break(v: View) -> Iterator[Cut]:
    """A harm is appended while the predicate still holds and nothing is lost."""
    for c in v.with_rule(R.harm):
        if c.responsible and c.pred is not None and c.present:
            yield Cut(c.mode, "harm with no loss appended",
                      tidy([*v.events, _claim_event(E.harmed, c)], v))


def harm_moved_after_loss(v: View) -> Iterator[Cut]:
    """The harm is moved after the loss it announces."""
    for c in v.with_rule(R.harm):
        loss = _first_breaking(c)
        if c.harms and loss is not None and c.harms[0] < loss.index:
            yield Cut(c.mode, f"harm {c.harms[0]} moved after loss {loss.index}",
                      tidy(move(v.events, c.harms[0], loss.index + 1), v))


def harm_moved_early(v: View) -> Iterator[Cut]:
    """The harm is moved away from its loss, to right after the claim materialized."""
    for c in v.with_rule(R.harm):
        loss = _first_breaking(c)
        if c.harms and loss is not None and c.materialized_at is not None \
                and c.materialized_at < c.harms[0]:
            at = v.group_end(c.materialized_at)
            if at < c.harms[0]:
                yield Cut(c.mode, f"harm {c.harms[0]} moved to {at}, away from its loss",
                          tidy(move(v.events, c.harms[0], at), v))


def harm_without_claim(v: View) -> Iterator[Cut]:
    """A harm for a claim that was never accepted is appended."""
    # docs/model.md §6 R-harm, L1: no accepted claim, no harm. Any trace; the claim is never submitted.
    ev = event(E.harmed, **{CLAIM_ID: v.fresh("claim")})
    yield Cut(NO_MODE, "harm for a never-accepted claim appended", tidy([*v.events, ev], v))


# ---- R-no-silent-loss ---------------------------------------------------------------------------
def _drop_with_reports(v: View, c: ClaimView, i: int) -> tuple[Event, ...]:
    later_reports = [k for k in c.lost_reports if k > i]
    return tidy(drop(v.events, i, *later_reports), v)


def harm_dropped(v: View) -> Iterator[Cut]:
    """The harm before a predicate-breaking loss is removed."""
    for c in v.with_rule(R.silent):
        loss = _first_breaking(c)
        harm = next((h for h in c.harms if loss is not None and h < loss.index), None)
        if harm is not None:
            yield Cut(c.mode, f"harm {harm} removed", _drop_with_reports(v, c, harm))


def release_dropped(v: View) -> Iterator[Cut]:
    """The release (demotion, expiry, ...) before a predicate-breaking loss is removed."""
    for c in v.with_rule(R.silent):
        found = _release_before_loss(v, c)
        if found is not None:
            r, _ = found
            yield Cut(c.mode, f"release {r} removed", _drop_with_reports(v, c, r))


def silent_loss_appended(v: View) -> Iterator[Cut]:
    """A responsible claim loses a block that breaks its predicate, with no report."""
    for c in v.with_rule(R.silent):
        b = _end_breakable(v, c)
        if b is not None:
            yield Cut(c.mode, f"block {b} lost at the end, unreported",
                      tidy([*v.events, _loss_of(v, c, b, v.fresh("r"))], v))


def harm_unordered_with_loss(v: View) -> Iterator[Cut]:
    """Partial order: the harm and the loss it announces in one unordered batch, so some
    admissible order loses the block before the harm (decided by the auto engine)."""
    for c in v.with_rule(R.silent):
        loss = _first_breaking(c)
        harm = next((h for h in c.harms if loss is not None and h == loss.index - 1), None)
        if harm is None or any(BATCH_FIELDS[0] in e.fields for e in v.events):
            continue
        key = 1
        evs = list(v.events)
        for k in (harm, loss.index):
            evs[k] = with_fields(evs[k], **{BLOCK_FIELD: key})
        yield Cut(c.mode, f"harm {harm} and loss {loss.index} in one batch", tidy(evs, v))


# ---- R-hard -------------------------------------------------------------------------------------
def protected_victim_reported(v: View) -> Iterator[Cut]:
    """A protected block of a hard claim is a victim (the harm is reported)."""
    for c in v.with_rule(R.hard):
        b = _end_breakable(v, c)
        if b is not None:
            yield Cut(c.mode, f"protected block {b} lost at the end, harm reported",
                      tidy([*v.events, _claim_event(E.harmed, c),
                            _loss_of(v, c, b, v.fresh("r"))], v))


def protected_spare_victim(v: View) -> Iterator[Cut]:
    """A protected block the predicate does not need is a victim."""
    for c in v.with_rule(R.hard):
        if not c.responsible or c.pred is None or c.off_state in SPEC.offload_host_states:
            continue
        pos = spare_position(c.pred, c.present)
        if pos is not None:
            b = _block_at(c, pos)
            yield Cut(c.mode, f"protected block {b} (not needed by the predicate) lost",
                      tidy([*v.events, _loss_of(v, c, b, v.fresh("r"))], v))


# ---- R-explicit / R-no-admit --------------------------------------------------------------------
def _admit_instead(v: View, rule: str, denied: bool) -> Iterator[Cut]:
    """A claim-caused refusal/deferral of r is replaced by admitting r and losing a block of the
    named claim (protected + active live > usable, no explicit action); with `denied`, write
    no-admit is the only action reported."""
    done: set[str] = set()
    for d in v.decisions:
        if d.request_id in done or not d.blocking:
            continue
        c = v.claims.get(d.blocking[0])
        e = v.events[d.index]
        if c is None or rule not in c.bundle or e.get(REQUIRED) is None or c.pred is None:
            continue
        # the claim's state and blocks at the decision: replay the view up to it
        head = View(v.events[:d.index])
        hc = head.claims.get(c.id)
        if hc is None:
            continue
        b = _end_breakable(head, hc)
        if b is None:
            continue
        done.add(d.request_id)
        same = [x.index for x in v.decisions if x.request_id == d.request_id]
        later = [k for k, x in enumerate(v.events) if k > d.index and
                 x.get(REQUEST_ID) == d.request_id and k not in same]
        if later:
            continue
        adm = event(E.admitted, **{REQUEST_ID: d.request_id, REQUIRED: e.get(REQUIRED),
                                   USABLE: e.get(USABLE, v.usable)})
        new = [adm]
        if denied:
            new.append(event(E.reuse_denied, **{REQUEST_ID: d.request_id}))
        new.append(_loss_of(v, c, b, d.request_id))
        evs = drop(v.events, *same)
        evs = [*evs[:d.index], *new, *evs[d.index:]]
        yield Cut(c.mode, f"decision {d.index} replaced by admission"
                  + (" + no-admit" if denied else "") + " and a loss", tidy(evs, v))


def explicit_action_dropped(v: View) -> Iterator[Cut]:
    """A claim-caused refusal/deferral becomes an admission followed by a loss."""
    yield from _admit_instead(v, R.explicit, denied=False)


def no_admit_as_action(v: View) -> Iterator[Cut]:
    """As explicit_action_dropped, with future_reuse_denied as the only action."""
    yield from _admit_instead(v, R.no_admit, denied=True)


def no_admit_replaces_release(v: View) -> Iterator[Cut]:
    """The release before a loss is replaced by future_reuse_denied."""
    for c in v.with_rule(R.no_admit):
        found = _release_before_loss(v, c)
        if found is None:
            continue
        r, loss = found
        rid = v.events[loss.index].get(REQUEST_ID) or v.fresh("r")
        evs = _drop_with_reports(v, c, r)
        # re-derive positions after the drop: put the denial where the release was
        evs = (*evs[:r], event(E.reuse_denied, **{REQUEST_ID: rid}), *evs[r:])
        yield Cut(c.mode, f"release {r} replaced by future_reuse_denied", tidy(evs, v))


# ---- R-attribution ------------------------------------------------------------------------------
def _attributed(v: View, restore: bool = False) -> Iterator[tuple[Any, ClaimView]]:
    """First claim-caused decision of each request naming only claims whose bundle has
    R-attribution; restore-path refusals (a restoration failure's outcome) only with
    `restore`, since their numbers are not the pool's (docs/model.md §6 R-attribution)."""
    seen: set[str] = set()
    for d in v.decisions:
        if not d.blocking or d.request_id in seen:
            continue
        cs = [v.claims.get(b) for b in d.blocking]
        if all(c is not None and R.attribution in c.bundle for c in cs):
            e = v.events[d.index]
            if e.get(FEASIBILITY) == V["restore_infeasible"] and not restore:
                continue
            seen.add(d.request_id)
            yield d, cs[0]


def attribution_number_off(v: View) -> Iterator[Cut]:
    """An attribution number (protected, total, required, shortfall, free) is off by one."""
    for d, c in _attributed(v):
        e = v.events[d.index]
        f = e.fields
        req, free, short = f.get(REQUIRED), f.get(FREE), f.get(SHORTFALL)
        exact: list[str] = []
        if f.get(PROTECTED_BLOCKS) is not None:
            exact.append(PROTECTED_BLOCKS)
        if f.get(TOTAL) is not None and req is not None:
            exact += [TOTAL, REQUIRED]
        if short is not None and req is not None and free is not None:
            exact.append(SHORTFALL)
            if short > 0:
                exact.append(FREE)
        for name in exact:
            for delta in (1, -1):
                value = f[name] + delta
                if value < 0:
                    continue
                ev = with_fields(e, **{name: value})
                yield Cut(c.mode, f"{name} of decision {d.index} {delta:+d}",
                          tidy(replace_at(v.events, d.index, ev), v))


def bystander_named(v: View) -> Iterator[Cut]:
    """A refusal/deferral also names a claim that holds no protected blocks."""
    for d, c in _attributed(v, restore=True):
        e = v.events[d.index]
        ids = sorted({*d.blocking, v.fresh("claim")})
        yield Cut(c.mode, f"decision {d.index} names a bystander",
                  tidy(replace_at(v.events, d.index, with_fields(e, **{BLOCKING: ids})), v))


def blocking_dropped(v: View) -> Iterator[Cut]:
    """A claim-caused refusal/deferral names no blocking claim."""
    for d, c in _attributed(v):
        e = v.events[d.index]
        if e.get(FEASIBILITY) == V["infeasible"] or (e.get(SHORTFALL) or 0) > 0:
            yield Cut(c.mode, f"decision {d.index} names no blocking claim",
                      tidy(replace_at(v.events, d.index, with_fields(e, **{BLOCKING: []})), v))


def blocking_unsorted(v: View) -> Iterator[Cut]:
    """blocking_claim_ids are not sorted."""
    for d, c in _attributed(v):
        if len(d.blocking) >= 2:
            e = with_fields(v.events[d.index], **{BLOCKING: list(reversed(d.blocking))})
            yield Cut(c.mode, f"decision {d.index} blocking ids unsorted",
                      tidy(replace_at(v.events, d.index, e), v))


def feasibility_flipped(v: View) -> Iterator[Cut]:
    """feasibility contradicts the shortfall."""
    for d, c in _attributed(v):
        e = v.events[d.index]
        if e.get(SHORTFALL) is not None and e.get(FEASIBILITY) is not None:
            flipped = (f"{V['feasible_prefix']}_preserve_resident_and_active"
                       if e.get(FEASIBILITY) == V["infeasible"] else V["infeasible"])
            yield Cut(c.mode, f"feasibility of decision {d.index} flipped",
                      tidy(replace_at(v.events, d.index,
                                      with_fields(e, **{FEASIBILITY: flipped})), v))


# ---- R-expiry -----------------------------------------------------------------------------------
def _expiries(v: View) -> Iterator[tuple[ClaimView, int, Any]]:
    for c in v.with_rule(R.expiry):
        found = _release_before_loss(v, c)
        if found is not None and v.events[found[0]].kind == E.expired:
            yield c, found[0], found[1]


def expiry_after_loss(v: View) -> Iterator[Cut]:
    """The expiry is moved after the loss it excused."""
    for c, x, loss in _expiries(v):
        reports = [k for k in c.lost_reports if x < k < loss.index]
        evs = move(v.events, x, loss.index + 1)
        # lost-after-release reports that now precede the expiry would be reports of nothing
        shift = {k - 1 for k in reports}
        evs = [e for k, e in enumerate(evs) if k not in shift]
        yield Cut(c.mode, f"expiry {x} moved after loss {loss.index}", tidy(evs, v))


def expiry_dropped(v: View) -> Iterator[Cut]:
    """The expiry before a loss is removed."""
    for c, x, _ in _expiries(v):
        yield Cut(c.mode, f"expiry {x} removed", _drop_with_reports(v, c, x))


def expiry_after_silent_loss(v: View) -> Iterator[Cut]:
    """An expiring claim loses a predicate-breaking block, and its expiry is written after."""
    for c in v.with_rule(R.expiry):
        b = _end_breakable(v, c)
        if b is not None and c.state in SPEC.claim.transitions[E.expired].sources:
            yield Cut(c.mode, f"block {b} lost, then expiry",
                      tidy([*v.events, _loss_of(v, c, b, v.fresh("r")),
                            _claim_event(E.expired, c)], v))


# ---- R-offload ----------------------------------------------------------------------------------
def _off(v: View, kind: str) -> Iterator[tuple[ClaimView, int]]:
    for c in v.with_rule(R.offload):
        for i in c.events:
            if v.events[i].kind == kind:
                yield c, i
                break


def restore_from_recompute(v: View) -> Iterator[Cut]:
    """A restoration says it came from recomputation."""
    for c, i in _off(v, E.restored):
        src = "fallback_recompute"
        ev = with_fields(v.events[i], **{RESTORE_SOURCE: src, TIER_FROM: src,
                                         FROM_OFFLOAD_TIER: False})
        yield Cut(c.mode, f"restored {i} from recompute", tidy(replace_at(v.events, i, ev), v))


def reuse_before_restore(v: View) -> Iterator[Cut]:
    """reuse_after_restore is moved before restored."""
    for c, i in _off(v, E.reuse_after_restore):
        r = max((k for k in c.events if k < i and v.events[k].kind == E.restored), default=None)
        if r is not None:
            yield Cut(c.mode, f"reuse {i} moved before restored {r}",
                      tidy(move(v.events, i, r), v))


def restore_required_dropped(v: View) -> Iterator[Cut]:
    """restore_required is removed."""
    for c, i in _off(v, E.restore_required):
        yield Cut(c.mode, f"restore_required {i} removed", tidy(drop(v.events, i), v))


def outcome_other_claim(v: View) -> Iterator[Cut]:
    """A restoration failure names another claim's outcome."""
    for c, i in _off(v, E.restoration_failed):
        ev = with_fields(v.events[i], **{OUTCOME_CLAIM: v.fresh("claim")})
        yield Cut(c.mode, f"failure {i} names another claim's outcome",
                  tidy(replace_at(v.events, i, ev), v))


def restored_after_failure(v: View) -> Iterator[Cut]:
    """A restoration is written after the restoration failed."""
    for c, i in _off(v, E.restoration_failed):
        e = v.events[i]
        ev = _claim_event(E.restored, c, **{OFFLOAD_GEN: e.get(OFFLOAD_GEN),
                                            RESTORE_SOURCE: SPEC.offload_constants[
                                                "restore_source"]})
        yield Cut(c.mode, f"restored after failure {i}", tidy(insert(v.events, i + 1, ev), v))


def outcome_dropped(v: View) -> Iterator[Cut]:
    """The claim-scoped outcome a restoration failure promised is removed."""
    for c, i in _off(v, E.restoration_failed):
        kind = SPEC.offload_outcome_events.get(v.events[i].get(OUTCOME_TYPE))
        j = next((k for k in range(i + 1, len(v.events)) if v.events[k].kind == kind and (
            v.events[k].get(CLAIM_ID) == c.id or c.id in (v.events[k].get(BLOCKING) or ()))),
            None)
        if j is not None:
            yield Cut(c.mode, f"outcome {j} of failure {i} removed",
                      _drop_with_reports(v, c, j))


def offload_generation_changed(v: View) -> Iterator[Cut]:
    """restore_required names another offload generation."""
    for c, i in _off(v, E.restore_required):
        g = v.events[i].get(OFFLOAD_GEN)
        if isinstance(g, int):
            ev = with_fields(v.events[i], **{OFFLOAD_GEN: g + 1})
            yield Cut(c.mode, f"restore_required {i} names generation {g + 1}",
                      tidy(replace_at(v.events, i, ev), v))


# ---- R-stream -----------------------------------------------------------------------------------
def _sequenced(v: View) -> bool:
    return v.has_seq and len(v.events) >= 3


def sequence_gap(v: View) -> Iterator[Cut]:
    """event_sequence skips a number."""
    if not _sequenced(v):
        return
    base = list(tidy(v.events, v))
    for at in sorted({1, len(base) // 2, len(base) - 1}):
        evs = [with_fields(e, **{SEQ_FIELD: e.fields[SEQ_FIELD] + (1 if k >= at else 0)})
               for k, e in enumerate(base)]
        yield Cut(v.profile(), f"sequence skips a number before event {at}", tuple(evs))


def event_duplicated(v: View) -> Iterator[Cut]:
    """An event is delivered twice with its number."""
    if not _sequenced(v):
        return
    base = tidy(v.events, v)
    for at in sorted({1, len(base) // 2}):
        yield Cut(v.profile(), f"event {at} delivered twice",
                  tuple(insert(base, at + 1, base[at])))


def events_reordered(v: View) -> Iterator[Cut]:
    """Two events are swapped, keeping their numbers."""
    if not _sequenced(v):
        return
    base = tidy(v.events, v)
    together = {k for s, e, _ in _batches(v) for k in range(s, e - 1)}
    for want in sorted({0, len(base) // 2}):
        # two events of one batch may come in either order: swapping them breaks nothing
        at = next((k for k in range(want, len(base) - 1) if k not in together), None)
        if at is not None:
            yield Cut(v.profile(), f"events {at} and {at + 1} swapped (numbers kept)",
                      tuple(move(base, at + 1, at)))





def time_goes_back(v: View) -> Iterator[Cut]:
    """A timestamp goes back (one-source traces without sequence numbers)."""
    # Only for one-source traces: events of two skewed sources may legitimately disagree.
    if v.has_seq or any(SOURCE in e.fields for e in v.events):
        return
    t = next((t for t in TIME_FIELDS if sum(t in e.fields for e in v.events) >= 2), None)
    if t is None:
        return
    idx = [k for k, e in enumerate(v.events) if t in e.fields]
    k = idx[len(idx) // 2] if len(idx) > 2 else idx[-1]
    prev = max(v.events[j].fields[t] for j in idx if j < k) if any(j < k for j in idx) else None
    if prev is None:
        return
    ev = with_fields(v.events[k], **{t: prev - 1})
    yield Cut(v.profile(), f"{t} of event {k} goes back", tuple(replace_at(v.events, k, ev)))


def _batches(v: View) -> list[tuple[int, int, Any]]:
    """(start, end, key) of every batch of two or more events (the spec's batch keys)."""
    return [b for b in PartialTrace(v.events).batches(SPEC) if b[1] - b[0] >= 2]


def batch_duplicated(v: View) -> Iterator[Cut]:
    """A batch is delivered again after the next one, with its sequence numbers (a re-sent
    batch; the vLLM importer turns ZMQ batch numbers into event_sequence, docs/vllm.md)."""
    bs = _batches(v)
    if len(bs) >= 2 and v.has_seq:
        s, e, _ = bs[0]
        nxt = bs[1][1]
        yield Cut(v.profile(), f"batch {s}..{e - 1} delivered again after the next batch",
                  tuple(insert(v.events, nxt, *v.events[s:e])))


def batches_reordered(v: View) -> Iterator[Cut]:
    """Two batches are swapped."""
    bs = _batches(v)
    if len(bs) >= 2 and v.has_seq:
        (s1, e1, _), (s2, e2, _) = bs[0], bs[1]
        if e1 == s2:
            evs = [*v.events[:s1], *v.events[s2:e2], *v.events[s1:e1], *v.events[e2:]]
            yield Cut(v.profile(), f"batches at {s1} and {s2} swapped (numbers kept)",
                      tuple(evs))


# ---- R-vocabulary -------------------------------------------------------------------------------
def _unknown_name() -> str:
    name = "resident_claim_mutant_unnamed"
    assert name not in SPEC.events
    return name


def unknown_event(v: View) -> Iterator[Cut]:
    """An event outside the vocabulary is appended (naming a claim, or not)."""
    ev = Event(_unknown_name(), {REQUEST_ID: v.fresh("r")})
    yield Cut(v.profile(), "an event outside the vocabulary appended", tidy([*v.events, ev], v))
    for c in v.with_rule(R.vocabulary)[:2]:
        ev = Event(_unknown_name(), {CLAIM_ID: c.id})
        yield Cut(c.mode, f"an unknown event naming {c.id} appended", tidy([*v.events, ev], v))


def unknown_mode(v: View) -> Iterator[Cut]:
    """The acceptance declares a protection mode the spec does not know."""
    for c in v.with_rule(R.vocabulary):
        spelling = "mutant_mode"
        assert SPEC.canonical_mode(spelling) is None
        ev = with_fields(v.events[c.accept], **{MODE: spelling})
        yield Cut(c.mode, f"acceptance {c.accept} declares an unknown mode",
                  tidy(replace_at(v.events, c.accept, ev), v))


# ---- R-release-order ----------------------------------------------------------------------------
def release_moved_after_loss(v: View) -> Iterator[Cut]:
    """The release before a loss is moved after it: in the allocation, after it, at the end."""
    for c in v.with_rule(R.release_order):
        found = _release_before_loss(v, c)
        if found is None:
            continue
        r, loss = found
        for label, to in (("in the allocation", loss.index + 1),
                          ("after the allocation", v.group_end(loss.index)),
                          ("at the end", len(v.events))):
            evs = move(v.events, r, to)
            reports = {k - 1 for k in c.lost_reports if r < k < to}
            evs = [e for k, e in enumerate(evs) if k not in reports]
            yield Cut(c.mode, f"release {r} moved {label} of loss {loss.index}", tidy(evs, v))


def release_after_silent_loss(v: View) -> Iterator[Cut]:
    """A silent loss followed by each release kind the claim's state allows.

    A loss with no report, then a release of each kind the claim's state allows, right
    after it (no staging may turn the loss into a late release only) or after the next event."""
    for c in v.with_rule(R.release_order):
        b = _end_breakable(v, c)
        if b is None:
            continue
        loss = _loss_of(v, c, b, v.fresh("r"))
        for kind in RELEASE_KINDS:
            if kind == E.offloaded or c.state not in SPEC.claim.transitions[kind].sources:
                continue
            rel = _claim_event(kind, c)
            yield Cut(c.mode, f"silent loss of block {b} then {kind}",
                      tidy([*v.events, loss, rel], v))


def release_unordered_with_loss(v: View) -> Iterator[Cut]:
    """A release and the loss it excuses are put in one unordered batch.

    Partial order: a release and the first loss it excuses in one batch when adjacent."""
    if any(BATCH_FIELDS[0] in e.fields for e in v.events):
        return
    for c in v.with_rule(R.release_order):
        found = _release_before_loss(v, c)
        if found is None:
            continue
        r, loss = found
        span = range(r, loss.index + 1)
        if len(span) > 4 or any(v.events[k].kind not in E.block_group and k != r
                                for k in span):
            continue
        evs = list(v.events)
        for k in span:
            evs[k] = with_fields(evs[k], **{BLOCK_FIELD: 1})
        yield Cut(c.mode, f"release {r} unordered with loss {loss.index}", tidy(evs, v))


# ---- R-progress ---------------------------------------------------------------------------------
def deferral_endless(v: View) -> Iterator[Cut]:
    """A deferral with no decision at the end, with no bound or within a declared bound."""
    rid = v.fresh("r")
    yield Cut(v.profile(), "a deferral with no bound and no decision appended",
              tidy([*v.events, _fresh_deferral(v, rid)], v))
    yield Cut(v.profile(), "a declared bound of 5 steps, one deferral and no decision",
              tidy([with_fields(v.events[0], **{BOUND_STEPS: 5}), *v.events[1:],
                    _fresh_deferral(v, rid)], v))


def _admission(rid: str) -> Event:
    return event(E.admitted, **{REQUEST_ID: rid})


def deferral_past_bound(v: View) -> Iterator[Cut]:
    """A declared bound (header or manifest; steps, ns or scheduler steps) is exceeded, then
    the request is admitted."""
    rid = v.fresh("r")
    tail = [_fresh_deferral(v, rid), _fresh_deferral(v, rid), _admission(rid)]
    header = with_fields(v.events[0], **{BOUND_STEPS: 0})
    yield Cut(v.profile(), "header bound 0 steps; two deferrals, then admission",
              tidy([header, *v.events[1:], *tail], v))
    for c in list(v.claims.values())[:1]:
        manifest = with_fields(v.events[c.accept], **{BOUND_STEPS: 0})
        yield Cut(c.mode, "manifest bound 0 steps; two deferrals, then admission",
                  tidy([*replace_at(v.events, c.accept, manifest), *tail], v))
    # a nanosecond bound: the second deferral is one ns past it
    t0 = max((e.fields[t] for e in v.events for t in TIME_FIELDS[:1] if t in e.fields),
             default=0)
    bound = 1000
    timed = [with_fields(tail[0], **{TIME_FIELDS[0]: t0}),
             with_fields(tail[1], **{TIME_FIELDS[0]: t0 + bound + 1}),
             with_fields(tail[2], **{TIME_FIELDS[0]: t0 + bound + 2})]
    header = with_fields(v.events[0], **{BOUND_NS: bound})
    yield Cut(v.profile(), "header bound 1000 ns; deferral, deferral 1001 ns later, admission",
              tidy([header, *v.events[1:], *timed], v))
    # steps counted by scheduler_step when events carry it
    steps = [with_fields(tail[0], **{SCHED_STEP: 10}), with_fields(tail[1], **{SCHED_STEP: 13}),
             with_fields(tail[2], **{SCHED_STEP: 14})]
    header = with_fields(v.events[0], **{BOUND_STEPS: 2})
    yield Cut(v.profile(), "header bound 2 steps; deferrals at scheduler steps 10 and 13",
              tidy([header, *v.events[1:], *steps], v))


def existing_deferral_bounded(v: View) -> Iterator[Cut]:
    """A request the seed defers n >= 2 times gets a declared bound of n - 2 steps.

    A request the seed defers n >= 2 times gets a declared bound of n - 2 steps."""
    count: dict[str, int] = {}
    for d in v.decisions:
        if d.kind == E.deferred:
            count[d.request_id] = count.get(d.request_id, 0) + 1
    for rid, n in sorted(count.items()):
        if n >= 2 and not any(SCHED_STEP in e.fields for e in v.events):
            header = with_fields(v.events[0], **{BOUND_STEPS: n - 2})
            mode = next((v.claims[b].mode for d in v.decisions if d.request_id == rid
                         for b in d.blocking if b in v.claims), v.profile())
            yield Cut(mode, f"bound {n - 2} steps on request {rid} deferred {n} times",
                      tidy([header, *v.events[1:]], v))


def decision_dropped(v: View) -> Iterator[Cut]:
    """A deferred request's admission or refusal is removed.

    A deferred request's admission or refusal removed: the deferral stays open."""
    for d in v.decisions:
        if d.kind != E.deferred:
            continue
        rid = d.request_id
        ends = [k for k, e in enumerate(v.events) if k > d.index and e.get(REQUEST_ID) == rid]
        unblocked = any(k > d.index and v.events[k].kind in E.releasing
                        for b in d.blocking if b in v.claims for k in v.claims[b].events)
        if not ends or unblocked:
            continue
        if any(v.events[k].kind not in (E.admitted, E.refused, E.deferred) for k in ends):
            continue
        mode = next((v.claims[b].mode for b in d.blocking if b in v.claims), v.profile())
        kept = [k for k in ends if v.events[k].kind == E.deferred]
        yield Cut(mode, f"decisions of deferred request {rid} removed",
                  tidy(drop(v.events, *(k for k in ends if k not in kept)), v))
        break


def arrival_left_waiting(v: View) -> Iterator[Cut]:
    """A request arrives needing more blocks than the claims under responsibility leave, and no
    event ever decides it (an unreported deferral, open at the end)."""
    if v.usable is None:
        return
    theirs = sum(len(c.present) for c in v.claims.values() if c.responsible)
    need = v.usable - theirs + 1
    if theirs <= 0 or need <= 0:
        return
    modes = {c.mode for c in v.claims.values() if c.responsible and c.present}
    arrival = event(E.request_initialized, **{REQUEST_ID: v.fresh("r"), REQUIRED: need,
                                             USABLE: v.usable})
    yield Cut(modes.pop() if len(modes) == 1 else "mixed",
              f"a request of {need} blocks arrives while claims hold {theirs}; no decision",
              tidy([*v.events, arrival], v))


# ---- R-yield ------------------------------------------------------------------------------------
def yielding_named(v: View) -> Iterator[Cut]:
    """A refusal or deferral names a best_effort / soft_priority claim as blocking."""
    for c in v.with_rule(R.yield_):
        rid = v.fresh("r")
        for kind in (E.refused, E.deferred):
            ev = event(kind, **{REQUEST_ID: rid, BLOCKING: [c.id], USABLE: v.usable})
            tail = [ev] if kind == E.refused else [ev, event(E.refused, **{REQUEST_ID: rid})]
            yield Cut(c.mode, f"{kind} naming {c.id} as blocking appended",
                      tidy([*v.events, *tail], v))
        for d in v.decisions[:1]:
            if d.blocking and c.id not in d.blocking:
                e = with_fields(v.events[d.index], **{BLOCKING: sorted({*d.blocking, c.id})})
                yield Cut(c.mode, f"decision {d.index} also names {c.id}",
                          tidy(replace_at(v.events, d.index, e), v))


def stalled_behind_yielding(v: View) -> Iterator[Cut]:
    """A request is refused/deferred when only yielding claims stand in its way (unnamed).

    No event names them, but only best_effort / soft claims hold what the request needs:
    H + R <= usable < H + S + R (docs/model.md §6 R-yield), with R = usable - H."""
    if v.usable is None:
        return
    h, s = v.protecting_blocks(), v.yielding_blocks()
    need = v.usable - h
    if s <= 0 or need <= 0:
        return
    modes = {c.mode for c in v.claims.values() if R.yield_ in c.bundle and c.responsible
             and c.present}
    mode = modes.pop() if len(modes) == 1 else "mixed"
    rid = v.fresh("r")
    refused = event(E.refused, **{REQUEST_ID: rid, REQUIRED: need, USABLE: v.usable})
    yield Cut(mode, f"refusal of {need} blocks while soft claims hold {s}",
              tidy([*v.events, refused], v))
    deferred = event(E.deferred, **{REQUEST_ID: rid, REQUIRED: need, USABLE: v.usable})
    yield Cut(mode, f"deferral of {need} blocks while soft claims hold {s}, then refusal",
              tidy([*v.events, deferred, event(E.refused, **{REQUEST_ID: rid})], v))


# ---- KV-RM K1-K5 --------------------------------------------------------------------------------
def _step_events(v: View, step: Any, kind: str) -> list[int]:
    return [k for k, e in enumerate(v.events) if e.kind == kind and e.get(DECODE_STEP) == step]


def commit_duplicated(v: View) -> Iterator[Cut]:
    """A descriptor commit is repeated for its step."""
    for i in v.commits[:2]:
        yield Cut(v.profile(), f"commit {i} repeated", tidy(insert(v.events, i + 1,
                                                                   v.events[i]), v))


def commit_dropped(v: View) -> Iterator[Cut]:
    """A step's descriptor commit is removed."""
    for i in v.commits[1:2]:
        yield Cut(v.profile(), f"commit {i} removed", tidy(drop(v.events, i), v))


def _rows(v: View, i: int) -> list[tuple[int, str, list[Any]]]:
    e = v.events[i]
    return [(slot, rid, row) for slot, (rid, row) in
            enumerate(zip(e.get(BATCH_REQUESTS), e.get(BLOCK_TABLE))) if isinstance(row, list)]


def mapping_to_evicted(v: View) -> Iterator[Cut]:
    """A block of a descriptor row is evicted just before the commit."""
    for i in v.commits[:2]:
        for slot, rid, row in _rows(v, i)[:1]:
            b = next((x for x in row if isinstance(x, int) and x >= 0), None)
            if b is None:
                continue
            ev = event(E.kvrm_evicted, **{DECODE_STEP: v.events[i].get(DECODE_STEP),
                                          BLOCK_ID: b})
            yield Cut(v.profile(), f"block {b} evicted just before commit {i}",
                      tidy(insert(v.events, i, ev), v))


def row_entries_swapped(v: View) -> Iterator[Cut]:
    """Two entries of a descriptor row are swapped."""
    for i in v.commits[:2]:
        e = v.events[i]
        table = [list(r) if isinstance(r, list) else r for r in e.get(BLOCK_TABLE)]
        for slot, row in enumerate(table):
            if isinstance(row, list) and len(row) >= 2 and row[0] != row[1] and \
                    min(row[0], row[1]) >= 0:
                row[0], row[1] = row[1], row[0]
                ev = with_fields(e, **{BLOCK_TABLE: table})
                yield Cut(v.profile(), f"commit {i} slot {slot} positions 0 and 1 swapped",
                          tidy(replace_at(v.events, i, ev), v))
                break


def group_dropped(v: View) -> Iterator[Cut]:
    """A transfer group is removed."""
    for i in v.commits[:2]:
        gs = _step_events(v, v.events[i].get(DECODE_STEP), E.kvrm_group)
        if gs:
            yield Cut(v.profile(), f"transfer group {gs[0]} removed",
                      tidy(drop(v.events, gs[0]), v))


def group_duplicated(v: View) -> Iterator[Cut]:
    """A transfer group is repeated."""
    for i in v.commits[:2]:
        gs = _step_events(v, v.events[i].get(DECODE_STEP), E.kvrm_group)
        if gs:
            yield Cut(v.profile(), f"transfer group {gs[0]} repeated",
                      tidy(insert(v.events, gs[0] + 1, v.events[gs[0]]), v))


def group_shifted(v: View) -> Iterator[Cut]:
    """A transfer group's destinations are shifted by one."""
    for i in v.commits[:2]:
        gs = _step_events(v, v.events[i].get(DECODE_STEP), E.kvrm_group)
        if gs:
            e = v.events[gs[0]]
            ev = with_fields(e, **{DST: [x + 1 for x in e.get(DST)]})
            yield Cut(v.profile(), f"transfer group {gs[0]} destinations shifted by one",
                      tidy(replace_at(v.events, gs[0], ev), v))


def _reuses(v: View) -> Iterator[tuple[int, int, str, ClaimView]]:
    """(commit index, reuse index, request, claim) of each claimed-prefix reuse."""
    for k, e in enumerate(v.events):
        if e.kind == E.kvrm_reused and e.get(CLAIM_ID) in v.claims:
            c = v.claims[e.get(CLAIM_ID)]
            i = max((j for j in v.commits if j < k), default=None)
            if i is not None and c.pred is not None:
                yield i, k, e.get(REQUEST_ID), c


def _unmapped(v: View, i: int, rid: str, pos: int) -> Event | None:
    e = v.events[i]
    table = [list(r) if isinstance(r, list) else r for r in e.get(BLOCK_TABLE)]
    slot = list(e.get(BATCH_REQUESTS)).index(rid)
    if not isinstance(table[slot], list) or pos >= len(table[slot]):
        return None
    table[slot][pos] = -1
    return with_fields(e, **{BLOCK_TABLE: table})


def _unmapped_reuses(v: View) -> Iterator[tuple[int, int, str, ClaimView, Event]]:
    """Each (request, claim) reuse once, with its commit rewritten so that the claim's first
    required position is unmapped in the request's row."""
    done = set()
    for i, k, rid, c in _reuses(v):
        if (rid, c.id) in done:
            continue
        done.add((rid, c.id))
        ev = _unmapped(v, i, rid, c.pred.start)
        if ev is not None:
            yield i, k, rid, c, ev


def prefix_not_whole(v: View) -> Iterator[Cut]:
    """A reused claimed prefix has a position unmapped in the descriptor."""
    for i, _, rid, c, ev in _unmapped_reuses(v):
        yield Cut(v.profile(), f"commit {i}: {rid}'s claimed position {c.pred.start} unmapped",
                  tidy(replace_at(v.events, i, ev), v))


def summary_stands_in(v: View) -> Iterator[Cut]:
    """A far-history summary stands in for a reused claim's position."""
    for i, k, rid, c, ev in _unmapped_reuses(v):
        summ = event(E.kvrm_summary, **{DECODE_STEP: v.events[i].get(DECODE_STEP),
                                         REQUEST_ID: rid, SUMMARY_POSITIONS: [c.pred.start]})
        evs = insert(tuple(replace_at(v.events, i, ev)), k, summ)
        yield Cut(v.profile(), f"commit {i}: a summary stands in for {c.id}", tidy(evs, v))


def summary_counted(v: View) -> Iterator[Cut]:
    """A summary is reported as materializing a claim."""
    for i, k, rid, c in list(_reuses(v))[:2]:
        summ = event(E.kvrm_summary, **{DECODE_STEP: v.events[i].get(DECODE_STEP),
                                         REQUEST_ID: rid, SUMMARY_POSITIONS: [0],
                                         CLAIM_ID: c.id, COUNTED: True})
        yield Cut(v.profile(), f"summary counted as materializing {c.id} at {k}",
                  tidy(insert(v.events, k, summ), v))


# ---- the table --------------------------------------------------------------------------------
def _table() -> dict[str, tuple[Op, ...]]:
    def op(rule: str, fn: Operator) -> Op:
        doc = (fn.__doc__ or fn.__name__).strip().split("\n\n")[0]
        return Op(rule, fn.__name__, " ".join(doc.split()), fn)

    rows: list[tuple[str, tuple[Operator, ...]]] = [
        (R.identity, (identity_value_changed, claim_id_swapped)),
        (R.acceptance, (acceptance_dropped, acceptance_post_hoc, acceptance_after_transition)),
        (R.order, (lifecycle_after_release, accepted_twice, materialized_false, release_twice)),
        (R.harm, (harm_twice, harm_without_break, harm_moved_after_loss, harm_moved_early,
                  harm_without_claim)),
        (R.silent, (harm_dropped, release_dropped, silent_loss_appended,
                    harm_unordered_with_loss)),
        (R.hard, (protected_victim_reported, protected_spare_victim)),
        (R.explicit, (explicit_action_dropped,)),
        (R.attribution, (attribution_number_off, bystander_named, blocking_dropped,
                         blocking_unsorted, feasibility_flipped)),
        (R.no_admit, (no_admit_as_action, no_admit_replaces_release)),
        (R.expiry, (expiry_after_loss, expiry_dropped, expiry_after_silent_loss)),
        (R.offload, (restore_from_recompute, reuse_before_restore, restore_required_dropped,
                     outcome_other_claim, restored_after_failure, outcome_dropped,
                     offload_generation_changed)),
        (R.stream, (sequence_gap, event_duplicated, events_reordered, time_goes_back,
                    batch_duplicated, batches_reordered)),
        (R.vocabulary, (unknown_event, unknown_mode)),
        (R.release_order, (release_moved_after_loss, release_after_silent_loss,
                           release_unordered_with_loss)),
        (R.progress, (deferral_endless, deferral_past_bound, existing_deferral_bounded,
                      decision_dropped, arrival_left_waiting)),
        (R.yield_, (yielding_named, stalled_behind_yielding)),
        (R.k_descriptor, (commit_duplicated, commit_dropped)),
        (R.k_live, (mapping_to_evicted, row_entries_swapped)),
        (R.k_groups, (group_dropped, group_duplicated, group_shifted)),
        (R.k_prefix, (prefix_not_whole,)),
        (R.k_summary, (summary_stands_in, summary_counted)),
    ]
    return {rule: tuple(op(rule, fn) for fn in fns) for rule, fns in rows}


OPERATORS: dict[str, tuple[Op, ...]] = _table()


def mutants(seed_name: str, events: tuple[Event, ...], skews: tuple[Skew, ...] = (),
            rules: tuple[str, ...] | None = None) -> Iterator[Mutant]:
    """Every mutant of one conformant seed, for `rules` (default: every rule)."""
    v = View(events)
    for rule, ops in OPERATORS.items():
        if rules is not None and rule not in rules:
            continue
        for o in ops:
            for cut in o.fn(v):
                yield Mutant(rule, o.name, seed_name, cut.mode or "unknown", cut.where,
                             cut.events, skews)
