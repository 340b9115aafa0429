"""R-release-order (docs/model.md §6): a release excuses only losses after it.

A demotion, expiry, relaxation, release or offload written after the claim's predicate-breaking
loss never withdraws that loss's findings (R-no-silent-loss, R-hard, ...), and is itself a
violation, in every mode. "Silent" is the state the loss left: a predicate-breaking loss of a claim
under responsibility with no harm reported before it (rules/no_silent_loss.py).
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

LATE = ("'{verb}' written after the predicate-breaking loss{at_line}: a release excuses only later "
        "losses")


def excusing_kinds(releasing: frozenset[str], offloaded: str, harmed: str) -> frozenset[str]:
    """The claim events that would excuse a later loss: every event whose transition leaves
    responsibility (spec/lifecycle.toml), and offload; harm is a report of the loss, not a release."""
    return frozenset((releasing | {offloaded}) - {harmed})


def violated(o: Ops, silent: Val, excusing: bool) -> Val:
    """An excusing event of a claim already silently lost."""
    return o.and_(excusing, silent)
