"""R-offload (docs/model.md §4 offloadable, §6): the offload sub-lifecycle, per generation.

Offloaded (gpu -> host tier), restore required, restored from the offload tier (fallback recompute
is not restoration), reuse after restore; or a restoration failure with a claim-scoped outcome
that must follow. The order itself is spec/lifecycle.toml's offload machine (`out_of_order`
reads its sources). Generations are the `offload_generation` field; conditions on the open
generation and the offload state take values of either kind, conditions on an event's own
fields are plain Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kvclaims.check.rules.ops import Ops, Val

# The wording of R-offload's findings (templates over the names of rules/ops.py `Filed`).
GEN_REPEATED = "offload generation {gen} does not follow the open generation{open_gen}"
WRONG_TIERS = "offload must move {gpu_tier} -> {host_tier}"
OTHER_GENERATION = "'{verb}' names generation {gen}, not the open generation{open_gen}"
AFTER_FAILURE = ("restored after the restoration of this generation failed: recompute after a "
                 "failure is not restoration")
OUT_OF_ORDER = ("'{verb}' out of the offload order{in_off_state}: offloaded, restore_required, "
                "restored, reuse_after_restore")
NOT_FROM_TIER = ("restored from {source!r}, not from the offload tier: fallback recompute is not "
                 "restoration")
UNKNOWN_OUTCOME = "restoration failure outcome {outcome!r} is not one of {outcomes}"
OTHER_CLAIM = "restoration failure outcome names claim {target!r}, not {claim!r}"
NEVER_FOLLOWED = "restoration failure promised a {outcome} outcome that never followed"


def generation_repeated(o: Ops, has_open: Val, gen: int, open_gen: Val) -> Val:
    """An offload whose generation does not follow the open one."""
    return o.and_(has_open, o.cmp("<=", gen, open_gen))


def wrong_tiers(tier_from: Any, tier_to: Any, consts: dict[str, Any]) -> bool:
    """An offload that does not move gpu -> host."""
    return (tier_from not in (None, consts["gpu_tier"])
            or tier_to not in (None, consts["host_tier"]))


def other_generation(o: Ops, has_open: Val, gen: int, open_gen: Val) -> Val:
    """A later offload event naming a generation other than the open one."""
    return o.and_(has_open, o.not_(o.eq(open_gen, gen)))


def restored_after_failure(o: Ops, failed: Val) -> Val:
    """A restore of a generation whose restoration failed: recompute is not restoration."""
    return failed


def out_of_order(o: Ops, state: Val, sources: Iterable[Any]) -> Val:
    """The event's transition is not allowed from the claim's offload state."""
    return o.not_(o.member(state, sources))


def not_from_offload_tier(source: Any, from_offload_tier: Any, tier_from: Any,
                          consts: dict[str, Any]) -> bool:
    """A restore whose source is not the offload tier (fallback recompute)."""
    return ((source is not None and source != consts["restore_source"])
            or from_offload_tier is False
            or tier_from not in (None, consts["host_tier"]))


def unknown_outcome(outcome: Any, outcomes: Iterable[str]) -> bool:
    return outcome not in outcomes


def outcome_for_other_claim(target: Any, claim_id: str) -> bool:
    return target is not None and target != claim_id


def outcome_never_followed(o: Ops, owed: Val) -> Val:
    """At the end of the trace: a promised claim-scoped outcome is still owed."""
    return owed


def settles(o: Ops, owed: Val, settling: Iterable[Any]) -> Val:
    """An event settles the claim-scoped outcome owed when the outcome is one this event kind
    gives (spec/lifecycle.toml `offload_outcome_events`; `settling` are those outcomes)."""
    return o.member(owed, settling)
