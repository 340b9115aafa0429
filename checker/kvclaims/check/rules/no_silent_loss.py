"""R-no-silent-loss (docs/model.md §6): a predicate-breaking loss of a claim under responsibility
must be preceded by harm or by an explicit release.

The violation makes the claim silently lost: later releases excuse nothing
(rules/release_order.py). A loss of a claim with no materialization predicate is `unknown`.
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

LOST = ("unreported resident loss: block {block} (position {pos}) broke {pred} of claim {claim} "
        "with no harm event and no prior release")
UNDECIDABLE = ("block {block} of claim {claim} was lost but the claim has no materialization "
               "predicate, so harm cannot be decided")


def violated(o: Ops, live: Val, harm_unbroken: Val, has_predicate: Val, breaks: Val,
             harm_pending: Val) -> Val:
    return o.and_(live, o.not_(harm_unbroken), has_predicate, breaks, o.not_(harm_pending))


def undecidable(o: Ops, live: Val, harm_unbroken: Val, has_predicate: Val) -> Val:
    return o.and_(live, o.not_(harm_unbroken), o.not_(has_predicate))
