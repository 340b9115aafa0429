"""R-harm (docs/model.md §6): harm is reported once, iff the claim is under responsibility and its
predicate goes true to false, before that loss.

A harm event announces the next predicate-breaking loss of its claim: it is pending until that
loss (or the end of the group of block events, docs/checking.md "Timing rule"). At a loss:
`unbroken` is the violation (the announced loss kept the predicate true) and `reported` settles
the harm as kept. The checks at the harm event itself (twice, not under responsibility, after the
predicate already broke, fields stating no break) are in `at_harm`.
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

# The wording of R-harm's findings (templates over the names of rules/ops.py `Filed`).
UNBROKEN = ("harm reported, but the loss it announced (block {block}, position {pos}) kept the "
            "predicate true")
NO_LOSS = "harm reported but no loss in the same allocation broke the predicate"
DENIES_BREAK = "harm event states that the predicate did not go true to false"
TWICE = "harm reported twice for the same claim"
NOT_RESPONSIBLE = ("harm reported for a claim that is not under responsibility{in_state}: no "
                   "accepted claim, no harm")
UNDECIDABLE = "harm cannot be checked: the claim has no materialization predicate"
AFTER_BREAK = ("harm reported after the predicate had already broken: it must come before the "
               "loss")


def unbroken(o: Ops, live: Val, pending: Val, has_predicate: Val, breaks: Val) -> Val:
    """The violation at a loss: a pending harm, and the loss it announced kept the predicate."""
    return o.and_(live, pending, has_predicate, o.not_(breaks))


def reported(o: Ops, live: Val, pending: Val, has_predicate: Val, breaks: Val) -> Val:
    """A predicate-breaking loss a pending harm announced: the harm is kept (R-harm passes)."""
    return o.and_(live, pending, has_predicate, breaks)


def fields_deny_break(o: Ops, before_false: bool, after_true: bool) -> Val:
    """The violation at a harm event: its fields say the predicate did not go true to false."""
    return o.or_(before_false, after_true)


def twice(o: Ops, harmed_already: Val, pending: Val) -> Val:
    """The violation at a harm event: harm for a claim already harmed, or with a harm pending."""
    return o.or_(harmed_already, pending)


def after_break(o: Ops, has_predicate: Val, holds: Val) -> Val:
    """The violation at a harm event of a tracked claim: the predicate had already broken."""
    return o.and_(has_predicate, o.not_(holds))


def undecidable(o: Ops, has_predicate: Val) -> Val:
    """`unknown` at a harm event of a tracked claim with no materialization predicate."""
    return o.not_(has_predicate)


def no_loss(o: Ops, pending: Val) -> Val:
    """At the group's end: a harm still pending, so no loss in the same allocation broke the
    predicate."""
    return pending
