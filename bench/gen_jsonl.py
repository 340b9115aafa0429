"""Generate a large reference-telemetry JSON Lines trace from the corpus patterns (60/70/80).

Repeats the shape of the patched-vLLM probes: per round a resident request allocates and
materializes a prefix under a hard claim, an active request is refused with full attribution, the
claim is demoted, and a second active request evicts the prefix with post-release loss reports. Run
`python bench/gen_jsonl.py N OUT` (N events, approximately).
"""

from __future__ import annotations

import json
import sys


def rounds(n_events: int, usable: int = 80, resident: int = 60, active: int = 70):
    seq = 0
    ts = 1_779_000_000_000_000_000
    r = 0
    while seq < n_events:
        claim = f"claim:r{r}"
        prefix = f"p{r}"
        base = {"schema_version": 1, "run_id": "bench", "policy": "hard_exclude",
                "usable_blocks": usable}

        def ev(kind: str, **f):
            nonlocal seq, ts
            seq += 1
            ts += 1000
            d = dict(base)
            d.update(f)
            d["event"] = kind
            d["timestamp_ns"] = ts
            return json.dumps(d, sort_keys=True, separators=(",", ":"))

        blocks = list(range(1, resident + 1))
        for rank, b in enumerate(blocks):
            yield ev("allocation_victim_selected", physical_block_id=b, free_queue_rank=rank,
                     request_id=f"res{r}", victim_reason="free_uncached", claim_id=None,
                     prefix_id=None, block_hash=None, is_protected_resident=False, ref_count=0)
        yield ev("resident_claim_accepted", claim_id=claim, prefix_id=prefix,
                 protection_mode="hard_exclude", resident_blocks_required=resident,
                 useful_threshold_blocks=resident, request_id=f"res{r}", confidence=1.0,
                 predicted_value=1.0)
        for pos, b in enumerate(blocks):
            yield ev("resident_block_materialized", physical_block_id=b,
                     logical_block_position=pos, claim_id=claim, prefix_id=prefix,
                     request_id=f"res{r}", block_hash=f"h{r}-{pos}", ref_count=1,
                     is_protected_resident=True, protection_mode="hard_exclude")
        yield ev("resident_claim_materialized", claim_id=claim, prefix_id=prefix,
                 resident_blocks_materialized=resident, resident_blocks_required=resident,
                 predicate="leading_prefix_at_least", predicate_materialized=True)
        free = usable - resident
        yield ev("active_request_refused", request_id=f"act{r}", blocking_claim_ids=[claim],
                 blocking_prefix_ids=[prefix], protected_resident_blocks=resident,
                 active_live_blocks_required=active, active_live_blocks_current=0,
                 resident_plus_active_blocks=resident + active,
                 capacity_shortfall_blocks=max(0, active - free),
                 feasibility="infeasible_preserve_resident_and_active",
                 free_blocks_before_allocate=free, arbiter_action="capacity_required",
                 protected_resident_claims=[{"claim_id": claim}], claim_id=None, prefix_id=None)
        yield ev("resident_claim_demoted", claim_id=claim, prefix_id=prefix,
                 arbiter_action="demote_on_conflict")
        for rank, b in enumerate(range(resident + 1, usable + 1)):
            yield ev("allocation_victim_selected", physical_block_id=b, free_queue_rank=rank,
                     request_id=f"act{r}b", victim_reason="free_uncached")
        for b in reversed(blocks[10:]):
            yield ev("resident_claim_block_lost_after_release", claim_id=claim,
                     prefix_id=prefix, physical_block_id=b, claim_status="demoted")
            yield ev("allocation_victim_selected", physical_block_id=b, request_id=f"act{r}b",
                     victim_reason="cached_prefix_reuse", free_queue_rank=0)
        # the next round reuses the same physical blocks: the remaining resident positions are
        # evicted first, as ordinary cached-prefix reuse after release.
        for b in blocks[:10]:
            yield ev("resident_claim_block_lost_after_release", claim_id=claim,
                     prefix_id=prefix, physical_block_id=b, claim_status="demoted")
            yield ev("allocation_victim_selected", physical_block_id=b, request_id=f"flush{r}",
                     victim_reason="cached_prefix_reuse", free_queue_rank=0)
        r += 1


def main() -> None:
    n = int(sys.argv[1])
    out = sys.argv[2]
    with open(out, "w") as fh:
        for i, line in enumerate(rounds(n)):
            if i >= n:
                break
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
