"""R-no-admit (docs/model.md §6): future_reuse_denied never counts as protection or as live-KV
bounding.

The violation: a silent loss while an explicit action is owed (rules/explicit.py) and the only
action since was a reuse denial.
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

LOST = ("write no-admit was the only action before this loss: future_reuse_denied protects "
        "nobody")


def denied_since(o: Ops, denied: Val, action_owed: Val) -> Val:
    """A `future_reuse_denied` while an action is owed: remembered until the action comes."""
    return o.or_(denied, action_owed)


def violated(o: Ops, silent_loss: Val, action_owed: Val, denied: Val) -> Val:
    return o.and_(silent_loss, action_owed, denied)
