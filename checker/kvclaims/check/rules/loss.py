"""What a lost block is to its claim (docs/model.md §3, §4, §6): shared by the rules about losses.

Not a rule. When a block bound to a claim is an allocation victim (or is rebound), the rules of
rules/harm.py, no_silent_loss.py, hard.py, expiry.py, explicit.py and no_admit.py read the loss
through these conditions, evaluated on the claim's state *before* the loss is applied:

- offloaded: the claim is under responsibility with its KV in the host tier (§4 offloadable):
  evicting the GPU copy is not a loss of the claim;
- live: under responsibility, not offloaded, not already silently lost: the rules apply;
- post-release: released or already silently lost: a loss a `block_lost_after_release`
  report may announce (R-order);
- breaks: the claim's predicate goes true to false (§3).
"""

from __future__ import annotations

from kvclaims.check.rules.ops import Ops, Val


def offloaded(o: Ops, responsible: Val, host: Val) -> Val:
    return o.and_(responsible, host)


def live(o: Ops, responsible: Val, host: Val, silent: Val) -> Val:
    return o.and_(responsible, o.not_(host), o.not_(silent))


def post_release(o: Ops, offloaded_: Val, live_: Val, released: Val, silent: Val) -> Val:
    return o.and_(o.not_(offloaded_), o.not_(live_), o.or_(released, silent))


def breaks(o: Ops, before: Val, after: Val) -> Val:
    return o.and_(before, o.not_(after))
