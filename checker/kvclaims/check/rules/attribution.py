"""R-attribution (docs/model.md §6, §7): a claim-caused refusal or deferral names only claims under
responsibility that hold protected blocks, with numbers consistent with the replayed pool.

Eligible claims are those holding protected blocks (rules/hard.py `protected_claim`), or on the
restore path (`feasibility = restore_infeasible`) those owing the claim-scoped refusal a
restoration failure promised (R-offload). The numbers are those of the named eligible claims; the
free count is bounded by every protected block above and by the blocks ever allocated below.
The engines pass the event's fields as Python values and the pool's sums as values of either
kind; each function returns a violation condition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kvclaims.check.rules.ops import Ops, Val

# The wording of R-attribution's findings outside the numbers (templates over the names of
# rules/ops.py `Filed`).
UNNAMED = "refusal under claim pressure does not name blocking claim {claim}"
UNSORTED = "blocking_claim_ids {blocking} must be sorted and without duplicates"
SMEAR = "blocking-claim smear: {claim} {why}, so it cannot block this request"
# The numbers (`{protected}` and the like are the replayed values where an engine knows them).
PROTECTED_MISMATCH = ("protected_resident_blocks is {declared} but the named claims hold "
                      "{protected} protected blocks in the replayed pool")
TOTAL_MISMATCH = ("resident_plus_active_blocks is {total}, not protected{protected_n} + required "
                  "{required}")
FREE_OVER = "free_blocks_before_allocate is {free}, but at most {upper} can be free"
FREE_UNDER = "free_blocks_before_allocate is {free}, but at least {lower} are free"
SHORTFALL_NOT_FREE = ("capacity_shortfall_blocks is {shortfall}, not max(0, required {required} - "
                      "free {free}){result}")
SHORTFALL_LOW = ("capacity_shortfall_blocks is {shortfall}, below protected{protected_n} + "
                 "required {required} - usable{usable_n}")
FEASIBILITY_MISMATCH = "feasibility {feasibility!r} does not match shortfall {shortfall}"
LISTED_MISMATCH = "protected_resident_claims names {listed}, blocking_claim_ids {named}"


def claim_caused(blocking: Sequence[Any] | None, infeasible: bool, shortfall: Any) -> bool:
    """The decision is about claims: it names some, says infeasible, or has a shortfall."""
    return bool(blocking) or infeasible or (shortfall or 0) > 0


def unnamed(o: Ops, eligible: Val) -> Val:
    """A claim-caused decision that names no claim: every eligible claim is left out."""
    return eligible


def unsorted(blocking: Sequence[Any]) -> bool:
    return list(blocking) != sorted(set(blocking))


def smear(o: Ops, eligible: Val) -> Val:
    """A named claim that is not eligible cannot block the request."""
    return o.not_(eligible)


def protected_mismatch(o: Ops, declared: Any, protected: Val) -> Val:
    return o.not_(o.eq(protected, declared))


def total_mismatch(o: Ops, total: Any, protected: Val, required: Any) -> Val:
    return o.not_(o.eq(total, o.total([protected, required])))


def free_over(o: Ops, free: Any, usable: Val, protected_all: Val) -> Val:
    """More blocks said free than usable minus every protected block."""
    return o.cmp(">", free, usable - protected_all)


def free_under(o: Ops, free: Any, usable: Val, allocated: Val, over: Val) -> Val:
    """Fewer blocks said free than usable minus the blocks ever allocated."""
    return o.and_(o.not_(over), o.cmp("<", free, usable - allocated))


def shortfall_not_free(shortfall: int, required: int, free: int | None) -> bool:
    """The shortfall is max(0, required - free) when the free count is given."""
    return free is not None and shortfall != max(0, required - free)


def shortfall_low(o: Ops, shortfall: Any, protected: Val, required: Any, usable: Val) -> Val:
    """The shortfall is at least protected + required - usable."""
    need = o.total([protected, required])
    return o.cmp("<", shortfall, o.ite(o.cmp(">", need, usable), need - usable, 0))


def feasibility_mismatch(feasibility: Any, shortfall: int, infeasible_value: str,
                         feasible_prefix: str) -> bool:
    infeasible = feasibility == infeasible_value
    return (shortfall > 0) != infeasible or (
        not infeasible and not str(feasibility).startswith(feasible_prefix))


def listed_mismatch(o: Ops, listed: Sequence[str], blocking: Sequence[str],
                    eligible: Callable[[str], Val]) -> Val:
    """`protected_resident_claims` lists exactly the named eligible claims, once each."""
    conds: list[Val] = [len(set(listed)) != len(listed)]
    conds += [o.not_(eligible(cid)) if cid in blocking else True for cid in listed]
    conds += [eligible(cid) for cid in dict.fromkeys(blocking) if cid not in listed]
    return o.or_(*conds)


def restore_eligible(o: Ops, exists: Val, owed_outcome: Val, refusal_outcomes: Any) -> Val:
    """On the restore path: the claim owes a claim-scoped refusal (R-offload)."""
    return o.and_(exists, o.member(owed_outcome, refusal_outcomes))
