"""Generate a JSON Lines trace of offloadable claims for the `--require` gate benchmark.

The shape of traces/rules/ok-offload-lifecycle.jsonl repeated: per claim an accepted claim
(pre-registered, with its reusable object, cache identity and token map), its materialization,
then offload generations that each go offloaded -> restore_required -> restored (from the host
tier) -> reuse_after_restore, the last one ending in a controlled restoration failure answered
by a refusal naming the claim. Every claim passes the offloadable gate.

`python bench/gen_offload.py N OUT [--claims K]`: about N offload events (the four events of a
generation) spread over K claims (default 1: one claim with N/4 generations; K = N/4: one
generation per claim), written to OUT ('-' for stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Iterator


def events(n_offload: int, claims: int = 1) -> Iterator[str]:
    gens_total = max(claims, n_offload // 4)
    per = max(1, gens_total // claims)
    seq = 0

    def ev(kind: str, **f: object) -> str:
        nonlocal seq
        seq += 1
        f["event"] = kind
        f["event_sequence"] = seq
        return json.dumps(f, sort_keys=True, separators=(",", ":"))

    for c in range(claims):
        cid = f"claim:o{c}"
        ident = dict(reusable_object_id=f"obj{c}", cache_identity=f"ci{c}",
                     request_token_map_id=f"tm{c}")
        yield ev("resident_claim_accepted", claim_id=cid, claim_registration="pre_registered",
                 materialization_predicate="leading_prefix_at_least(2)", prefix_id=f"p{c}",
                 protection_mode="offloadable_reference", resident_blocks_required=2, **ident)
        yield ev("resident_claim_materialized", claim_id=cid, predicate_materialized=True)
        for g in range(1, per + 2):
            yield ev("resident_claim_offloaded", claim_id=cid, offload_generation=g,
                     cache_tier_from="gpu_kv_cache", cache_tier_to="host_offload_tier")
            yield ev("resident_claim_restore_required", claim_id=cid, offload_generation=g)
            if g <= per:
                yield ev("resident_claim_restored", claim_id=cid, offload_generation=g,
                         cache_tier_from="host_offload_tier", cache_tier_to="gpu_kv_cache",
                         restoration_source="offload_tier", restored_from_offload_tier=True)
                yield ev("resident_claim_reuse_after_restore", claim_id=cid,
                         offload_generation=g, predicate_satisfied=True)
            else:
                yield ev("resident_claim_restoration_failed", claim_id=cid, offload_generation=g,
                         claim_scoped_outcome_type="refusal", outcome_claim_id=cid,
                         controlled_restoration_unavailable=True)
                yield ev("active_request_refused", blocking_claim_ids=[cid], claim_id=cid,
                         feasibility="infeasible_restore_claimed_kv", outcome_claim_id=cid,
                         request_id=f"reuse{c}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="offload events (approximately)")
    ap.add_argument("out", help="output file, '-' for stdout")
    ap.add_argument("--claims", type=int, default=1)
    a = ap.parse_args()
    fh = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")
    with fh:
        for line in events(a.n, a.claims):
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
