"""R-explicit (docs/model.md §6): when protected + active live > usable, the runtime takes and
reports an explicit action before any loss.

An admission with protected + required > usable while claims hold protected blocks
(rules/hard.py `protected_claim`) makes an action owed; a refusal, deferral, live bounding,
release or offload discharges it. The violation: a silent loss of a protected claim while the
action is owed and no reuse denial came in between (that case is R-no-admit's).
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

LOST = ("protected + active live exceeded usable, and no explicit action was reported before this "
        "loss")


def owed(o: Ops, any_protected: Val, protected_total: Val, required: Val, usable: Val) -> Val:
    return o.and_(any_protected, o.cmp(">", o.total([protected_total, required]), usable))


def violated(o: Ops, silent_loss: Val, action_owed: Val, denied: Val, protected: Val) -> Val:
    return o.and_(silent_loss, action_owed, o.not_(denied), protected)
