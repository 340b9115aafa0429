"""R-expiry (docs/model.md §6): an expiring claim is protected until it expires; expiry is an event
before any loss it excuses.

Two violations: a block of an expiring (hard) claim under responsibility lost before the claim
expired, and an expiry written after the loss it would excuse. The rule binds only the claims
whose mode bundle (spec/modes.toml) lists it; the engines apply the bundle when filing.
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val

LOST = ("block {block} (position {pos}) of expiring claim {claim} was lost before the claim "
        "expired: it is protected until its expiry")
LATE = ("expiry written after the loss{at_line} it would excuse: expiry must come before any loss "
        "it excuses")


def late_expiry(o: Ops, late_release: Val, is_expiry: bool) -> Val:
    """An expiry written after the predicate-breaking loss (R-release-order's late release)."""
    return o.and_(is_expiry, late_release)


def lost_before_expiry(o: Ops, hard_violated: Val) -> Val:
    """A protected block lost while the claim is under responsibility: it had not expired yet
    (the loss rules/hard.py forbids, read for the expiring mode; the bundle decides which claims
    it binds)."""
    return hard_violated
