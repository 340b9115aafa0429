"""Benchmark of the .kvt readers (docs/model.md §5): events/s of the fast path and of Lark line by line.

Generates N events of the corpus pattern (mostly `block N victim` / `block N materialized` lines
with ~5 key=value pairs) into a temporary .kvt file and prints a table. Writes no results file.
Run: PYTHONPATH=checker python bench/kvt_bench.py --n 1000000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator

from kvclaims import spec as spec_mod
from kvclaims.trace import dsl
from kvclaims.trace.model import Event
from kvclaims.trace.write import write_kvt

LARK_SUBSET = 20_000


def corpus(n: int) -> Iterator[Event]:
    reasons = ("free_uncached", "cached_prefix_reuse")
    for i in range(n):
        block = i % 4096
        if i % 50 == 0:
            yield Event("resident_claim_accepted", {
                "event_sequence": i, "claim_id": f"claim:{i // 50}", "protection_mode": "hard_exclude",
                "resident_blocks_required": 60,
                "materialization_predicate": "leading_prefix_at_least(60)"})
        elif i % 2:
            yield Event("allocation_victim_selected", {
                "event_sequence": i, "physical_block_id": block, "request_id": f"req-{i % 97}",
                "free_queue_rank": i % 31, "is_protected_resident": False,
                "victim_reason": reasons[i % 3 == 0]})
        else:
            yield Event("resident_block_materialized", {
                "event_sequence": i, "physical_block_id": block, "logical_block_position": i % 60,
                "block_hash": f"0-{i:08x}", "ref_count": 1, "is_protected_resident": True})


def rate(path: str, fast: bool, limit: int | None) -> tuple[int, float]:
    t0 = time.perf_counter()
    count = 0
    for _ in dsl.read_kvt(path, fast=fast):
        count += 1
        if limit is not None and count >= limit:
            break
    return count, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="events to generate")
    args = ap.parse_args()
    spec_mod.load()
    fd, path = tempfile.mkstemp(suffix=".kvt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write_kvt(corpus(args.n), fh)
        size = os.path.getsize(path)
        rate(path, True, 1000)  # warm caches (grammar, vocabulary)
        rows = [("fast path (default)", *rate(path, True, None)),
                ("Lark LALR, line by line", *rate(path, False, min(LARK_SUBSET, args.n)))]
        print(f"corpus: {args.n} events, {size / 1e6:.1f} MB, {size / max(args.n, 1):.0f} B/event")
        print(f"{'reader':<26}{'events':>10}{'seconds':>10}{'events/s':>12}")
        for name, count, secs in rows:
            print(f"{name:<26}{count:>10}{secs:>10.2f}{count / secs:>12,.0f}")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
