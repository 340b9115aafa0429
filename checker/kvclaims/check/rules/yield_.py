"""R-yield (docs/model.md §6): best-effort and soft claims never block.

Only protecting modes (spec/modes.toml `protects`) may block an active request: a refusal or
deferral that names a claim whose mode gives way (best_effort, soft_priority), or that happens
while only such claims hold the blocks the request needs (protected + required <= usable <
protected + theirs + required), is over-protection. A mode is a name in the replay and a code in
the Z3 engine; either way the engines pass the collection of modes that give way (or protect).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kvclaims.check.rules.ops import Ops, Val

# The wording of R-yield's findings (templates over the names of rules/ops.py `Filed`).
NAMED = ("over-protection: request {request} is {verb} naming {claim}, a claim{in_mode} that gives "
         "way and never blocks an active request")
UNNAMED_CAUSE = ("over-protection: request {request} is {verb} while only claims that give way "
                 "hold the blocks it needs{numbers}; {claim}{held} must give way")


def modes(spec_modes: dict[str, Any], protects: bool) -> frozenset[str]:
    """The mode names that protect (`protects=True`) or give way."""
    return frozenset(m for m, mode in spec_modes.items() if bool(mode.protects) == protects)


def gives_way(o: Ops, mode: Val, yielding: Iterable[Any]) -> Val:
    """The claim's mode gives way (an unknown or unnamed mode is in neither collection)."""
    return o.member(mode, yielding)


def named(o: Ops, exists: Val, gives_way_: Val) -> Val:
    """The violation: a refusal or deferral names, as blocking, a claim that gives way."""
    return o.and_(exists, gives_way_)


def protecting(o: Ops, protects: Val, responsible: Val, silent: Val, host: Val,
               surviving: Val, tracked: Val, asserted: Val) -> Val:
    """A claim that may block: a protecting mode, under responsibility, not silently lost, not
    offloaded to the host tier, and holding blocks (tracked ones, or asserted materialized)."""
    return o.and_(protects, responsible, o.not_(silent), o.not_(host),
                  o.or_(o.cmp(">", surviving, 0), o.and_(o.not_(tracked), asserted)))


def soft_holder(o: Ops, gives_way_: Val, responsible: Val, tracked: Val, surviving: Val) -> Val:
    """A claim that gives way and holds tracked blocks under responsibility."""
    return o.and_(gives_way_, responsible, tracked, o.cmp(">", surviving, 0))


def only_yielding_cause(o: Ops, held: Val, yielded: Val, required: Val, usable: Val) -> Val:
    """The request would fit if the claims that give way gave way: protected + required <= usable
    < protected + theirs + required."""
    return o.and_(o.cmp("<=", o.total([held, required]), usable),
                  o.cmp("<", usable, o.total([held, yielded, required])))


def unnamed_cause(o: Ops, cause: Val, soft: Val, was_named: Val) -> Val:
    """The violation for each claim that gives way and was the only cause (filed once: a claim
    already named is reported by `named`)."""
    return o.and_(cause, soft, o.not_(was_named))
