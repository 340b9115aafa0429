"""The offloadable sub-lifecycle rules (docs/model.md §4 offloadable, §6 R-offload), per generation.

Decides nothing itself: for each claim-scoped offload event, whether it follows
spec/lifecycle.toml's offload machine (offloaded gpu -> host, restore_required, restored from the
offload tier, reuse_after_restore; or restoration_failed with a claim-scoped outcome that must
follow) is check/rules/steps.py `at_offload`, over rules/offload.py. This replay plug-in reads the replay's
state (passed as `rp`), applies the step's changes to it, and words and locates its findings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvclaims.check.rules.concrete import offload as rule
from kvclaims.check.rules.concrete import steps
from kvclaims.check.rules.ops import PY
from kvclaims.check.state import Claim
from kvclaims.trace.model import Event

if TYPE_CHECKING:
    from kvclaims.check.context import ReplayContext


def on_offload(rp: ReplayContext, c: Claim, ev: Event) -> None:
    """The claim's offload event, decided by check/rules/steps.py `at_offload`."""
    E, R = rp.E, rp.R
    f = ev.fields
    consts = rp.spec.offload_constants
    if not c.off_state:
        c.off_state = rp.spec.offload.initial
    t = rp.off_tr[ev.kind]
    kind = ev.kind
    gen = f.get("offload_generation")
    outcome = f.get("claim_scoped_outcome_type")
    target = f.get("outcome_claim_id")
    outcomes = rp.spec.offload_outcome_events
    is_restore = kind == E.restored
    failed_gen = gen if gen is not None else c.off_gen
    st = steps.at_offload(
        PY, R, kind == E.offloaded, is_restore, kind == E.restoration_failed, gen is not None,
        gen, c.off_gen is not None, c.off_gen, is_restore and failed_gen in c.failed_gens,
        c.off_state, t.sources,
        rule.wrong_tiers(f.get("cache_tier_from"), f.get("cache_tier_to"), consts),
        rule.not_from_offload_tier(f.get("restoration_source"), f.get("restored_from_offload_tier"),
                                   f.get("cache_tier_from"), consts),
        rule.unknown_outcome(outcome, outcomes), rule.outcome_for_other_claim(target, c.id))
    rp._file(st.filed, ev, c, _names, rp, ev, c)
    if st.opens:
        c.off_gen = gen
        rp._discharge_explicit(ev)
        rp._pass(c, R.explicit)
    if st.fails:
        c.failed_gens.add(failed_gen)
    if st.owes:
        c.outcome_owed = (outcome, ev)
    if st.moves:
        if t.target != "same":
            c.off_state = t.target
        rp._pass(c, R.offload)


def _names(rp: ReplayContext, ev: Event, c: Claim) -> dict[str, Any]:
    """What rules/offload.py's wording names, as the replay knows it (before the step applies)."""
    f = ev.fields
    consts = rp.spec.offload_constants
    return {"gen": f.get("offload_generation"), "open_gen": f" ({c.off_gen})",
            "verb": rp.spec.events[ev.kind].verb,
            "in_off_state": f" (offload state {c.off_state})", "gpu_tier": consts["gpu_tier"],
            "host_tier": consts["host_tier"],
            "source": f.get("restoration_source") or f.get("cache_tier_from"),
            "outcome": f.get("claim_scoped_outcome_type"),
            "outcomes": sorted(rp.spec.offload_outcome_events),
            "target": f.get("outcome_claim_id"), "claim": c.id}
