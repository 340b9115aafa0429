"""The offloadable sub-lifecycle rules (docs/model.md §4 offloadable, §6 R-offload), per generation.

Decides, for each claim-scoped offload event, whether it follows spec/lifecycle.toml's offload
machine: offloaded (gpu -> host), restore_required, restored from the offload tier (fallback
recompute is not restoration), reuse_after_restore; or restoration_failed with a claim-scoped
outcome that must follow. A function of the replay checker: it reads and updates the replay's
state (passed as `rp`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvclaims.check.rules.concrete import offload as rule
from kvclaims.check.rules.ops import PY
from kvclaims.check.state import Claim
from kvclaims.check.verdict import VIOLATION
from kvclaims.trace.model import Event

if TYPE_CHECKING:
    from kvclaims.check.context import ReplayContext


def on_offload(rp: ReplayContext, c: Claim, ev: Event) -> None:
    E, R = rp.E, rp.R
    f = ev.fields
    consts = rp.spec.offload_constants
    if not c.off_state:
        c.off_state = rp.spec.offload.initial
    t = rp.off_tr[ev.kind]
    verb = rp.spec.events[ev.kind].verb
    gen = f.get("offload_generation")
    if ev.kind == E.offloaded:
        # (Python compares no int with None: the open generation is tested before the rule.)
        if gen is not None and c.off_gen is not None and rule.generation_repeated(
                PY, True, gen, c.off_gen):
            rp._find(
                VIOLATION,
                R.offload,
                ev,
                f"offload generation {gen} does not follow generation {c.off_gen}",
                c,
            )
        if rule.wrong_tiers(f.get("cache_tier_from"), f.get("cache_tier_to"), consts):
            rp._find(
                VIOLATION,
                R.offload,
                ev,
                f"offload must move {consts['gpu_tier']} -> {consts['host_tier']}",
                c,
            )
        c.off_gen = gen
        rp._discharge_explicit(ev)
        rp._pass(c, R.explicit)
    elif gen is not None and c.off_gen is not None and rule.other_generation(
            PY, True, gen, c.off_gen):
        rp._find(
            VIOLATION,
            R.offload,
            ev,
            f"'{verb}' names generation {gen} but generation {c.off_gen} is open",
            c,
        )
    if ev.kind == E.restored and rule.restored_after_failure(
            PY, (gen if gen is not None else c.off_gen) in c.failed_gens):
        rp._find(
            VIOLATION,
            R.offload,
            ev,
            "restored after the restoration of this generation failed: recompute "
            "after a failure is not restoration",
            c,
        )
        return
    if rule.out_of_order(PY, c.off_state, t.sources):
        rp._find(
            VIOLATION,
            R.offload,
            ev,
            f"'{verb}' in offload state {c.off_state}: the order is offloaded, "
            "restore_required, restored, reuse_after_restore",
            c,
        )
        return
    if ev.kind == E.restored:
        src = f.get("restoration_source")
        if rule.not_from_offload_tier(src, f.get("restored_from_offload_tier"),
                                      f.get("cache_tier_from"), consts):
            rp._find(
                VIOLATION,
                R.offload,
                ev,
                f"restored from {src or f.get('cache_tier_from')!r}, not from the "
                "offload tier: fallback recompute is not restoration",
                c,
            )
            return
    if ev.kind == E.restoration_failed:
        outcome = f.get("claim_scoped_outcome_type")
        target = f.get("outcome_claim_id")
        if rule.unknown_outcome(outcome, rp.spec.offload_outcome_events):
            rp._find(
                VIOLATION,
                R.offload,
                ev,
                f"restoration failure outcome {outcome!r} is not one of "
                f"{sorted(rp.spec.offload_outcome_events)}",
                c,
            )
        if rule.outcome_for_other_claim(target, c.id):
            rp._find(
                VIOLATION,
                R.offload,
                ev,
                f"restoration failure outcome names claim {target!r}, not {c.id!r}",
                c,
            )
        c.failed_gens.add(gen if gen is not None else c.off_gen)
        if isinstance(outcome, str) and outcome in rp.spec.offload_outcome_events:
            c.outcome_owed = (outcome, ev)
    c.off_state = t.target if t.target != "same" else c.off_state
    rp._pass(c, R.offload)
