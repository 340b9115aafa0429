"""R-progress (docs/model.md §6): bounded deferral.

A deferred active request is admitted, refused with attribution, or unblocked by a release of a
claim it names within every declared deferral bound; a deferral open at the end of the trace with
no bound passed is `unknown` (docs/checking.md, "R-progress"). A request the trace shows arriving
while claims hold the blocks it needs waits: an unreported deferral that starts at its arrival.
The bookkeeping (which deferrals are open, their start) is the engines' state; what opens, advances,
settles and breaks a deferral is defined here.
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

# The wording of R-progress's findings (templates over the names of rules/ops.py `Filed`).
PAST_BOUND = ("unbounded deferral: request {request}{since} is still neither admitted, refused nor "
              "unblocked{elapsed} past {bound}")
STILL_OPEN = ("request {request}{since} is still open at the end of the trace and {why}: whether "
              "it was ever decided is unknown")


def holds_blocks(o: Ops, responsible: Val, blocks: Val) -> Val:
    """A claim an arriving request waits on: under responsibility and holding blocks."""
    return o.and_(responsible, o.cmp(">", blocks, 0))


def waits(o: Ops, held: Val, required: Val, usable: Val) -> Val:
    """An arriving request waits (a silent deferral opens) when the blocks the claims hold and the
    blocks it needs exceed the usable pool."""
    return o.cmp(">", o.total([held, required]), usable)


def elapsed(o: Ops, now: Val, start: Val, so_far: Val) -> Val:
    """Elapsed steps (or ns) of an open deferral as of an event at `now`: never decreasing."""
    return o.ite(o.cmp(">", now - start, so_far), now - start, so_far)


def past_bound(o: Ops, elapsed_: Val, bound: Val) -> Val:
    """The violation: an open deferral whose elapsed steps (or ns) passed a declared bound."""
    return o.cmp(">", elapsed_, bound)


def unblocks(o: Ops, responsible_before: Val, named: Val) -> Val:
    """A release settles a deferral when the released claim was under responsibility and the
    deferral waits on it."""
    return o.and_(responsible_before, named)
