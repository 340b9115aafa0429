"""R-identity (docs/model.md §6): every claim-scoped event names a submitted claim, and each identity
field takes one value per claim.

The identity fields are check/state.py's IDENTITY_FIELDS. A materialization predicate whose text
is not understood (check/predicate.py) is `unknown`.
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

AMBIGUOUS = "ambiguous identity: {field} is {value!r} here but {old} before"
UNSUBMITTED = "block names claim {claim!r}, which was never submitted"
UNPARSED = "materialization predicate {value!r} is not understood"


def ambiguous(o: Ops, unset: Val, same: Val) -> Val:
    """An identity field already set for the claim takes another value."""
    return o.and_(o.not_(unset), o.not_(same))


def unsubmitted(o: Ops, exists: Val) -> Val:
    """A block event names a claim never submitted."""
    return o.not_(exists)
