"""R-hard (docs/model.md §6): no protected block of a hard_protected claim is an allocation victim
while the claim is under responsibility.

`protected_claim` is the set the other rules count as holding protected blocks (R-explicit's
infeasibility, R-attribution's numbers): a claim in a mode whose bundle holds R-hard
(spec/modes.toml), under responsibility, not silently lost, holding blocks (tracked ones, or
asserted materialized when its blocks are not in the trace).
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

LOST = ("protected block {block} (position {pos}) of hard claim {claim} was an allocation victim "
        "while the claim was under responsibility")


def violated(o: Ops, live: Val, harm_unbroken: Val, protected: Val) -> Val:
    """A block of a live hard claim lost (rules/loss.py `live`); a loss already filed as an unbroken
    harm (rules/harm.py) is not counted twice."""
    return o.and_(live, o.not_(harm_unbroken), protected)


def protected_claim(o: Ops, protected: Val, responsible: Val, silent: Val, surviving: Val,
                    tracked: Val, asserted: Val) -> Val:
    return o.and_(protected, responsible, o.not_(silent),
                  o.or_(o.cmp(">", surviving, 0), o.and_(o.not_(tracked), asserted)))
