"""R-order (docs/model.md §4, §6): transitions follow the lifecycle; no lifecycle event after release
except post-release loss.

The lifecycle is spec/lifecycle.toml's claim machine (`allowed` reads a transition's sources). A
disallowed transition is filed under the first rule of `bad_transition` whose case holds: harm
twice, harm not under responsibility (R-harm), before acceptance (R-acceptance), else R-order.
At the end of a group of block events (docs/checking.md, "Timing rule"): a claim declared
materialized whose predicate does not hold over the materialized positions, and a post-release
loss report with no loss in the same allocation, break the order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kvclaims.check.rules.ops import Ops, Val

HARM_TWICE, HARM_NOT_RESPONSIBLE, BEFORE_ACCEPTANCE, NOT_ALLOWED = range(4)

NOT_ALLOWED_MSG = "'{verb}' is not allowed in {state}"
SAYS_NOT_MATERIALIZED = "materialized event says the predicate does not hold"
MATERIALIZED_UNHELD = ("claim declared materialized but its predicate does not hold over the "
                       "materialized positions")
LOST_REPORT_UNMATCHED = ("post-release loss reported but no block of the claim was lost in the "
                         "same allocation")


def allowed(o: Ops, state: Val, sources: Iterable[Any]) -> Val:
    return o.member(state, sources)


def bad_transition(o: Ops, is_harm: bool, harm_twice: Val,
                   before_acceptance: Val) -> list[tuple[Val, int]]:
    """The cases of a disallowed transition, in order: the first that holds is filed
    (HARM_TWICE, rules/harm.py `twice`, and HARM_NOT_RESPONSIBLE are R-harm's;
    BEFORE_ACCEPTANCE, rules/acceptance.py `before_acceptance`, R-acceptance's)."""
    if is_harm:
        return [(harm_twice, HARM_TWICE), (True, HARM_NOT_RESPONSIBLE)]
    return [(before_acceptance, BEFORE_ACCEPTANCE), (True, NOT_ALLOWED)]


def says_not_materialized(predicate_materialized: Any) -> bool:
    """A materialized event whose own field says the predicate does not hold."""
    return predicate_materialized is False


def materialized_unheld(o: Ops, has_predicate: Val, holds: Val) -> Val:
    """At the group's end: declared materialized, but the predicate does not hold."""
    return o.not_(o.and_(has_predicate, holds))


def lost_report_unmatched(o: Ops, pending_reports: Val) -> Val:
    """At the group's end: post-release loss reports left with no loss of the claim."""
    return o.cmp(">", pending_reports, 0)
