"""Queued requests behind claims on vLLM's real scheduler (docs/model.md §6 R-progress, R-yield).

Two workloads, each with several requests queued in one step, run through the claim-aware
plug-in (scheduler_plugin.py) by the harness (harness.py); both have block size 16 and 17 GPU
blocks (16 usable):

- **yield**: three claimed prefixes sit in the prefix cache: `claim:a` (soft_priority, 4 blocks,
  `claim_priority` 0), `claim:b` (soft_priority, 4 blocks, priority 1), `claim:c` (best effort, 2
  blocks). `r1` (10 blocks), `r2` (2) and `r3` (3) are queued together. Only protecting modes may
  block, so the soft claims give way, best effort first, then the lowest priority: `claim:c` and
  `claim:a` are evicted (`claim:a`'s harm written before the loss that breaks its predicate),
  `claim:b` keeps its blocks; `r1` and `r2` run in the same step, `r3` when they finish.
- **defer**: a hard_exclude claim `claim:h` (10 blocks, `on_conflict = "defer"`) leaves 6 blocks.
  `r1` (8 blocks) cannot fit beside it: it is deferred (the plug-in's first event declares
  `defer_bound_steps`), set aside while `r2` (3) and `r3` (2), queued behind it, run in the same
  step, and refused with attribution when the bound is reached, unless the claim's
  `duration_steps` ends first (then its expiry unblocks `r1`, which vLLM admits). The control
  `defer_forever` keeps deferring past the bound and never decides.

The controls `no_give_way` (soft claims keep their pins: the plug-in as it was before docs/model.md §6
R-yield) and `defer_forever` are deliberately wrong plug-ins for the checker to reject. The
harness writes each request's arrival (`request_initialized` with the blocks it needs), so a
request left waiting with no event while claims hold its blocks is an unreported deferral.

Every number comes from vLLM's own classes at run time.
"""

from __future__ import annotations

from typing import Any

from kvclaims.runtime.vllm.harness import ClaimDecl, VllmHarness

BLOCK_SIZE = 16
NUM_BLOCKS = 17
YIELD_WORKLOAD = ("yield: soft claim:a (4 blocks, priority 0), soft claim:b (4, priority 1), "
                  "best-effort claim:c (2) cached; r1 (10 blocks), r2 (2), r3 (3) queued together")
DEFER_WORKLOAD = ("defer: hard_exclude claim:h (10 blocks, on_conflict defer); r1 (8 blocks), "
                  "r2 (3), r3 (2) queued together")


def tokens(base: int, blocks: int) -> tuple[int, ...]:
    return tuple(base + i for i in range(blocks * BLOCK_SIZE))


A, B, C, H = tokens(1_000, 4), tokens(5_000, 4), tokens(9_000, 2), tokens(13_000, 10)
QUEUED = {"r1": tokens(20_000, 10), "r2": tokens(30_000, 2), "r3": tokens(40_000, 3)}
DEFER_QUEUED = {"r1": tokens(20_000, 8), "r2": tokens(30_000, 3), "r3": tokens(40_000, 2)}


def yield_claims() -> list[ClaimDecl]:
    return [ClaimDecl("claim:a", A, mode="soft_priority", prefix_id="a", priority=0),
            ClaimDecl("claim:b", B, mode="soft_priority", prefix_id="b", priority=1),
            ClaimDecl("claim:c", C, mode="none", prefix_id="c")]


def _queue(h: VllmHarness, queued: dict[str, tuple[int, ...]]) -> None:
    h.comment("queued together: " + ", ".join(f"{r} ({len(t) // BLOCK_SIZE} blocks)"
                                              for r, t in queued.items()))
    for rid, toks in queued.items():
        h.add_request(rid, toks)
    h.run_until_idle(patience=4)


def run_yield(*, no_give_way: bool = False, **kw: Any) -> VllmHarness:
    """The yield workload (module docstring); the caller closes the harness. `no_give_way`: the
    control whose soft claims keep their pins (the queue stalls behind them)."""
    h = VllmHarness(claims=yield_claims(), plugin=True, num_blocks=NUM_BLOCKS,
                    block_size=BLOCK_SIZE, run_id="queue-yield",
                    plugin_options={"no_give_way": True} if no_give_way else None, **kw)
    for rid, toks in (("a", A), ("b", B), ("c", C)):
        h.comment(f"resident request {rid} (claimed prefix)")
        h.add_request(rid, toks)
        h.step()
    _queue(h, QUEUED)
    return h


def run_defer(*, duration_steps: int | None = None, defer_bound_steps: int | None = None,
              defer_forever: bool = False, on_conflict: str = "defer", **kw: Any) -> VllmHarness:
    """The defer workload (module docstring); the caller closes the harness."""
    opts: dict[str, Any] = {}
    if defer_bound_steps is not None:
        opts["defer_bound_steps"] = defer_bound_steps
    if defer_forever:
        opts["defer_forever"] = True
    claim = ClaimDecl("claim:h", H, mode="hard_exclude", prefix_id="h", on_conflict=on_conflict,
                      duration_steps=duration_steps)
    h = VllmHarness(claims=[claim], plugin=True, num_blocks=NUM_BLOCKS, block_size=BLOCK_SIZE,
                    run_id="queue-defer", plugin_options=opts, **kw)
    h.comment("resident request h (claimed prefix)")
    h.add_request("h", H)
    h.step()
    _queue(h, DEFER_QUEUED)
    return h


def first_scheduled(h: VllmHarness) -> dict[str, int]:
    """Request id -> the harness step in which vLLM first scheduled it."""
    out: dict[str, int] = {}
    for rec in h.steps:
        for rid in rec.scheduled:
            out.setdefault(rid, rec.step)
    return dict(sorted(out.items()))


# ---- traces/vllm/ ----------------------------------------------------------------------------
TRACES = (
    ("plugin-yield", run_yield, {}, YIELD_WORKLOAD),
    ("plugin-defer", run_defer, {}, DEFER_WORKLOAD),
    ("plugin-defer-expiry", run_defer, {"duration_steps": 2},
     DEFER_WORKLOAD + "; the claim expires after 2 steps"),
    ("plugin-defer-forever", run_defer, {"defer_forever": True},
     DEFER_WORKLOAD + "; control: the plug-in keeps deferring past its bound"),
    ("plugin-yield-stall", run_yield, {"no_give_way": True},
     YIELD_WORKLOAD + "; control: the soft claims never give way"),
)
