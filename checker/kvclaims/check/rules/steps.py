"""The rule definitions composed per step of a claim (docs/model.md §3, §4, §6; docs/checking.md, "One definition per rule").

Not a rule of its own: for each step the engines take on a claim, which definitions of the rule
modules are read, in which order (the first case that holds is filed; a loss already filed under
one rule is not filed again under another), and what the step does to the claim's state that the
rules read later (harm pending or settled, the claim silently lost, the harmed state). Written
once against rules/ops.py's operators, like the definitions it composes, so that

- the replay (check/replay.py) calls it compiled for Python values (rules/concrete.py) and gets
  truth values;
- the Z3 engine (check/z3model.py) calls it with `symbolic.Ops` on its encoded state and gets the
  guard of each finding and of each state change.

Each step returns `Filed` findings (rules/ops.py: the condition, the rule id, the status, the rule
module's wording and where the finding is located) and the new values of the state it changes.
The engines evaluate the conditions, apply the changes to their own state representation, fill
the wording and locate the finding; they decide none of it.

The steps:

- `at_claim_event`: a claim-scoped lifecycle event (spec/lifecycle.toml claim machine): a release
  after the claim's silent loss (R-release-order, R-expiry), else a disallowed transition, filed
  under the first rule whose case holds (R-harm, R-acceptance, R-order);
- `at_harm`: a `resident_claim_harmed` event the lifecycle allows (R-harm);
- `at_loss`: a block of a live claim (rules/loss.py `live`) is an allocation victim (R-harm,
  R-hard, R-expiry, R-no-silent-loss, R-no-admit, R-explicit);
- `at_group_end`: a group of block events ends (docs/checking.md, "Timing rule": R-harm,
  R-order);
- `at_offload`: a claim-scoped offload event the claim lifecycle allows (R-offload's sub-lifecycle,
  and the offload as R-explicit's action).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from kvclaims.check.rules import (
    acceptance,
    expiry,
    explicit,
    hard,
    harm,
    no_admit,
    no_silent_loss,
    offload,
    order,
    release_order,
)
from kvclaims.check.rules.ops import (
    AT_HARM,
    AT_LOST_REPORT,
    AT_MATERIALIZED,
    Filed,
    Ops,
    Val,
)
from kvclaims.check.state import RuleIds
from kvclaims.check.verdict import UNKNOWN, VIOLATION


def at_claim_event(o: Ops, R: RuleIds, silent: Val, excusing: bool, is_expiry: bool,
                   allowed: Val, is_harm: bool, harmed_before: Val, harm_pending: Val,
                   not_yet_accepted_state: Val, accepted: Val) -> tuple[Filed, ...]:
    """The findings of a claim event before its own effects; those apply iff `allowed` (the
    lifecycle allows the transition from the claim's state, rules/order.py `allowed`)."""
    late = release_order.violated(o, silent, excusing)
    filed = [Filed(late, R.release_order, VIOLATION, release_order.LATE),
             Filed(expiry.late_expiry(o, late, is_expiry), R.expiry, VIOLATION, expiry.LATE)]
    rest = o.and_(o.not_(late), o.not_(allowed))
    for cond, case in order.bad_transition(
            o, is_harm, harm.twice(o, harmed_before, harm_pending),
            acceptance.before_acceptance(o, not_yet_accepted_state, accepted)):
        rule, message = _BAD_TRANSITION[case](R)
        filed.append(Filed(o.and_(rest, cond), rule, VIOLATION, message))
        rest = o.and_(rest, o.not_(cond))
    return tuple(filed)


_BAD_TRANSITION = {
    order.HARM_TWICE: lambda R: (R.harm, harm.TWICE),
    order.HARM_NOT_RESPONSIBLE: lambda R: (R.harm, harm.NOT_RESPONSIBLE),
    order.BEFORE_ACCEPTANCE: lambda R: (R.acceptance, acceptance.BEFORE),
    order.NOT_ALLOWED: lambda R: (R.order, order.NOT_ALLOWED_MSG),
}


class HarmStep(NamedTuple):
    filed: tuple[Filed, ...]
    harmed: Val
    """The claim moves to the harmed state now."""
    pending: Val
    """The harm announces the claim's next loss: pending until that loss or the group's end."""
    settled: Val
    """The claim's blocks are not in the trace: the harm is taken as reported (R-harm passes, a
    harm outcome a restoration failure promised is settled)."""


def at_harm(o: Ops, R: RuleIds, before_false: bool, after_true: bool, harm_pending: Val,
            tracked: Val, has_predicate: Val, holds: Val) -> HarmStep:
    """A harm event the lifecycle allows. `holds` is read only where `has_predicate`."""
    twice = harm.twice(o, False, harm_pending)
    go = o.not_(twice)
    undecidable = o.and_(go, tracked, harm.undecidable(o, has_predicate))
    after = o.and_(go, tracked, o.not_(undecidable), harm.after_break(o, True, holds))
    filed = (
        Filed(harm.fields_deny_break(o, before_false, after_true), R.harm, VIOLATION,
              harm.DENIES_BREAK),
        Filed(twice, R.harm, VIOLATION, harm.TWICE),
        Filed(undecidable, R.harm, UNKNOWN, harm.UNDECIDABLE),
        Filed(after, R.harm, VIOLATION, harm.AFTER_BREAK),
    )
    settled = o.and_(go, o.not_(tracked))
    return HarmStep(filed, o.or_(settled, undecidable, after),
                    o.and_(go, tracked, o.not_(undecidable), o.not_(after)), settled)


class LossStep(NamedTuple):
    filed: tuple[Filed, ...]
    harm_kept: Val
    """The loss is the predicate break a pending harm announced: R-harm and R-no-silent-loss
    pass."""
    harm_settled: Val
    """The pending harm is settled (kept, or filed as unbroken) and the claim is harmed."""
    silent: Val
    """The claim is silently lost from now on (rules/release_order.py reads it)."""


def at_loss(o: Ops, R: RuleIds, live: Val, harm_pending: Val, has_predicate: Val, breaks: Val,
            action_owed: Val, denied: Val, protected: Val) -> LossStep:
    """A block of the claim is an allocation victim. `live` is rules/loss.py `live`, `breaks` its
    `breaks`, both read before the loss is applied; `action_owed` and `denied` are R-explicit's and
    R-no-admit's pool state (rules/explicit.py `owed`, rules/no_admit.py `denied_since`)."""
    unbroken = harm.unbroken(o, live, harm_pending, has_predicate, breaks)
    hard_lost = hard.violated(o, live, unbroken, protected)
    kept = harm.reported(o, live, harm_pending, has_predicate, breaks)
    silent = no_silent_loss.violated(o, live, unbroken, has_predicate, breaks, harm_pending)
    filed = (
        # located at the harm, and filed before the state moves on: its state_before is the
        # claim's state at the harm (under responsibility), not the harmed it leads to
        Filed(unbroken, R.harm, VIOLATION, harm.UNBROKEN, AT_HARM),
        Filed(hard_lost, R.hard, VIOLATION, hard.LOST),
        Filed(expiry.lost_before_expiry(o, hard_lost), R.expiry, VIOLATION, expiry.LOST),
        Filed(no_silent_loss.undecidable(o, live, unbroken, has_predicate), R.silent, UNKNOWN,
              no_silent_loss.UNDECIDABLE),
        Filed(no_admit.violated(o, silent, action_owed, denied), R.no_admit, VIOLATION,
              no_admit.LOST),
        Filed(explicit.violated(o, silent, action_owed, denied, protected), R.explicit,
              VIOLATION, explicit.LOST),
        Filed(silent, R.silent, VIOLATION, no_silent_loss.LOST),
    )
    return LossStep(filed, kept, o.or_(unbroken, kept), silent)


class GroupEnd(NamedTuple):
    filed: tuple[Filed, ...]
    harmed: Val
    """A harm still pending is filed and the claim moves to the harmed state."""


def at_group_end(o: Ops, R: RuleIds, harm_pending: Val, materialized_pending: Val,
                 has_predicate: Val, holds: Val, lost_reports: Val) -> GroupEnd:
    """The first event after a group of block events (or the end of the trace), for a claim that
    left something pending in it. `holds` is read only where `has_predicate`."""
    no_loss = harm.no_loss(o, harm_pending)
    return GroupEnd((
        Filed(no_loss, R.harm, VIOLATION, harm.NO_LOSS, AT_HARM),
        Filed(o.and_(materialized_pending, order.materialized_unheld(o, has_predicate, holds)),
              R.order, VIOLATION, order.MATERIALIZED_UNHELD, AT_MATERIALIZED),
        Filed(order.lost_report_unmatched(o, lost_reports), R.order, VIOLATION,
              order.LOST_REPORT_UNMATCHED, AT_LOST_REPORT),
    ), no_loss)


class OffloadStep(NamedTuple):
    filed: tuple[Filed, ...]
    opens: Val
    """An offload: generation `gen` is the open one from now on, and the offload is an explicit
    action (it discharges R-explicit's owed action)."""
    moves: Val
    """The event is in order: the offload state moves to its target (R-offload passes)."""
    fails: Val
    """A restoration failure: the open (or named) generation failed; restoring it is not
    restoration from now on."""
    owes: Val
    """The failure's claim-scoped outcome is owed from now on (rules/offload.py `settles`)."""


def at_offload(o: Ops, R: RuleIds, is_offload: bool, is_restore: bool, is_failure: bool,
               has_gen: bool, gen: Any, has_open: Val, open_gen: Val, failed: Val, state: Val,
               sources: Iterable[Any], wrong_tiers: bool, not_from_tier: bool,
               unknown_outcome: bool, other_claim: bool) -> OffloadStep:
    """An offload event of the claim (spec/lifecycle.toml offload machine). `failed`: the
    generation it restores failed before; `state`: the claim's offload state; the plain bools are
    rules/offload.py's conditions on the event's own fields."""
    after_failure = o.and_(is_restore, offload.restored_after_failure(o, failed))
    out = o.and_(o.not_(after_failure), offload.out_of_order(o, state, sources))
    in_order = o.and_(o.not_(after_failure), o.not_(out))
    from_tier = o.and_(in_order, is_restore, not_from_tier)
    moves = o.and_(in_order, o.not_(from_tier))
    filed = (
        Filed(o.and_(is_offload, has_gen, offload.generation_repeated(o, has_open, gen, open_gen)),
              R.offload, VIOLATION, offload.GEN_REPEATED),
        Filed(o.and_(is_offload, wrong_tiers), R.offload, VIOLATION, offload.WRONG_TIERS),
        Filed(o.and_(o.not_(is_offload), has_gen,
                     offload.other_generation(o, has_open, gen, open_gen)),
              R.offload, VIOLATION, offload.OTHER_GENERATION),
        Filed(after_failure, R.offload, VIOLATION, offload.AFTER_FAILURE),
        Filed(out, R.offload, VIOLATION, offload.OUT_OF_ORDER),
        Filed(from_tier, R.offload, VIOLATION, offload.NOT_FROM_TIER),
        Filed(o.and_(moves, is_failure, unknown_outcome), R.offload, VIOLATION,
              offload.UNKNOWN_OUTCOME),
        Filed(o.and_(moves, is_failure, other_claim), R.offload, VIOLATION, offload.OTHER_CLAIM),
    )
    fails = o.and_(moves, is_failure)
    return OffloadStep(filed, is_offload, moves, fails, o.and_(fails, o.not_(unknown_outcome)))
