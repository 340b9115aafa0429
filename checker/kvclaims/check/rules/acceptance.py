"""R-acceptance (docs/model.md §6): acceptance is explicit and pre-registered, and precedes every
lifecycle transition of the claim.
"""

from __future__ import annotations

from typing import Any

from kvclaims.check.rules.ops import Ops, Val

POST_HOC = "acceptance is post hoc: the claim was named after the fact"
BEFORE = "'{verb}' before the claim was accepted{in_state}"


def post_hoc(registration: Any, post_hoc_value: str) -> bool:
    """The acceptance says the claim was named after the fact."""
    return registration == post_hoc_value


def before_acceptance(o: Ops, not_yet_accepted_state: Val, accepted: Val) -> Val:
    """A disallowed transition while the claim is submitted (or not even that) and never accepted
    (the case of rules/order.py `bad_transition` that is R-acceptance's)."""
    return o.and_(not_yet_accepted_state, o.not_(accepted))
